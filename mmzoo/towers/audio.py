"""Audio towers: a raw mono waveform in, a pooled vector or a sequence of time tokens (with their mask) out.

Every tower starts with the front end of mmzoo/towers/audio_features.py (log-mel frames normalised per example,
computed in float32 inside the model, so an export serves raw audio) and is a `keras.Model` built by a function
registered with `@register_tower(name, kind="audio")`:

- `mel_cnn`: a small 2-D CNN over (time, mel); each stage conv-BN-ReLU then max-pools mel by 2 and, in the first
  `time_pools` stages, time by 2. Time tokens are the per-step `Dense(units)` of the flattened (mel, channels).
- `mel_crnn`: the same CNN, then a GRU/LSTM (or bidirectional) over its time steps; tokens are its states.

Time downsampling: a tower's time tokens are `downsampling = 2 ** time_pools` frames each (`time_downsampling`);
a clip of L valid samples gives `ceil((L // stride + 1) / downsampling)` valid tokens (`output_length`), the
lengths a CTC loss over the tokens takes. With `output="tokens"` a tower model returns `[tokens, token_mask]`;
`AudioInput.encode` (what classifiers use) and `apply_audio_tower` attach the mask to the tokens as their Keras
mask, so attention fusions ignore padding.
"""

import inspect
import numbers

import keras
from keras import ops

from mmzoo.audio_files import fit_length
from mmzoo.towers.audio_features import (LogMelSpectrogram, SpecAugment, WaveformMask, frame_params, num_frames,
                                         num_tokens)
from mmzoo.towers.registry import InputKind, get_tower, register_input_kind, register_tower

OUTPUT_MODES = ("pooled", "tokens")
RECURRENT = ("gru", "lstm", "bigru", "bilstm")
POOLING = ("mean", "last")
SPEC_AUGMENT_DEFAULTS = {"time_masks": 2, "time_mask_frames": 10, "freq_masks": 2, "freq_mask_bins": 8,
                         "seed": None}


# === Option checks ===


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(choices)}. Received: {name}={value!r}")
    return value


def spec_augment_options(value):
    """`spec_augment` as a dict of `SpecAugment` arguments, or None (off). Takes None/False (off), True (the
    defaults, `SPEC_AUGMENT_DEFAULTS`) or a dict overriding some of them, e.g. `{"time_masks": 1, "seed": 3}`."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(SPEC_AUGMENT_DEFAULTS)
    if not isinstance(value, dict) or set(value) - set(SPEC_AUGMENT_DEFAULTS):
        raise ValueError(
            f"`spec_augment` must be None, False, True or a dict with some of the keys "
            f"{', '.join(SPEC_AUGMENT_DEFAULTS)}. Received: spec_augment={value!r}")
    options = {**SPEC_AUGMENT_DEFAULTS, **value}
    for key in ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins"):
        _positive_int(f"spec_augment[{key!r}]", options[key], minimum=0)
    if options["seed"] is not None:
        _positive_int("spec_augment['seed']", options["seed"], minimum=0)
    return options


def _check_tower(sample_rate, num_samples, mel_bins, frame_length_ms, frame_step_ms, widths, time_pools, units):
    """The tower's numeric arguments, checked; returns the widths as a tuple of ints."""
    _positive_int("sample_rate", sample_rate, minimum=1000)
    _positive_int("mel_bins", mel_bins)
    _positive_int("audio_units", units)
    _positive_number("frame_length_ms", frame_length_ms)
    _positive_number("frame_step_ms", frame_step_ms)
    _, _, fft_length = frame_params(sample_rate, frame_length_ms, frame_step_ms)
    # The centred STFT reflects fft_length // 2 samples at each end, which needs more samples than that.
    _positive_int("num_samples", num_samples, minimum=fft_length // 2 + 1)
    if isinstance(widths, (str, bytes)) or not isinstance(widths, (list, tuple)) or not widths:
        raise ValueError("`audio_widths` must be a non-empty list of channel counts. "
                         f"Received: audio_widths={widths!r}")
    widths = tuple(_positive_int("audio_widths", width) for width in widths)
    _positive_int("audio_time_pools", time_pools, minimum=0)
    if time_pools > len(widths):
        raise ValueError(f"`audio_time_pools` must be at most the number of CNN stages ({len(widths)}, "
                         f"audio_widths={list(widths)}). Received: audio_time_pools={time_pools!r}")
    return widths


# === Time lengths ===


def time_downsampling(time_pools):
    """Frames per time token of a tower whose first `time_pools` CNN stages halve time: `2 ** time_pools`."""
    return 2 ** int(time_pools)


def output_length(valid_samples, *, sample_rate=16000, frame_step_ms=10.0, frame_length_ms=25.0, time_pools=2):
    """Valid time tokens of a clip of `valid_samples` samples before its zero padding (1 + the index of its last
    non-zero sample): `ceil((valid_samples // stride + 1) / 2 ** time_pools)`. With `valid_samples` =
    `num_samples` it is the tokens' `steps`. The tower's token mask holds exactly this many True values."""
    _, stride, _ = frame_params(sample_rate, frame_length_ms, frame_step_ms)
    return num_tokens(num_frames(valid_samples, stride), time_downsampling(time_pools))


# === Layers ===


@keras.saving.register_keras_serializable(package="mmzoo")
class MaskedTimeMean(keras.layers.Layer):
    """`[tokens (batch, steps, dim), mask (batch, steps)]` -> (batch, dim): the mean over valid steps only."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the recurrent states arrive with their mask: the one given is used

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def call(self, inputs):
        tokens, mask = inputs
        weights = ops.expand_dims(ops.cast(mask, tokens.dtype), -1)
        count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, tokens.dtype))
        return ops.sum(tokens * weights, axis=1) / count

    def compute_output_shape(self, input_shape):
        tokens = input_shape[0]
        return (tokens[0], tokens[2])


@keras.saving.register_keras_serializable(package="mmzoo")
class AttachMask(keras.layers.Layer):
    """`[tokens, mask]` -> `tokens` carrying `mask` as their Keras mask: a nested tower model's outputs lose their
    mask in the enclosing graph, so the mask travels as a second output and is attached here."""

    def call(self, inputs):
        return inputs[0]

    def compute_mask(self, inputs, previous_mask=None):
        return ops.cast(inputs[1], "bool")

    def compute_output_shape(self, input_shape):
        return input_shape[0]


# === Towers ===


def _front_end(sample_rate, num_samples, mel_bins, frame_length_ms, frame_step_ms, spec_augment):
    """The waveform input, its normalised log-mel frames (after SpecAugment in training) and the STFT stride."""
    waveform = keras.Input((num_samples,), name="waveform")
    front = LogMelSpectrogram(sample_rate=sample_rate, mel_bins=mel_bins, frame_length_ms=frame_length_ms,
                              frame_step_ms=frame_step_ms, name="log_mel")
    features = front(waveform)
    augment = spec_augment_options(spec_augment)
    if augment is not None:
        frame_mask = WaveformMask(front.stride, name="frame_mask")(waveform)
        features = SpecAugment(**augment, name="spec_augment")(features, frame_mask=frame_mask)
    return waveform, features, front.stride


def _conv_stack(features, widths, time_pools):
    """(batch, frames, mel) -> (batch, ceil(frames / 2 ** time_pools), mel' * channels)."""
    x = keras.layers.Reshape((features.shape[1], features.shape[2], 1), name="add_channel")(features)
    for stage, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"stage{stage}_conv")(x)
        # Synchronized: N replicas normalise with the global batch's statistics, as one replica does.
        x = keras.layers.BatchNormalization(momentum=0.9, synchronized=True, name=f"stage{stage}_bn")(x)
        x = keras.layers.ReLU(name=f"stage{stage}_relu")(x)
        pool = (2 if stage < time_pools else 1, 2)
        x = keras.layers.MaxPooling2D(pool, padding="same", name=f"stage{stage}_pool")(x)
    return keras.layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="time_steps")(x)


def _check_output(output):
    return _choice("output", output, OUTPUT_MODES)


@register_tower("mel_cnn", kind="audio")
def mel_cnn(*, sample_rate=16000, num_samples=32000, mel_bins=40, frame_length_ms=25.0, frame_step_ms=10.0,
            widths=(32, 64, 64), time_pools=2, units=128, spec_augment=None, output="pooled", dropout=0.0,
            name="mel_cnn"):
    """A small 2-D CNN over the log-mel spectrogram; tokens are `Dense(units)` per time step, pooled their masked
    mean."""
    _check_output(output)
    widths = _check_tower(sample_rate, num_samples, mel_bins, frame_length_ms, frame_step_ms, widths, time_pools,
                          units)
    waveform, features, stride = _front_end(sample_rate, num_samples, mel_bins, frame_length_ms, frame_step_ms,
                                            spec_augment)
    steps = _conv_stack(features, widths, time_pools)
    tokens = keras.layers.Dense(units, activation="relu", name="token_projection")(steps)
    if dropout:
        tokens = keras.layers.Dropout(dropout, name="token_dropout")(tokens)
    mask = WaveformMask(stride, time_downsampling(time_pools), name="token_mask")(waveform)
    if output == "tokens":
        return keras.Model(waveform, [tokens, mask], name=name)
    return keras.Model(waveform, MaskedTimeMean(name="pool")([tokens, mask]), name=name)


def _recurrent_layer(recurrent, units, return_sequences, dropout):
    cell = keras.layers.LSTM if recurrent in ("lstm", "bilstm") else keras.layers.GRU
    layer = cell(units, return_sequences=return_sequences, dropout=dropout, name=recurrent)
    if recurrent.startswith("bi"):
        return keras.layers.Bidirectional(layer, merge_mode="concat", name=f"{recurrent}_bidirectional")
    return layer


@register_tower("mel_crnn", kind="audio")
def mel_crnn(*, sample_rate=16000, num_samples=32000, mel_bins=40, frame_length_ms=25.0, frame_step_ms=10.0,
             widths=(32, 64, 64), time_pools=2, units=128, recurrent="gru", pooling="mean", spec_augment=None,
             output="pooled", dropout=0.0, name="mel_crnn"):
    """The mel_cnn's convolutions, then a recurrent layer over time (`recurrent`: gru, lstm, bigru, bilstm; a
    bidirectional one gives 2 x units). Tokens are its per-step states; pooled is their masked mean
    (`pooling="mean"`) or the last valid step's state (`pooling="last"`)."""
    _check_output(output)
    _choice("audio_recurrent", recurrent, RECURRENT)
    _choice("audio_pooling", pooling, POOLING)
    widths = _check_tower(sample_rate, num_samples, mel_bins, frame_length_ms, frame_step_ms, widths, time_pools,
                          units)
    waveform, features, stride = _front_end(sample_rate, num_samples, mel_bins, frame_length_ms, frame_step_ms,
                                            spec_augment)
    steps = _conv_stack(features, widths, time_pools)
    mask = WaveformMask(stride, time_downsampling(time_pools), name="token_mask")(waveform)
    sequences = output == "tokens" or pooling == "mean"
    states = _recurrent_layer(recurrent, units, sequences, dropout)(steps, mask=mask)
    if output == "tokens":
        return keras.Model(waveform, [states, mask], name=name)
    pooled = MaskedTimeMean(name="pool")([states, mask]) if sequences else states
    return keras.Model(waveform, pooled, name=name)


def build_audio_tower(tower, **kwargs):
    """Build the audio tower registered under `tower` (`mmzoo.towers.list_towers("audio")`): a `keras.Model`
    from a waveform (batch, num_samples) to pooled features, or, with `output="tokens"`, to `[tokens,
    token_mask]`."""
    return get_tower(tower, kind="audio", argument="audio_tower").function(**kwargs)


def _tower_arguments(tower, options):
    """A modality's options (AudioInput.defaults' names) -> the arguments of the tower function registered as
    `tower` that it takes (mel_cnn has no recurrent layer, so no `recurrent` or `pooling`); a function taking
    `**kwargs` (a user's tower) gets them all."""
    accepted = inspect.signature(get_tower(tower, kind="audio", argument="audio_tower").function).parameters
    arguments = dict(sample_rate=options["sample_rate"], num_samples=options["num_samples"],
                mel_bins=options["mel_bins"], frame_length_ms=options["frame_length_ms"],
                frame_step_ms=options["frame_step_ms"], widths=tuple(options["audio_widths"]),
                time_pools=options["audio_time_pools"], units=options["audio_units"],
                recurrent=options["audio_recurrent"], pooling=options["audio_pooling"],
                spec_augment=options["spec_augment"])
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in accepted.values()):
        return arguments
    return {key: value for key, value in arguments.items() if key in accepted}


def apply_audio_tower(waveform, tower="mel_crnn", *, output="tokens", dropout=0.0, name="audio", **options):
    """Apply a new audio tower to a symbolic `waveform` (batch, num_samples). `options` are those of the audio
    input kind (`AudioInput.defaults`: sample_rate, num_samples, mel_bins, audio_units, ...). Tokens come back
    with their mask attached (a transcription head reads the valid lengths with `ops.sum(mask, axis=1)`)."""
    unknown = sorted(set(options) - set(AudioInput.defaults))
    if unknown:
        raise ValueError(f"Unknown audio option(s) {unknown}. Accepted: {', '.join(sorted(AudioInput.defaults))}")
    options = {**AudioInput.defaults, **options}
    model = build_audio_tower(tower, output=output, dropout=dropout, name=name, **_tower_arguments(tower, options))
    if output == "tokens":
        tokens, mask = model(waveform)
        return AttachMask(name=f"{name}_tokens")([tokens, mask])
    return model(waveform)


class AudioInput(InputKind):
    """A mono waveform, float32 `(num_samples,)` in [-1, 1] at `sample_rate` Hz, zero-padded at the end (the
    tower masks the padding: a clip ends at its last non-zero sample). No input-pipeline step: the log-mel
    front end is inside the tower, so an export takes waveforms.

    Options (docs/audio.md): `sample_rate`, `num_samples`, `mel_bins`, `frame_length_ms`, `frame_step_ms`,
    `audio_widths` (CNN channels per stage), `audio_time_pools` (stages that halve time; tokens are
    `2 ** audio_time_pools` frames each), `audio_units` (token and pooled width; x2 for a bidirectional RNN),
    `audio_recurrent` and `audio_pooling` (mel_crnn only), `spec_augment` (None, True or a dict)."""

    name = "audio"
    defaults = {"sample_rate": 16000, "num_samples": 32000, "mel_bins": 40, "frame_length_ms": 25.0,
                "frame_step_ms": 10.0, "audio_widths": (32, 64, 64), "audio_time_pools": 2, "audio_units": 128,
                "audio_recurrent": "gru", "audio_pooling": "mean", "spec_augment": None}
    raw_dtype = "float32"

    def raw_shape(self, options):
        return (options["num_samples"],)

    def check_options(self, name, options):
        resolved = {**self.defaults, **options}
        try:
            widths = _check_tower(resolved["sample_rate"], resolved["num_samples"], resolved["mel_bins"],
                                  resolved["frame_length_ms"], resolved["frame_step_ms"], resolved["audio_widths"],
                                  resolved["audio_time_pools"], resolved["audio_units"])
            _choice("audio_recurrent", resolved["audio_recurrent"], RECURRENT)
            _choice("audio_pooling", resolved["audio_pooling"], POOLING)
            spec_augment_options(resolved["spec_augment"])
        except ValueError as error:
            raise ValueError(f"Audio input {name!r}: {error}") from None
        return dict(options, **({"audio_widths": widths} if "audio_widths" in options else {}))

    def time_downsampling(self, modality):
        """Frames per time token of this input's tower (`2 ** audio_time_pools`)."""
        return time_downsampling(modality.options["audio_time_pools"])

    def num_tokens(self, modality):
        """Time tokens (steps) of this input's tower for a whole `num_samples` clip."""
        options = modality.options
        return output_length(options["num_samples"], sample_rate=options["sample_rate"],
                             frame_step_ms=options["frame_step_ms"], frame_length_ms=options["frame_length_ms"],
                             time_pools=options["audio_time_pools"])

    def prepare(self, modality, value):
        """Waveforms of another length than this input's are cropped or zero-padded at the end (as a served WAV
        file is); waveforms of the right length pass unchanged."""
        if value.shape[-1] == modality.options["num_samples"]:
            return value
        return fit_length(value, modality.options["num_samples"])

    def encode(self, modality, x, *, output, dropout):
        tower = build_audio_tower(modality.tower, output=output, dropout=dropout, name=self.layer_prefix(modality),
                                  **_tower_arguments(modality.tower, modality.options))
        if output == "tokens":
            tokens, mask = tower(x)
            return AttachMask(name=f"{self.layer_prefix(modality)}_tokens")([tokens, mask])
        return tower(x)

    def placeholder(self, modality, batch_size):
        """Silence: all-zero waveforms (one valid frame each, so every masked mean over them is defined)."""
        import tensorflow as tf

        return tf.zeros([batch_size, *modality.shape], dtype=modality.dtype)


register_input_kind(AudioInput())
