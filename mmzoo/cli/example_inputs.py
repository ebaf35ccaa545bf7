"""One example's inputs from the command line (--image, --text, --audio, --input NAME=VALUE): each value matched to
an input of the model and each file read and checked here, so that a bad one is named by its flag."""

import sys

from mmzoo.cli.errors import UsageError


def predict_values(args, inputs):
    """{input name: (the flag that gave it, its value)} from --input, --image, --text and --audio: each input of
    the model once, no other."""
    given = [(f"--input {name}=", name, value) for name, value in args.inputs]
    given += [(f"--{name} ", name, value) for name, value in (("image", args.image), ("text", args.text))
              if value is not None]
    if args.audio is not None:
        given.append(("--audio ", _audio_flag_input(args.audio, inputs), args.audio))
    values = {}
    for flag, name, value in given:
        if name in values:
            raise UsageError(f"{flag}{value}: input {name!r} is given twice (also {''.join(values[name])}); "
                             f"{model_takes(inputs)}")
        if name not in inputs:
            raise UsageError(f"{flag}{value}: the model has no input {name!r}; {model_takes(inputs)}")
        values[name] = (flag, value)
    missing = [name for name in inputs if name not in values]
    if missing:
        flags = "/".join(f"--{name}" for name in inputs if name in ("image", "text", "audio"))
        how = "--input NAME=VALUE" + (f" (or {flags})" if set(inputs) <= {"image", "text", "audio"} else "")
        raise UsageError(f"no value for input(s) {', '.join(missing)}: {model_takes(inputs)}; give each with {how}")
    return values


def _audio_flag_input(path, inputs):
    """The input --audio feeds: 'audio', else the model's only audio input; a model without one is an error."""
    audio = [name for name, kind in inputs.items() if kind == "audio"]
    if "audio" in inputs or len(audio) > 1:
        return "audio"  # several audio inputs: each by name (--input NAME=FILE.wav)
    if not audio:
        raise UsageError(f"--audio {path}: the model has no audio input; {model_takes(inputs)}")
    return audio[0]


def model_takes(inputs):
    what = {"image": "an image file", "audio": "a WAV file"}
    described = ", ".join(f"{name} ({what.get(kind, 'a text')})" for name, kind in inputs.items())
    return f"the model takes {described}"


def read_image(flag, path, inputs):
    """The bytes of an image file, checked here so that a bad file is named by its input: a regular file within
    the limits of `mmzoo.images` (exports made before those limits do not check them), then decoded once."""
    import tensorflow as tf

    from mmzoo.images import SUPPORTED, ImageFileError, decode_image, read_image_file

    try:
        encoded = read_image_file(path)
    except FileNotFoundError:
        raise UsageError(f"{flag}{path}: image file not found; {model_takes(inputs)}") from None
    except ImageFileError as error:
        raise UsageError(f"{flag}{path}: {error.reason}") from None
    except OSError as error:
        raise UsageError(f"{flag}{path}: image file cannot be read: {error.strerror or error}") from None
    try:
        decode_image(tf.constant(encoded))
    except tf.errors.InvalidArgumentError:
        raise UsageError(f"{flag}{path}: not a {SUPPORTED} image, or a corrupt one") from None
    return encoded


def read_audio(flag, path, inputs, sample_rate, num_samples, *, resample=False):
    """float32 (num_samples,) of a WAV file, as the model's audio input takes it (`mmzoo.audio_files.load_clip`),
    checked here so that a bad file is named by its input. Another sampling rate is an error unless `resample`;
    a clip longer than the model's is cropped, and stderr says so."""
    from mmzoo.audio_files import WavError, load_clip, wav_info

    try:
        info = wav_info(path)
        if info.sample_rate != sample_rate and not resample:
            raise UsageError(f"{flag}{path}: a WAV file sampled at {info.sample_rate} Hz; the model takes "
                             f"{sample_rate} Hz audio (give --resample to resample it)")
        clip = load_clip(path, sample_rate=sample_rate, num_samples=num_samples)
    except FileNotFoundError:
        raise UsageError(f"{flag}{path}: audio file not found; {model_takes(inputs)}") from None
    except WavError as error:
        raise UsageError(f"{flag}{path}: {error.reason}") from None
    except OSError as error:
        raise UsageError(f"{flag}{path}: audio file cannot be read: {error.strerror or error}") from None
    if info.duration > num_samples / sample_rate:
        print(f"mmzoo predict: {path} is {info.duration:.2f} s long; the model hears its first "
              f"{num_samples / sample_rate:.2f} s", file=sys.stderr)
    return clip


def read_speech(paths, sample_rate, num_samples, resample):
    """float32 [len(paths), num_samples]: each WAV file as the transcriber takes it (`mmzoo.data.wav.load_clip`),
    a bad file named by its path. Another sampling rate is an error unless `resample` (then stderr says so); a clip
    longer than the model's is cropped, and stderr says so."""
    import numpy as np

    from mmzoo.data.wav import WavError, load_clip, wav_info

    clips = []
    for path in paths:
        try:
            info = wav_info(path)
            if info.sample_rate != sample_rate and not resample:
                raise UsageError(f"--audio {path}: a WAV file sampled at {info.sample_rate} Hz; the model takes "
                                 f"{sample_rate} Hz audio (give --resample to resample it)")
            clips.append(load_clip(path, sample_rate=sample_rate, num_samples=num_samples))
        except FileNotFoundError:
            raise UsageError(f"--audio {path}: audio file not found") from None
        except WavError as error:
            raise UsageError(f"--audio {path}: {error.reason}") from None
        if info.sample_rate != sample_rate:
            print(f"mmzoo transcribe: {path} resampled from {info.sample_rate} Hz to {sample_rate} Hz", file=sys.stderr)
        if info.duration > num_samples / sample_rate:
            print(f"mmzoo transcribe: {path} is {info.duration:.2f} s long; the model hears its first "
                  f"{num_samples / sample_rate:.2f} s", file=sys.stderr)
    return np.stack(clips).astype(np.float32)
