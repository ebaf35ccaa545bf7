"""The audio front end every audio tower starts with: a raw waveform in, per-example normalised log-mel frames,
a mask of the valid frames (or of the tower's time tokens), and SpecAugment-style masking in training.

Why not `keras.layers.MelSpectrogram(power_to_db=True)`: its dB conversion clamps against the maximum over the
**whole batch**, so a clip's features would depend on the other clips in its batch (batch 1 != batch N, one
replica != two). Here the mel power (`power_to_db=False`) goes through a per-example `log(x + eps)` and a
per-example mean/variance normalisation over the clip's own valid frames, so a clip's features depend on that
clip alone. Nor do they depend on how much zero padding follows it, provided at least `fft_length // 2` zeros
do: the centred STFT reflects the input's last `fft_length // 2` samples past its end, so a clip filling (or
nearly filling) the input sees a mirror of its own end in its last frames where a padded one sees silence.

Padding convention (docs/audio.md): a clip is zero-padded **at the end** to its input's `num_samples`, so its
length is the position of its last non-zero sample; the frame mask follows from it, and a served request needs
only the waveform. The front end computes in float32 whatever the dtype policy (`mixed_float16` included): the
power spectrum of quiet audio underflows float16.

Layers only: cropping, padding and WAV decoding, which training data and served requests share, are in
`mmzoo.audio_files`.
"""

import keras
from keras import ops

# Moved to mmzoo.audio_files (shared by the data loaders, the towers and the export); importable from here still.
from mmzoo.audio_files import WavError, decode_wav, fit_length, read_wav_header  # noqa: F401

LOG_EPSILON = 1e-6
NORM_EPSILON = 1e-5


# === Frames ===


def frame_params(sample_rate, frame_length_ms, frame_step_ms):
    """`(window, stride, fft_length)` in samples for frames of `frame_length_ms` every `frame_step_ms`; the FFT
    length is the window rounded up to a power of two (so always even)."""
    window = max(1, int(round(sample_rate * frame_length_ms / 1000.0)))
    stride = max(1, int(round(sample_rate * frame_step_ms / 1000.0)))
    return window, stride, 1 << (window - 1).bit_length()


def num_frames(num_samples, stride):
    """Frames the STFT gives for `num_samples` samples: `1 + num_samples // stride`.

    `MelSpectrogram` centres its frames (`fft_length // 2` samples of reflection on both sides, an even FFT
    length), hence this count. Its `compute_output_shape` says `(num_samples + stride + 1) // stride`, one more
    when `num_samples % stride == stride - 1`; `LogMelSpectrogram.compute_output_shape` uses this one."""
    return 1 + int(num_samples) // int(stride)


def num_tokens(frames, downsampling):
    """Time steps left after `frames` frames go through a tower that halves time `log2(downsampling)` times with
    'same' pooling: `ceil(frames / downsampling)` (for the valid frames of a clip as for the whole input)."""
    return -(-int(frames) // int(downsampling))


def signal_lengths(waveform):
    """(batch,) int32: 1 + the index of each clip's last non-zero sample (0 for an all-zero clip)."""
    nonzero = ops.cast(ops.not_equal(waveform, 0), "int32")
    positions = ops.arange(1, ops.shape(waveform)[-1] + 1, dtype="int32")
    return ops.max(nonzero * positions, axis=-1)


def valid_frames(waveform, stride, frames):
    """(batch,) int32: `length // stride + 1` frames (at most `frames`), those whose centre `t * stride` is at
    most `length`: within the clip or, when `length` is a multiple of `stride`, on the first sample after it.

    Always at least one, so an all-zero clip (the placeholder of an absent input) still has one valid frame and
    every masked mean or recurrent pass over it is defined."""
    return ops.minimum(signal_lengths(waveform) // stride + 1, frames)


def length_mask(lengths, steps):
    """(batch, steps) bool: True for the first `lengths[i]` steps of row i."""
    return ops.less(ops.expand_dims(ops.arange(steps, dtype="int32"), 0), ops.expand_dims(lengths, 1))


def normalise(log_mel, mask):
    """`log_mel` (batch, frames, bins) minus its mean, over its standard deviation, both taken per example over
    the valid frames only; padding frames are set to 0 (the normalised mean)."""
    weights = ops.expand_dims(ops.cast(mask, log_mel.dtype), -1)
    count = ops.maximum(ops.sum(weights, axis=(1, 2), keepdims=True) * log_mel.shape[-1], 1.0)
    mean = ops.sum(log_mel * weights, axis=(1, 2), keepdims=True) / count
    centred = (log_mel - mean) * weights
    variance = ops.sum(ops.square(centred), axis=(1, 2), keepdims=True) / count
    return centred / ops.sqrt(variance + NORM_EPSILON)


def replica_uniform(shape, seed_generator):
    """Uniform [0, 1) float32 draws of `shape` from `seed_generator`, with the id of the replica drawing them folded
    into the seed (0 outside a `tf.distribute` strategy): a SeedGenerator's state is a mirrored variable, so
    `keras.random.uniform(shape, seed=seed_generator)` would draw the same numbers on every replica. TensorFlow
    ops: there is no replica in keras.ops."""
    import tensorflow as tf

    seed = ops.cast(ops.mod(seed_generator.next(), 2**31 - 2), "int32")  # as Keras' TF backend casts it
    context = tf.distribute.get_replica_context()  # None in a cross-replica context: one draw for all
    replica = 0 if context is None else context.replica_id_in_sync_group
    seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica, "int32"))
    return tf.random.stateless_uniform(shape, seed=seed, dtype="float32")


# === Layers ===


def _float32(kwargs):
    # The front end is float32 whatever the global policy: a policy given in a saved config is ignored too.
    kwargs.pop("dtype", None)
    return dict(kwargs, dtype="float32")


@keras.saving.register_keras_serializable(package="mmzoo")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform (batch, samples), float in [-1, 1], zero-padded at the end -> (batch, frames, mel_bins) float32.

    `keras.layers.MelSpectrogram(power_to_db=False)` (Hann window of `frame_length_ms`, hop `frame_step_ms`, FFT
    of the window rounded up to a power of two, mel filters from `min_freq` to `max_freq`, default
    `sample_rate / 2`), then `log(mel + log_epsilon)`, normalised per example over the valid frames (see the
    module docstring); padding frames are 0. `frames = 1 + samples // stride` (`num_frames`).
    """

    def __init__(self, sample_rate=16000, mel_bins=40, frame_length_ms=25.0, frame_step_ms=10.0, min_freq=20.0,
                 max_freq=None, log_epsilon=LOG_EPSILON, **kwargs):
        super().__init__(**_float32(kwargs))
        self.sample_rate, self.mel_bins = int(sample_rate), int(mel_bins)
        self.frame_length_ms, self.frame_step_ms = float(frame_length_ms), float(frame_step_ms)
        self.min_freq = float(min_freq)
        self.max_freq = None if max_freq is None else float(max_freq)
        self.log_epsilon = float(log_epsilon)
        self.window, self.stride, self.fft_length = frame_params(self.sample_rate, self.frame_length_ms,
                                                                 self.frame_step_ms)
        self.mel = keras.layers.MelSpectrogram(
            fft_length=self.fft_length, sequence_stride=self.stride, sequence_length=self.window,
            sampling_rate=self.sample_rate, num_mel_bins=self.mel_bins, min_freq=self.min_freq,
            max_freq=self.max_freq, power_to_db=False, dtype="float32", name="mel")

    def call(self, waveform):
        waveform = ops.cast(waveform, "float32")
        mel = ops.transpose(self.mel(waveform), (0, 2, 1))  # (batch, frames, mel_bins)
        frames = ops.shape(mel)[1]
        mask = length_mask(valid_frames(waveform, self.stride, frames), frames)
        return normalise(ops.log(mel + self.log_epsilon), mask)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        return (input_shape[0], None if samples is None else num_frames(samples, self.stride), self.mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, mel_bins=self.mel_bins, frame_length_ms=self.frame_length_ms,
                      frame_step_ms=self.frame_step_ms, min_freq=self.min_freq, max_freq=self.max_freq,
                      log_epsilon=self.log_epsilon)
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class WaveformMask(keras.layers.Layer):
    """Waveform (batch, samples) -> (batch, steps) bool: which frames (`downsampling=1`) or which of a tower's
    time tokens (`downsampling` = its time reduction) hold the clip rather than its zero padding.

    `steps = ceil(num_frames(samples, stride) / downsampling)` and a clip's valid steps are
    `ceil(valid_frames / downsampling)`: what 'same' pooling by 2 per stage leaves of a prefix of frames.

    float32 under any policy, as `LogMelSpectrogram` is: under `mixed_float16` the waveform would be cast to
    float16, where samples below ~3e-8 become 0, so a quiet tail would end the clip early here while the log-mel
    front end (float32) normalises over it."""

    def __init__(self, stride, downsampling=1, **kwargs):
        super().__init__(**_float32(kwargs))
        self.stride, self.downsampling = int(stride), int(downsampling)

    def call(self, waveform):
        frames = 1 + ops.shape(waveform)[-1] // self.stride
        valid = valid_frames(waveform, self.stride, frames)
        steps = (frames + self.downsampling - 1) // self.downsampling
        return length_mask((valid + self.downsampling - 1) // self.downsampling, steps)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        steps = None if samples is None else num_tokens(num_frames(samples, self.stride), self.downsampling)
        return (input_shape[0], steps)

    def compute_output_spec(self, waveform):
        return keras.KerasTensor(self.compute_output_shape(waveform.shape), dtype="bool")

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "downsampling": self.downsampling}


@keras.saving.register_keras_serializable(package="mmzoo")
class SpecAugment(keras.layers.Layer):
    """SpecAugment-style masking (Park et al. 2019, without time warping), in training only; the identity at
    inference.

    Takes normalised log-mel frames (batch, frames, bins) and their `frame_mask` (batch, frames) (not Keras'
    `mask` argument, which the convolutions after it would be handed and cannot take). Each example gets `time_masks`
    bands of 0 to `time_mask_frames` consecutive frames, placed within its valid frames, and `freq_masks` bands
    of 0 to `freq_mask_bins` mel bins; masked values are set to 0, the normalised mean. Draws come from a
    `keras.random.SeedGenerator(seed)`, so two layers with the same seed mask the same way. Under `tf.distribute`
    the generator's state is mirrored, the same on every replica, so each replica folds its id into the seed
    (`replica_uniform`): replicas draw different masks for their own examples (without it, example i of every
    replica's batch would get the same masks), and the masks of N replicas are not those of one."""

    def __init__(self, time_masks=2, time_mask_frames=10, freq_masks=2, freq_mask_bins=8, seed=None, **kwargs):
        super().__init__(**_float32(kwargs))
        self.time_masks, self.time_mask_frames = int(time_masks), int(time_mask_frames)
        self.freq_masks, self.freq_mask_bins = int(freq_masks), int(freq_mask_bins)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, frame_mask=None, training=None):
        if not training:
            return inputs
        shape = ops.shape(inputs)
        batch, frames, bins = shape[0], shape[1], shape[2]
        valid = (ops.full((batch,), frames) if frame_mask is None
                 else ops.sum(ops.cast(frame_mask, "int32"), axis=1))
        time = self._bands(batch, frames, valid, self.time_masks, self.time_mask_frames)
        freq = self._bands(batch, bins, ops.full((batch,), bins), self.freq_masks, self.freq_mask_bins)
        dropped = ops.logical_or(ops.expand_dims(time, 2), ops.expand_dims(freq, 1))
        return ops.where(dropped, ops.zeros_like(inputs), inputs)

    def _bands(self, batch, size, valid, count, width):
        """(batch, size) bool: `count` bands per row, each of a width drawn in [0, min(width, valid)] and placed
        within the row's first `valid` positions."""
        if count == 0 or width == 0:
            return ops.zeros((batch, size), dtype="bool")
        draws = replica_uniform((batch, count, 2), self.seed_generator)
        valid = ops.cast(ops.expand_dims(valid, 1), "float32")
        widths = ops.floor(draws[..., 0] * (ops.minimum(valid, float(width)) + 1.0))
        starts = ops.floor(draws[..., 1] * (valid - widths + 1.0))
        positions = ops.cast(ops.reshape(ops.arange(size), (1, 1, -1)), "float32")
        inside = ops.logical_and(positions >= ops.expand_dims(starts, -1),
                                 positions < ops.expand_dims(starts + widths, -1))
        return ops.any(inside, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks, "time_mask_frames": self.time_mask_frames,
                "freq_masks": self.freq_masks, "freq_mask_bins": self.freq_mask_bins, "seed": self.seed}
