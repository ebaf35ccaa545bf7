"""WAV files as the float waveforms mmzoo's audio inputs take: read, mixed down to mono, resampled, padded.

    clip = mmzoo.data.wav.load_clip("speech/0.wav", sample_rate=16000, num_samples=32000)   # float32 (32000,)

`tf.audio.decode_wav` reads 16-bit PCM only, and TensorFlow has no resampler, so a user's WAV files (8-bit,
24-bit, 32-bit or float samples, any rate, stereo) are read with numpy, in Python, where a bad file can be named.
The values are those `tf.audio.decode_wav` gives for 16-bit PCM (``int16 / 32768``), and the same scale for every
other sample format, so a clip read here equals the one an export decodes from the same plain 16-bit PCM file.

The functions live in `mmzoo.audio_files`, which the export and the towers share; this module is where the data
side has always found them.
"""

from mmzoo.audio_files import (CONVERT_HINT, KAISER_BETA, MAX_WAV_BYTES, ROLLOFF, ZERO_CROSSINGS, WavError, WavInfo,
                               fit_length, load_clip, read_clip, read_wav, resample, resampled_length, to_mono,
                               wav_header, wav_info)

__all__ = ["MAX_WAV_BYTES", "WavError", "WavInfo", "fit_length", "load_clip", "read_clip", "read_wav", "resample",
           "resampled_length", "to_mono", "wav_header", "wav_info"]
