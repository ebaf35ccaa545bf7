"""Request checks and image and WAV decoding shared by every mmzoo SavedModel export (classifiers, encoders,
captioners): the signatures' input specs, in-graph checks of ranks, channels, clip lengths and batch sizes with
one-line messages, an empty batch answered without running the model, encoded images decoded and resized as
training data is, and WAV files decoded, mixed to mono and cut to the model's clip length.

A WAV file's sampling rate is checked twice: `check_wav_bytes` reads its header in Python, so `ExportedModel`
refuses a request with a ValueError before any graph runs (and names a file that is no WAV at all, or one
`tf.audio.decode_wav` would refuse with a stack trace), and the signature's graph asserts it again
(`mmzoo.audio_files.decode_wav`), for clients such as TF Serving that never run mmzoo's Python."""

import os

import tensorflow as tf

from mmzoo.images import decode_image, resize_image

SERVING_DEFAULT = "serving_default"
SERVING_IMAGE_BYTES = "serving_image_bytes"
SERVING_WAV_BYTES = "serving_wav_bytes"
WAV_SUFFIX = "_wav"
METADATA_FILE = os.path.join("assets.extra", "mmzoo.json")


def pixel_spec(name):
    return tf.TensorSpec([None, None, None, 3], tf.uint8, name=name)


def string_spec(name):
    return tf.TensorSpec([None], tf.string, name=name)


def waveform_spec(name, num_samples):
    return tf.TensorSpec([None, int(num_samples)], tf.float32, name=name)


def to_model_pixels(pixels, size):
    """Served pixels (uint8, any size) -> the float32 pixels of the model's size it was trained on."""
    return tf.cast(resize_image(pixels, size), tf.float32)


def decode_images(encoded, size):
    """A batch of encoded images -> float32 pixels [B, *size, 3], each decoded and resized as training data is."""

    def decode(one):
        return resize_image(decode_image(one), size)

    pixels = tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([*size, 3], tf.uint8))
    return tf.cast(pixels, tf.float32)


def decode_wavs(encoded, name, sample_rate, num_samples):
    """A batch of WAV files (string [B]) -> float32 waveforms [B, num_samples]: each decoded (16-bit PCM), mixed
    to mono, cropped or zero-padded at the end; a file of another rate than `sample_rate` fails with a message
    naming input `name`, the rate received and the rate expected."""
    from mmzoo.audio_files import decode_wav

    def decode(one):
        return decode_wav(one, sample_rate, num_samples, name=name)

    return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec([int(num_samples)], tf.float32))


def check_wav_bytes(name, files, sample_rate, num_samples=None):
    """Python-side check of the WAV files of input `name` (a sequence of bytes) against the model's
    `sample_rate`: each must be a WAV file `tf.audio.decode_wav` decodes (plain 16-bit PCM, fmt chunk first: see
    `mmzoo.audio_files.decode_wav_refusal`) of that rate, with at least one sample. A one-line ValueError names
    the input, the example and what is wrong (for a rate: the rate received and the rate expected), and says how
    to convert the file or to send its waveform through serving_default instead (`num_samples`, if given, is
    the model's clip length, quoted there)."""
    from mmzoo.audio_files import WavError, decode_wav_refusal, wav_header

    rate, length = int(sample_rate), "..." if num_samples is None else int(num_samples)
    send = f"send mmzoo.data.wav.load_clip(path, sample_rate={rate}, num_samples={length}) through serving_default"
    convert = f"convert it to 16-bit PCM, e.g. ffmpeg -i IN.wav -ar {rate} -ac 1 -c:a pcm_s16le OUT.wav, or {send}"
    for index, data in enumerate(files):
        where = f"Input '{name}' example {index}:"
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"{where} expected the bytes of a WAV file, got {type(data).__name__}")
        try:
            info = wav_header(data, source="the file")
        except WavError as error:
            hint = {"unsupported": f"or {send}",  # the reason names the format and the ffmpeg command
                    # numpy's fixed-width bytes ('S' arrays) drop trailing zero bytes: the end of a silent tail
                    "truncated": "send files as a list of bytes, not a numpy bytes array, which drops trailing "
                                 "zero bytes"}.get(error.problem, convert)
            raise ValueError(f"{where} {error}; {hint}") from None
        refusal = decode_wav_refusal(data, info)
        if refusal is not None:
            raise ValueError(f"{where} the file {refusal}; {convert}")
        if info.sample_rate != rate:
            raise ValueError(f"{where} a WAV file sampled at {info.sample_rate} Hz; the model takes {rate} Hz audio "
                             f"(resample it first, e.g. with mmzoo.data.wav.load_clip, and send the waveform)")


def _runtime_shape(tensor):
    """The shape `tensor` has in this request, as a vector. A signature declares `[None, None, None, 3]`, but
    TensorFlow does not enforce a signature's shape and the graph optimizer folds `tf.rank`/`tf.shape` of a
    declared rank into constants, which would make a rank check pass whatever is sent; a length that depends on
    the values (a boolean mask) keeps the check on what was received."""
    shape = tf.shape(tensor)
    return tf.boolean_mask(shape, shape >= 0)


def _shape_text(shape):
    """A runtime shape vector -> "(1, 32, 32, 3)", as Python writes shapes (so "(5,)" for one axis)."""
    end = tf.where(tf.equal(tf.size(shape), 1), ",)", ")")
    return tf.strings.join(["(", tf.strings.reduce_join(tf.strings.as_string(shape), separator=", "), end])


def _assert(condition, *parts):
    return tf.debugging.Assert(condition, [tf.strings.join(list(parts))], summarize=1)


def _pixel_checks(name, pixels):
    """Assertions that input `name` is a batch of RGB images, each at least 1 x 1. Messages leave the name
    unquoted: an assertion's message is C-escaped, which would show 'image' as \\'image\\'."""
    shape = _runtime_shape(pixels)
    sides = tf.concat([shape, tf.fill([4], -1)], 0)[:4]  # indexable whatever the rank received
    batched = tf.equal(tf.size(shape), 4)
    received = (" Received: shape ", _shape_text(shape))
    return [
        _assert(batched, f"Input {name} must be uint8 pixels of shape [batch, height, width, 3].", *received),
        _assert(~batched | tf.equal(sides[3], 3),
                f"Input {name} must have 3 channels (RGB), shape [batch, height, width, 3].", *received),
        _assert(~batched | ((sides[1] >= 1) & (sides[2] >= 1)),
                f"Input {name} must have height and width >= 1, shape [batch, height, width, 3].", *received),
    ]


def _string_checks(name, strings):
    shape = _runtime_shape(strings)
    return [_assert(tf.equal(tf.size(shape), 1), f"Input {name} must be strings of shape [batch].",
                    " Received: shape ", _shape_text(shape))]


def _waveform_checks(name, waveforms, num_samples):
    """Assertions that input `name` is a batch of `num_samples`-sample waveforms of finite values."""
    shape = _runtime_shape(waveforms)
    sides = tf.concat([shape, tf.fill([2], -1)], 0)[:2]
    batched = tf.equal(tf.size(shape), 2)
    expected = f"float32 waveforms of shape [batch, {int(num_samples)}] (zero-padded at the end)."
    return [
        _assert(batched & tf.equal(sides[1], int(num_samples)), f"Input {name} must be {expected}",
                " Received: shape ", _shape_text(shape)),
        _assert(tf.reduce_all(tf.math.is_finite(waveforms)), f"Input {name} holds NaN or infinite samples."),
    ]


def _flag_checks(name, flags):
    shape = _runtime_shape(flags)
    return [_assert(tf.equal(tf.size(shape), 1), f"Input {name} must be booleans of shape [batch].",
                    " Received: shape ", _shape_text(shape))]


_CHECKS = {"pixels": _pixel_checks, "strings": _string_checks, "flags": _flag_checks, "waveforms": _waveform_checks}


def check_request(inputs, kinds):
    """`inputs` ({name: tensor}) once every check has passed, and their common batch size. `kinds` names each
    input's kind: "pixels", "strings", "flags", or `("waveforms", num_samples)`. Shapes are checked first (a
    batch size needs a batch axis), then batch sizes: one image with three texts would otherwise be broadcast to
    three answers by some fusions."""
    checks = [check for name, kind in kinds.items()
              for check in _CHECKS[kind if isinstance(kind, str) else kind[0]](
                  name, inputs[name], *(() if isinstance(kind, str) else kind[1:]))]
    with tf.control_dependencies(checks):
        inputs = {name: tf.identity(value) for name, value in inputs.items()}
        batches = {name: tf.shape(value)[0] for name, value in inputs.items()}
    sizes = tf.stack(list(batches.values()))
    received = [part for i, (name, size) in enumerate(batches.items())
                for part in ((", " if i else "") + f"{name} ", tf.strings.as_string(size))]
    same = _assert(tf.reduce_all(tf.equal(sizes, sizes[0])),
                   "All inputs of a request must have the same batch size. Received: ", *received)
    with tf.control_dependencies([same]):
        return {name: tf.identity(value) for name, value in inputs.items()}, tf.identity(sizes[0])


def served(inputs, kinds, respond, empty):
    """`respond(checked inputs)` for a checked request; `empty()` (outputs with a batch of 0) for an empty one,
    which towers and decoders are never given: several of their ops fail on a batch of 0."""
    checked, batch_size = check_request(inputs, kinds)
    return tf.cond(batch_size > 0, lambda: respond(checked), empty)


def empty_batch(tensor_shape, dtype=tf.float32):
    """A function returning a batch of 0 of a (batch, ...) output shape whose other sides are known."""
    return lambda: tf.zeros([0, *(int(side) for side in tuple(tensor_shape)[1:])], dtype)
