"""Stored audio -> what an audio model takes: float32 in [-1, 1], zero-padded (or cropped) to `num_samples`.

One function, so the TFDS loader, a user's own data and any script convert the same way. The padding is trailing
exact zeros, which the audio towers read as "the clip ended here" (their frame mask comes from the last
non-zero sample).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["waveform_features"]

_INTEGER_PCM = (tf.int16, tf.int32, tf.int64)


def waveform_features(audio, num_samples: int) -> tf.Tensor:
    """`audio` (..., samples) as float32 (..., num_samples) in [-1, 1], zero-padded or cropped at the end.

    Integer audio is 16-bit PCM whatever its dtype (TFDS' Audio feature may hand int16 samples over as int64)
    and is divided by 32768; float audio is taken as already in [-1, 1] and clipped to it. Works on numpy arrays
    and eager tensors, and inside ``tf.data`` maps and ``tf.function`` (the rank must be known: 1 for one clip,
    2 for a batch).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer. Received: num_samples={num_samples!r}")
    audio = tf.convert_to_tensor(audio)
    if audio.dtype in _INTEGER_PCM:
        x = tf.cast(audio, tf.float32) / 32768.0
    elif audio.dtype.is_floating:
        x = tf.clip_by_value(tf.cast(audio, tf.float32), -1.0, 1.0)
    else:
        raise TypeError(f"`audio` must be int16 (or int32/int64 holding 16-bit samples) or float. "
                        f"Received: audio.dtype={audio.dtype.name}")
    rank = audio.shape.rank
    if rank not in (1, 2):
        raise ValueError(f"`audio` must have shape (samples,) or (batch, samples). Received: shape={audio.shape}")
    x = x[..., :num_samples]
    padding = [[0, 0]] * (rank - 1) + [[0, num_samples - tf.shape(x)[-1]]]
    x = tf.pad(x, padding)
    return tf.ensure_shape(x, audio.shape[:-1].concatenate([num_samples]))
