"""Stored audio -> what an audio model takes: float32 in [-1, 1], zero-padded (or cropped) to `num_samples`.

One function, so the TFDS loader and any script convert the same way; it crops and pads with
`mmzoo.audio_files.fit_length`, as a user's WAV files and served ones are. The padding is trailing exact zeros,
which the audio towers read as "the clip ended here" (their frame mask comes from the last non-zero sample).
"""

from __future__ import annotations

import tensorflow as tf

from mmzoo.audio_files import fit_length

__all__ = ["float_samples", "waveform_features"]

# The integer types TFDS' Audio feature hands 16-bit PCM over as; divided by 32768 like tf.audio.decode_wav's.
_INTEGER_PCM = (tf.int16, tf.int32, tf.int64)


def float_samples(audio) -> tf.Tensor:
    """`audio` as float32 in [-1, 1], shape kept: integers are 16-bit PCM whatever their dtype (TFDS' Audio
    feature may hand int16 samples over as int64) divided by 32768; floats are clipped to [-1, 1]."""
    audio = tf.convert_to_tensor(audio)
    if audio.dtype in _INTEGER_PCM:
        return tf.cast(audio, tf.float32) / 32768.0
    if audio.dtype.is_floating:
        return tf.clip_by_value(tf.cast(audio, tf.float32), -1.0, 1.0)
    raise TypeError(f"`audio` must be int16 (or int32/int64 holding 16-bit samples) or float. "
                    f"Received: audio.dtype={audio.dtype.name}")


def waveform_features(audio, num_samples: int) -> tf.Tensor:
    """`audio` (..., samples) as float32 (..., num_samples) in [-1, 1], zero-padded or cropped at the end.

    Integer audio is 16-bit PCM whatever its dtype and is divided by 32768; float audio is taken as already in
    [-1, 1] and clipped to it (`float_samples`). Works on numpy arrays and eager tensors, and inside ``tf.data``
    maps and ``tf.function`` (the rank must be known: 1 for one clip, 2 for a batch).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer. Received: num_samples={num_samples!r}")
    x = float_samples(audio)
    if x.shape.rank not in (1, 2):
        raise ValueError(f"`audio` must have shape (samples,) or (batch, samples). Received: shape={x.shape}")
    return fit_length(x, num_samples)
