"""SavedModel export for serving: raw pixels (or encoded image bytes), strings and waveforms (or WAV bytes) in,
probabilities out, or, for a dual encoder, one embedding signature per encoder (for a vector index).

Layout is TF Serving's `<root>/<name>/<version>/`. Every write goes to a hidden temporary directory beside the
target and is renamed into place only when complete, so a failed or interrupted export never leaves a partial
model and never damages an existing version. Beside the SavedModel, `assets.extra/mmzoo.json` (a folder TF
Serving leaves alone) records each input's kind, image size or sampling rate and clip length, and the class names,
for `ExportedModel`.
"""

import contextlib
import json
import os
import re
import types

import keras
import numpy as np
import tensorflow as tf

from mmzoo import export_dirs
from mmzoo.heads import find_class_names
from mmzoo.towers.registry import Modality, get_input_kind
# The request checks live in mmzoo.serving_checks, shared with the captioner's export; the private names stay
# for this module's callers.
from mmzoo.serving_checks import (METADATA_FILE, SERVING_DEFAULT, SERVING_IMAGE_BYTES,  # noqa: F401
                                  SERVING_WAV_BYTES, WAV_SUFFIX, check_wav_bytes, decode_images as _decode_images,
                                  decode_wavs, empty_batch as _empty, pixel_spec as _pixel_spec, served as _served,
                                  string_spec as _string_spec, to_model_pixels as _to_model_pixels, waveform_spec)

SERVING_PRESENCE = "serving_presence"
EMBED_PREFIX = "embed_"
_ENCODER_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def export_model(model, path, *, overwrite=False):
    """Export `model` as a SavedModel and return the version directory written.

    `path` is either a version directory (`saved_models/vqa/3`) or a model directory (`saved_models/vqa`), in
    which case the next free version number is used. An existing version is replaced only with `overwrite=True`.

    Signatures follow the model's inputs (its `modalities`, or for another Keras model its input tensors: images
    (H, W, 3) and scalar strings). `serving_default` takes each image input as uint8 pixels `[None, None, None,
    3]` and each text input as string `[None]`, and returns `probabilities` and, when the model carries class
    names, `label`. `serving_image_bytes` takes each image input as encoded JPEG/PNG/GIF/BMP bytes instead
    (`<name>_bytes`, string `[None]`), decoded by `mmzoo.images.decode_image`.

    Audio inputs (docs/audio.md): `serving_default` takes each as float32 waveforms `[None, num_samples]` in
    [-1, 1] at the model's sampling rate, zero-padded at the end. `serving_wav_bytes` takes each audio input as
    WAV file bytes instead (`<name>_wav`, string `[None]`; other inputs as in `serving_default`): 16-bit PCM,
    decoded by `tf.audio.decode_wav`, channels mixed down to mono by their mean, cropped or zero-padded at the
    end to `num_samples`. TensorFlow has no resampler in the graph, so a file of another sampling rate fails
    with a message naming the input, the rate received and the rate expected (in the graph, and before it in
    `ExportedModel`).

    Resize policy: pixels of another size than the model's, whether sent to `serving_default` or decoded from
    bytes, are resized inside the graph by `mmzoo.images.resize_image` (bilinear, antialiased, rounded to
    uint8), the function `mmzoo.data` resizes training images with; pixels of the model's size pass unchanged.
    So a photo gives the same probabilities whether it is served as bytes, as pixels of its own size, or read by
    `mmzoo.data` at the model's size and served. The aspect ratio is not kept: crop first if it matters.

    A trainer (`mmzoo.trainers`) names what it serves in its `inference_model` (the classifier, the student);
    only that is exported, never the training wrapper. A captioner (`task == "caption"`) is exported by
    `mmzoo.captioning.export_captioner`, a transcriber (`task == "transcribe"`) by
    `mmzoo.transcription.export_transcriber` (waveforms or WAV bytes in, transcripts out).

    `model` may also be a dict of encoders, `{"image": image_encoder, "text": text_encoder}` (what a
    `DualEncoder`'s `inference_model` is): each takes one image (H, W, 3) or string input and returns one
    embedding, and gets a signature `embed_<key>` (uint8 pixels, strings or waveforms under `<key>`, `embedding`
    out), plus `embed_<key>_bytes` (encoded images under `<key>_bytes`) for an image encoder, resized as above,
    and `embed_<key>_wav` (WAV bytes under `<key>_wav`) for an audio encoder, decoded as above.
    `serving_default` is the first of them.
    """
    model = getattr(model, "inference_model", model)
    if getattr(model, "task", None) == "caption":  # an ImageCaptioner: images in, generated captions out
        from mmzoo.captioning.export import export_captioner

        return export_captioner(model, path, overwrite=overwrite)
    if getattr(model, "task", None) == "transcribe":  # a SpeechTranscriber: waveforms in, transcripts out
        from mmzoo.transcription.export import export_transcriber

        return export_transcriber(model, path, overwrite=overwrite)
    if isinstance(model, dict):
        specs = _encoder_specs(model)
        models = list(model.values())
    elif isinstance(model, keras.Model):
        specs = _input_specs(model)
        models = [model]
    else:
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    model_dir, version = export_dirs.split_target(path)
    with export_dirs.Staging(model_dir, version, overwrite=overwrite) as staging:
        with _portable_recurrent_layers(*models):
            _build_archive(model, specs).write_out(staging.path, verbose=False)
        _write_metadata(staging.path, specs, None if isinstance(model, dict) else _class_names(model))
        return staging.publish()


def _input_specs(model):
    """{input name: (kind, size)}, size being (height, width) for an image, (sample_rate, num_samples) for audio
    and None for text: from `model.modalities` (mmzoo models), else from a functional model's dict of inputs,
    each an image (H, W, 3), a scalar string or a waveform (batch, samples) read by a `LogMelSpectrogram`."""
    modalities = getattr(model, "modalities", None)
    if isinstance(modalities, dict) and modalities:
        specs = {}
        for name, modality in modalities.items():
            kind = getattr(modality, "kind", None)
            if kind == "image":
                specs[name] = (kind, _pair(modality.image_size))
            elif kind == "audio":
                specs[name] = (kind, (int(modality.options["sample_rate"]), int(modality.options["num_samples"])))
            elif kind == "text":
                specs[name] = (kind, None)
            else:
                raise ValueError("export_model serves image, text and audio inputs. Received: input "
                                 f"{name!r} of kind {kind!r}")
        return specs
    try:
        structure = model.input
    except (AttributeError, ValueError):  # a subclassed or unbuilt model has no symbolic inputs
        structure = None
    if not isinstance(structure, dict):
        raise ValueError(
            "export_model serves functional models whose inputs are a dict of images (H, W, 3) and scalar "
            f"strings, such as mmzoo.build_model() returns. Received: inputs {structure!r}"
        )
    rates = _audio_rates(model)
    return {name: _tensor_spec(tensor, f"input '{name}'", rates) for name, tensor in structure.items()}


def _audio_rates(model):
    """The sampling rates of the `LogMelSpectrogram` front ends inside `model` (mmzoo's audio towers)."""
    from mmzoo.towers.audio_features import LogMelSpectrogram

    return sorted({layer.sample_rate for layer in model._flatten_layers(include_self=False, recursive=True)
                   if isinstance(layer, LogMelSpectrogram)})


def _tensor_spec(tensor, what, rates=()):
    """(kind, size) of one model input; a float (batch, samples) input is audio when the model holds an audio
    front end of one sampling rate (which a bare tensor does not tell)."""
    shape, dtype = tuple(tensor.shape), tensor.dtype
    if dtype == "string" and len(shape) == 1:
        return "text", None
    if len(shape) == 4 and shape[-1] == 3 and None not in shape[1:]:
        return "image", (int(shape[1]), int(shape[2]))
    if len(shape) == 2 and shape[1] is not None and "float" in str(dtype) and len(rates) == 1:
        return "audio", (int(rates[0]), int(shape[1]))
    raise ValueError(
        f"export_model serves inputs that are images (H, W, 3), scalar strings or waveforms (batch, samples) of "
        f"an audio tower. Received: {what} with shape {shape} and dtype {dtype}"
    )


def _pair(size):
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def _class_names(model):
    names = getattr(model, "class_names", None)
    names = find_class_names(model) if names is None else names
    return [str(name) for name in names] if names else None


def _encoder_specs(encoders):
    """{key: (kind, (height, width) or None)} for a dict of single-input, single-output encoders."""
    if not encoders:
        raise ValueError("`model` is an empty dict; give keras.Model encoders, e.g. {'image': ..., 'text': ...}.")
    specs = {}
    for key, encoder in encoders.items():
        if not isinstance(key, str) or not _ENCODER_KEY.match(key):
            raise ValueError(f"Encoder names must be lowercase identifiers (they name signatures). Received: {key!r}")
        if not isinstance(encoder, keras.Model):
            raise ValueError(f"`model` must be a keras.Model or a dict of them. Received: model[{key!r}]={encoder!r}")
        try:
            inputs, outputs = encoder.inputs, encoder.outputs
        except (AttributeError, ValueError):
            inputs = outputs = None
        if not inputs or len(inputs) != 1 or not outputs or len(outputs) != 1:
            raise ValueError(
                "Each encoder of a dict export must be a functional model with one input (an image (H, W, 3), a "
                f"scalar string or a waveform) and one output. Received: model[{key!r}] with inputs {inputs!r}"
            )
        specs[key] = _tensor_spec(inputs[0], f"model[{key!r}]", _audio_rates(encoder))
    return specs


def _metadata_entry(kind, size):
    if kind == "image":
        return {"kind": kind, "image_size": list(size)}
    if kind == "audio":
        return {"kind": kind, "sample_rate": size[0], "num_samples": size[1]}
    return {"kind": kind}


def _write_metadata(directory, specs, class_names):
    inputs = {name: _metadata_entry(kind, size) for name, (kind, size) in specs.items()}
    path = os.path.join(directory, METADATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"inputs": inputs, "class_names": class_names}, f, indent=2)


def _build_encoder_archive(encoders, specs):
    archive = keras.export.ExportArchive()
    for key, encoder in encoders.items():
        archive.track(encoder)
        for name, (endpoint, signature) in _encoder_endpoints(encoder, key, *specs[key]).items():
            archive.add_endpoint(f"{EMBED_PREFIX}{name}", endpoint, input_signature=[signature])
    return archive


def _encoder_endpoints(encoder, key, kind, size):
    """{signature name after `embed_`: (function, input spec)} of one encoder."""
    empty = _empty(encoder.outputs[0].shape)

    def embed(name, check, prepare):
        def respond(checked):
            return {"embedding": tf.cast(encoder(prepare(checked[name]), training=False), tf.float32)}

        return lambda inputs: _served(inputs, {name: check}, respond, lambda: {"embedding": empty()})

    endpoints = {}
    # The plain input, then for an image or audio encoder its encoded form (`<key>_bytes`, `<key>_wav`).
    for encoded in (None, kind) if kind in _ENCODED else (None,):
        request_key, check, spec, prepare = _signature_input(key, kind, size, encoded)
        endpoints[request_key] = (embed(request_key, check, prepare), {request_key: spec})
    return endpoints


# What each kind's encoded form is sent as: the suffix of its request key and the decoder in the graph.
_ENCODED = {
    "image": ("_bytes", lambda name, size: lambda encoded: _decode_images(encoded, size)),
    "audio": (WAV_SUFFIX, lambda name, size: lambda encoded: decode_wavs(encoded, name, *size)),
}


def _signature_input(name, kind, size, encoded=None):
    """How a signature takes input `name` of `kind`: `(request key, in-graph check kind, tf.TensorSpec, function
    from the checked request tensor to what the model takes)`. `encoded`: the kind sent encoded (image bytes,
    WAV bytes) in this signature; other kinds come as `serving_default` takes them."""
    if kind == encoded:
        suffix, decoder = _ENCODED[kind]
        key = f"{name}{suffix}"
        return key, "strings", _string_spec(key), decoder(key, size)
    if kind == "image":
        return name, "pixels", _pixel_spec(name), lambda pixels: _to_model_pixels(pixels, size)
    if kind == "audio":
        return name, ("waveforms", size[1]), waveform_spec(name, size[1]), tf.identity
    return name, "strings", _string_spec(name), tf.identity


def _serving_function(specs, outputs, empty, encoded=None, flags=False):
    """`(function, input signature)` of a classifier's signature over `specs`: `encoded` names the kind sent
    encoded (None: `serving_default`), `flags` adds a boolean `<name>_present` [None] per input."""
    entries = {name: _signature_input(name, kind, size, encoded) for name, (kind, size) in specs.items()}
    flag_keys = [f"{name}_present" for name in specs] if flags else []

    def serve(inputs):
        kinds = {key: check for key, check, _, _ in entries.values()}
        kinds.update({flag: "flags" for flag in flag_keys})

        def respond(checked):
            fed = {name: prepare(checked[key]) for name, (key, _, _, prepare) in entries.items()}
            fed.update({flag: checked[flag] for flag in flag_keys})
            return outputs(fed)

        return _served(inputs, kinds, respond, empty)

    signature = {key: spec for key, _, spec, _ in entries.values()}
    signature.update({flag: tf.TensorSpec([None], tf.bool, name=flag) for flag in flag_keys})
    return serve, signature


def _build_archive(model, specs):
    if isinstance(model, dict):
        return _build_encoder_archive(model, specs)
    class_names = _class_names(model)

    def outputs(inputs):
        logits = model(inputs, training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        result = {"probabilities": probabilities}
        if class_names:
            result["label"] = tf.gather(tf.constant(class_names), tf.argmax(probabilities, axis=-1))
        return result

    def empty():
        result = {"probabilities": _empty(model.outputs[0].shape)()}
        if class_names:
            result["label"] = tf.zeros([0], tf.string)
        return result

    archive = keras.export.ExportArchive()
    archive.track(model)
    kinds = {kind for kind, _ in specs.values()}
    for name, encoded in ((SERVING_DEFAULT, None), (SERVING_IMAGE_BYTES, "image"), (SERVING_WAV_BYTES, "audio")):
        if encoded is None or encoded in kinds:
            serve, signature = _serving_function(specs, outputs, empty, encoded)
            archive.add_endpoint(name, serve, input_signature=[signature])
    if getattr(model, "takes_presence", False):
        # A signature's inputs are all required (TF Serving refuses a request that leaves one out), so the flags
        # live in a signature of their own and `serving_default` keeps the inputs its clients send; an absent
        # input is sent as anything of the right kind (`ExportedModel` sends its kind's placeholder) with its
        # flag False.
        serve, signature = _serving_function(specs, outputs, empty, flags=True)
        archive.add_endpoint(SERVING_PRESENCE, serve, input_signature=[signature])
    return archive


@contextlib.contextmanager
def _portable_recurrent_layers(*models):
    """Trace LSTM/GRU with the generic kernel: a graph traced on a GPU would otherwise bake in CudnnRNN ops
    that a CPU-only server cannot run. Same weights, same maths."""
    changed = []
    for model in models:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if getattr(layer, "use_cudnn", False) in ("auto", True) and all(layer is not seen for seen, _ in changed):
                changed.append((layer, layer.use_cudnn))
                layer.use_cudnn = False
    try:
        yield
    finally:
        for layer, value in changed:
            layer.use_cudnn = value


def _request_arrays(inputs, specs, wav_rates=None):
    """The checked tensors of a request to a signature taking `specs` ({name: tf.TensorSpec}). The signature
    checks the same in its graph; checking here first gives a ValueError that names the input before any
    TensorFlow op runs, and catches what the graph cannot see (float pixels, numbers sent as text, int16
    samples, a WAV file's sampling rate). `wav_rates`: {request key of WAV bytes: the model's sampling rate}."""
    wav_rates = wav_rates or {}
    arrays = {}
    for name, spec in specs.items():
        if spec.dtype == tf.uint8:
            arrays[name] = _pixels_array(name, inputs[name], spec)
        elif spec.dtype == tf.string and name in wav_rates:
            arrays[name] = _wav_array(name, inputs[name], wav_rates[name])
        elif spec.dtype == tf.string:
            arrays[name] = _strings_array(name, inputs[name])
        elif spec.dtype == tf.float32 and spec.shape.rank == 2:
            arrays[name] = _waveforms_array(name, inputs[name], spec)
        else:
            arrays[name] = np.asarray(inputs[name])
    sizes = {name: array.shape[0] for name, array in arrays.items() if array.ndim}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise ValueError(f"All inputs of a request must have the same batch size. Received: {shown}")
    return {name: tf.convert_to_tensor(array, dtype=specs[name].dtype) for name, array in arrays.items()}


def _as_array(name, value, expected):
    try:
        return np.asarray(value)
    except ValueError:  # a list of arrays of different shapes
        raise ValueError(f"Input '{name}' must be one array of {expected}. Received: a {type(value).__name__} of "
                         "items of different shapes (send images of different sizes in separate requests)") from None


def _pixels_array(name, value, spec):
    """uint8 pixels [batch, height, width, 3]; whole-number pixels of another real dtype in 0..255 are cast."""
    height, width = spec.shape[1] or "height", spec.shape[2] or "width"  # sizes: exports written before resizing
    expected = f"uint8 pixels of shape [batch, {height}, {width}, 3]"
    pixels = _as_array(name, value, expected)
    if pixels.ndim != 4 or pixels.shape[3] != 3:
        raise ValueError(f"Input '{name}' must be {expected}. Received: shape {pixels.shape}")
    fixed = [(i, spec.shape[i]) for i in (1, 2) if spec.shape[i] is not None]
    if min(pixels.shape[1:3]) < 1 or any(pixels.shape[i] != size for i, size in fixed):
        raise ValueError(f"Input '{name}' must be {expected}, height and width >= 1. Received: shape {pixels.shape}")
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.bool_ or not np.issubdtype(pixels.dtype, np.number) or np.iscomplexobj(pixels):
        raise ValueError(f"Input '{name}' must be {expected}. Received: dtype {pixels.dtype}")
    if pixels.size and np.issubdtype(pixels.dtype, np.floating) and np.all((pixels >= 0) & (pixels <= 1)):
        raise ValueError(f"Input '{name}' holds float pixels in [0, 1]; pixels are 0..255 uint8. Received: dtype "
                         f"{pixels.dtype}, values in [0, 1] (multiply by 255, round and cast to uint8)")
    if pixels.size and not (np.all((pixels >= 0) & (pixels <= 255)) and np.all(np.mod(pixels, 1) == 0)):
        raise ValueError(f"Input '{name}' must be {expected} (or whole numbers in 0..255). Received: dtype "
                         f"{pixels.dtype}, values from {pixels.min()} to {pixels.max()}")
    return pixels.astype(np.uint8)


def _waveforms_array(name, value, spec):
    """float32 waveforms [batch, num_samples] of finite values in [-1, 1]."""
    samples = spec.shape[1]
    expected = f"float32 waveforms of shape [batch, {samples}] in [-1, 1], zero-padded at the end"
    waveforms = _as_array(name, value, expected)
    if waveforms.ndim != 2 or (samples is not None and waveforms.shape[1] != samples):
        hint = (" (one clip: wrap it in a list)" if waveforms.ndim == 1 and waveforms.shape[0] == samples else
                f" (crop or zero-pad each clip at the end to {samples} samples, e.g. mmzoo.data.wav.fit_length)")
        raise ValueError(f"Input '{name}' must be {expected}. Received: shape {waveforms.shape}{hint}")
    if waveforms.dtype.kind in "iu":
        raise ValueError(f"Input '{name}' must be {expected}. Received: dtype {waveforms.dtype} (integer PCM samples: "
                         "divide int16 samples by 32768)")
    if waveforms.dtype.kind != "f":
        raise ValueError(f"Input '{name}' must be {expected}. Received: dtype {waveforms.dtype}")
    if not np.all(np.isfinite(waveforms)):
        raise ValueError(f"Input '{name}' holds NaN or infinite samples; it must be {expected}")
    if waveforms.size and np.abs(waveforms).max() > 1.0:
        whole = np.all(np.mod(waveforms, 1) == 0)
        hint = "integer PCM samples: divide int16 samples by 32768" if whole else "scale or clip them to [-1, 1]"
        raise ValueError(f"Input '{name}' must be {expected}. Received: values from {waveforms.min()} to "
                         f"{waveforms.max()} ({hint})")
    return waveforms.astype(np.float32)


def _wav_array(name, value, sample_rate):
    """WAV file bytes [batch], each checked (`mmzoo.serving_checks.check_wav_bytes`), kept in an object array:
    numpy's fixed-width bytes drop trailing zero bytes, which end the data of a clip that ends in silence."""
    if isinstance(value, (bytes, bytearray)):
        raise ValueError(f"Input '{name}' must be WAV file bytes of shape [batch]. Received: one bytes object "
                         "(one file: wrap it in a list)")
    files = list(np.asarray(value, dtype=object).reshape(-1)) if isinstance(value, np.ndarray) else list(value)
    check_wav_bytes(name, files, sample_rate)
    return np.array([bytes(data) for data in files] or [], dtype=object)


def _strings_array(name, value):
    """Strings (str or bytes) of shape [batch]."""
    strings = _as_array(name, value, "strings of shape [batch]")
    if strings.ndim != 1:
        hint = " (one string: wrap it in a list)" if strings.ndim == 0 and isinstance(value, (str, bytes)) else ""
        raise ValueError(f"Input '{name}' must be strings of shape [batch]. Received: shape {strings.shape}{hint}")
    if not strings.size:  # np.asarray([]) is float64: an empty batch has no values to be of the wrong type
        return np.array([], dtype=object)
    if strings.dtype.kind not in "USO" or (strings.dtype.kind == "O" and
                                          not all(isinstance(item, (str, bytes)) for item in strings)):
        kinds = sorted({type(item).__name__ for item in strings}) if strings.dtype.kind == "O" else [strings.dtype]
        raise ValueError(f"Input '{name}' must be strings (str or bytes) of shape [batch]. Received: "
                         f"{', '.join(map(str, kinds))} values")
    if strings.dtype.kind == "O":  # str and bytes mixed: one encoding for both
        strings = np.array([item.encode("utf-8") if isinstance(item, str) else item for item in strings], dtype=object)
    return strings


def _plain_request(inputs, names):
    """Whether `inputs` is what `serving_default` takes: every input, no flag."""
    return isinstance(inputs, dict) and set(inputs) == set(names)


def _served_modality(name, entry):
    """The `Modality` an export's metadata entry (`{"kind": ..., "image_size": [h, w]}`, or `"sample_rate"` and
    `"num_samples"` for audio) describes, as far as its kind's placeholder needs: name, kind, raw shape and
    dtype."""
    kind = get_input_kind(entry["kind"])
    options = {key: value for key, value in entry.items() if key != "kind"}
    if "image_size" in entry:
        options["image_size"] = int(entry["image_size"][0])
    options = types.MappingProxyType(options)
    return Modality(name=name, kind=kind.name, tower=None, backbone_key=name, shape=kind.raw_shape(options),
                    dtype=kind.raw_dtype, options=options)


def _placeholder(name, metadata, spec, batch):
    """`batch` stand-ins for the absent input `name`: its kind's placeholder (`InputKind.placeholder`, black
    pixels at the model's size, empty strings), in the dtype the signature takes."""
    if metadata is None:  # every export with serving_presence records its inputs' kinds
        raise ValueError(f"This export records no input kinds ({METADATA_FILE}), so no placeholder can stand in for "
                         f"the missing input {name!r}; send every input with its <name>_present flag.")
    modality = _served_modality(name, metadata["inputs"][name])
    return tf.cast(get_input_kind(modality.kind).placeholder(modality, batch), spec.dtype).numpy()


def _presence_request(inputs, names, specs, metadata):
    """A request for `serving_presence` (whose inputs are `specs`): every flag (given, or True), and for a
    missing input its kind's placeholder, which the model leaves out, with its flag False. `metadata`: the
    export's `mmzoo.json` (what kind each input is)."""
    if not isinstance(inputs, dict):
        raise ValueError(f"Expected a dict of inputs. Received: {type(inputs).__name__}")
    flags = {f"{name}_present" for name in names}
    unknown = sorted(set(inputs) - set(names) - flags)
    if unknown:
        raise ValueError(f"Unknown input(s) {unknown}. Expected some of {sorted(names)} and their flags "
                         f"{sorted(flags)}")
    given = [name for name in names if name in inputs]
    if not given:
        raise ValueError(f"A request needs at least one of the inputs {sorted(names)}. Received: {sorted(inputs)}")
    batch = len(inputs[given[0]])
    request = {}
    for name in names:
        flag = f"{name}_present"
        if name in inputs:
            request[name] = inputs[name]
            request[flag] = np.asarray(inputs.get(flag, np.ones(batch, bool)), dtype=bool)
        else:
            request[name] = _placeholder(name, metadata, specs[name], batch)
            request[flag] = np.zeros(batch, bool)
    return request


class ExportedModel:
    """A reloaded export. Call it with a dict of numpy-like inputs; get a dict of numpy outputs."""

    def __init__(self, path):
        self.path = path
        self.saved_model = tf.saved_model.load(path)
        self.signatures = self.saved_model.signatures
        metadata_path = os.path.join(path, METADATA_FILE)
        self.metadata = None  # exports written before mmzoo recorded it have none
        if os.path.isfile(metadata_path):
            with open(metadata_path, encoding="utf-8") as f:
                self.metadata = json.load(f)

    def __call__(self, inputs):
        """Probabilities (and labels) for a dict of inputs. An export of a model that takes presence flags also
        answers requests without some inputs, or with `<name>_present` flags, through `serving_presence`."""
        if SERVING_PRESENCE in self.signatures and not _plain_request(inputs, self.input_names()):
            specs = self.signatures[SERVING_PRESENCE].structured_input_signature[1]
            return self._run(SERVING_PRESENCE, _presence_request(inputs, self.input_names(), specs, self.metadata))
        return self._run(SERVING_DEFAULT, inputs)

    def predict_image_bytes(self, inputs):
        """Like calling the model, with encoded images under `<name>_bytes` keys."""
        return self._run(SERVING_IMAGE_BYTES, inputs)

    def predict_wav_bytes(self, inputs):
        """Like calling the model, with each audio input as a list of WAV file bytes (16-bit PCM at the model's
        sampling rate, mono or stereo) under `<name>_wav`; other inputs as when calling it."""
        return self._run(SERVING_WAV_BYTES, inputs)

    def input_names(self):
        """Names of the inputs `serving_default` takes, e.g. ("image", "text")."""
        return tuple(sorted(self.signatures[SERVING_DEFAULT].structured_input_signature[1]))

    def num_classes(self):
        """Width of the `probabilities` output."""
        return self.signatures[SERVING_DEFAULT].structured_outputs["probabilities"].shape[-1]

    def image_sizes(self):
        """`{image input name: (height, width)}`: the size the model sees, that served images are resized to."""
        if self.metadata is not None:
            return {name: tuple(spec["image_size"]) for name, spec in self.metadata["inputs"].items()
                    if spec["kind"] == "image"}
        # Older exports take pixels of exactly the model's size only.
        specs = self.signatures[SERVING_DEFAULT].structured_input_signature[1]
        return {name: (int(spec.shape[1]), int(spec.shape[2])) for name, spec in specs.items()
                if spec.dtype == tf.uint8 and spec.shape[1] is not None}

    def audio_inputs(self):
        """`{audio input (or encoder) name: {"sample_rate": Hz, "num_samples": clip length}}` of the export."""
        if self.metadata is None:
            return {}
        return {name: {"sample_rate": int(spec["sample_rate"]), "num_samples": int(spec["num_samples"])}
                for name, spec in self.metadata["inputs"].items() if spec["kind"] == "audio"}

    def class_names(self):
        """The model's class names (what `label` holds), or None when it has none or the export predates them."""
        names = None if self.metadata is None else self.metadata.get("class_names")
        return list(names) if names else None

    def serve_tensors(self, inputs):
        """`probabilities` for a dict of tensors (pixels of any real dtype, strings), in eager or graph code such
        as a `tf.data` map (where a distillation teacher runs)."""
        signature = self.signatures[SERVING_DEFAULT]
        feeds = {}
        for name, spec in signature.structured_input_signature[1].items():
            value = inputs[name]
            if spec.dtype == tf.uint8 and value.dtype != tf.uint8:
                value = tf.cast(tf.clip_by_value(tf.round(tf.cast(value, tf.float32)), 0.0, 255.0), tf.uint8)
            feeds[name] = value
        return signature(**feeds)["probabilities"]

    def embed(self, key, values):
        """Embeddings from the `embed_<key>` signature of a dual-encoder export, e.g. `embed("text", ["a red
        car"])`; `key` may end in `_bytes` for encoded images. Returns float32 numpy [N, dim]."""
        return self._run(f"{EMBED_PREFIX}{key}", {key: values})["embedding"]

    def embed_images(self, images):
        """Embeddings of images: uint8 (or float, rounded and clipped) pixels [N, H, W, 3]."""
        return self.embed("image", images)

    def embed_image_bytes(self, encoded):
        """Embeddings of encoded JPEG/PNG/GIF/BMP images (a list of bytes), resized to the encoder's size."""
        return self.embed("image_bytes", encoded)

    def embed_waveforms(self, waveforms, key="audio"):
        """Embeddings of waveforms (float32 [N, num_samples]) from the audio encoder `key`."""
        return self.embed(key, waveforms)

    def embed_wav_bytes(self, files, key="audio"):
        """Embeddings of WAV files (a list of bytes) from the audio encoder `key`."""
        return self.embed(f"{key}{WAV_SUFFIX}", files)

    def embed_texts(self, texts):
        """Embeddings of texts: a list or array of strings [N]."""
        return self.embed("text", texts)

    def run(self, signature_name, inputs):
        """Call any signature with a dict of numpy-like inputs; returns a dict of numpy outputs."""
        return self._run(signature_name, inputs)

    def _run(self, signature_name, inputs):
        if signature_name not in self.signatures:
            raise ValueError(f"{self.path} has no signature '{signature_name}'. It has: {sorted(self.signatures)}")
        signature = self.signatures[signature_name]
        expected = signature.structured_input_signature[1]
        if not isinstance(inputs, dict) or set(inputs) != set(expected):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f"Expected a dict with keys {sorted(expected)}. Received: {got}")
        wav_rates = {f"{name}{WAV_SUFFIX}": audio["sample_rate"] for name, audio in self.audio_inputs().items()}
        feeds = _request_arrays(inputs, expected, wav_rates)
        outputs = {name: value.numpy() for name, value in signature(**feeds).items()}
        if "label" in outputs:  # dtype=str: an empty batch gives an empty array of strings, not of floats
            outputs["label"] = np.array([label.decode("utf-8") for label in outputs["label"]], dtype=str)
        return outputs


def load_exported(path):
    """Reload an export. `path` is a version directory, or a model directory whose highest complete version is
    used (an empty or partial version is skipped; see `mmzoo.export_dirs.choose_version`)."""
    version = export_dirs.choose_version(path)
    try:
        return ExportedModel(version)
    except tf.errors.OpError as error:  # e.g. DataLossError for cut variables: its message names no file
        reason = (error.message or type(error).__name__).strip().splitlines()[0]
        raise ValueError(f"Cannot load the export {version}: {reason}; the SavedModel is damaged.") from None
