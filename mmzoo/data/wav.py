"""WAV files as the float waveforms mmzoo's audio inputs take: read, mixed down to mono, resampled, padded.

    clip = mmzoo.data.wav.load_clip("speech/0.wav", sample_rate=16000, num_samples=32000)   # float32 (32000,)

`tf.audio.decode_wav` reads 16-bit PCM only, and TensorFlow has no resampler, so a user's WAV files (8-bit,
24-bit, 32-bit or float samples, any rate, stereo) are read here with numpy, in Python, where a bad file can be
named. The values are those `tf.audio.decode_wav` gives for 16-bit PCM (``int16 / 32768``), and the same scale
for every other sample format, so a clip read here equals the one an export decodes from the same 16-bit file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import struct

import numpy as np

__all__ = ["MAX_WAV_BYTES", "WavError", "WavInfo", "fit_length", "load_clip", "read_wav", "resample",
           "resampled_length", "to_mono", "wav_info"]

# Longer than any clip a classifier takes (an hour of 16 kHz 16-bit mono is 115 MB); a file over it is refused
# before it is read, like an image over MAX_IMAGE_BYTES.
MAX_WAV_BYTES = 256 * 2**20

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_FORMAT_NAMES = {2: "Microsoft ADPCM", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 0x55: "MP3"}
CONVERT_HINT = "convert it to PCM, e.g. ffmpeg -i IN.wav -c:a pcm_s16le OUT.wav"


class WavError(ValueError):
    """A WAV file refused. `path` names it; `reason` says why, as a predicate; `problem` is one of "empty",
    "size" (over MAX_WAV_BYTES), "format" (not a WAV file, or a broken one) and "unsupported" (a WAV file whose
    sample format is not PCM 8/16/24/32-bit or 32/64-bit float) and "rate" (another sample rate than
    expected, where it is not resampled)."""

    def __init__(self, path, reason, problem):
        super().__init__(f"{path} {reason}")
        self.path, self.reason, self.problem = os.fspath(path), reason, problem


@dataclasses.dataclass(frozen=True)
class WavInfo:
    """What a WAV file's header says: `sample_rate` (Hz), `channels`, `bits` per sample, `encoding` ("pcm" or
    "float"), `frames` (samples per channel) and where its samples are (`data_offset`, bytes per frame
    `block_align`)."""

    sample_rate: int
    channels: int
    bits: int
    encoding: str
    frames: int
    data_offset: int
    block_align: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def wav_info(path) -> WavInfo:
    """The header of WAV file `path`, read without its samples. Raises FileNotFoundError, OSError or `WavError`
    (empty, over `MAX_WAV_BYTES`, not a RIFF/WAVE file, a missing or broken chunk, a data chunk longer than the
    file, an unsupported sample format)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    if os.path.isdir(path):
        raise WavError(path, "is a directory, not a WAV file", "format")
    if size == 0:
        raise WavError(path, "is empty", "empty")
    if size > MAX_WAV_BYTES:
        raise WavError(path, f"is {size:,} bytes long, over the limit of {MAX_WAV_BYTES:,} "
                       "(mmzoo.data.wav.MAX_WAV_BYTES)", "size")
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] == b"RF64":
            raise WavError(path, "is an RF64 file (a WAV over 4 GiB), which is not supported", "unsupported")
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise WavError(path, "is not a WAV file (no RIFF/WAVE header)", "format")
        fmt, position = None, 12
        while position + 8 <= size:
            f.seek(position)
            chunk, length = struct.unpack("<4sI", f.read(8))
            if chunk == b"fmt ":
                fmt = _parse_fmt(path, f.read(length))
            elif chunk == b"data":
                return _with_data(path, fmt, position + 8, length, size)
            position += 8 + length + (length & 1)  # chunks are padded to an even length
    raise WavError(path, "has no data chunk (a truncated or broken WAV file)", "format")


def _parse_fmt(path, body) -> tuple:
    """(encoding, channels, sample rate, bits, block align) of a 'fmt ' chunk; WavError if unsupported."""
    if len(body) < 16:
        raise WavError(path, "has a broken fmt chunk (a truncated or broken WAV file)", "format")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the format tag
    if tag not in (_PCM, _FLOAT):
        name = _FORMAT_NAMES.get(tag, f"format tag {tag}")
        raise WavError(path, f"holds {name} audio, not PCM or float samples; {CONVERT_HINT}", "unsupported")
    encoding = "pcm" if tag == _PCM else "float"
    if (encoding, bits) not in (("pcm", 8), ("pcm", 16), ("pcm", 24), ("pcm", 32), ("float", 32), ("float", 64)):
        raise WavError(path, f"holds {bits}-bit {encoding} samples; supported: PCM 8/16/24/32-bit and float "
                       f"32/64-bit; {CONVERT_HINT}", "unsupported")
    if channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise WavError(path, f"has a broken fmt chunk ({channels} channels, {rate} Hz, {bits} bits, "
                       f"{block_align} bytes per frame)", "format")
    return encoding, channels, rate, bits, block_align


def _with_data(path, fmt, offset, length, size) -> WavInfo:
    if fmt is None:
        raise WavError(path, "has its data chunk before its fmt chunk (a broken WAV file)", "format")
    available = size - offset
    if length == 0xFFFFFFFF:  # written while streaming, the length never filled in: the samples run to the end
        length = available
    if length > available:
        raise WavError(path, f"is truncated: its data chunk declares {length:,} bytes, the file holds "
                       f"{available:,}", "format")
    encoding, channels, rate, bits, block_align = fmt
    return WavInfo(rate, channels, bits, encoding, length // block_align, offset, block_align)


def read_wav(path, info: WavInfo | None = None) -> tuple[np.ndarray, int]:
    """(samples float32 ``(frames, channels)`` in [-1, 1], sample rate) of WAV file `path`.

    PCM is scaled by its full range as `tf.audio.decode_wav` scales 16-bit PCM: 8-bit ``(x - 128) / 128``,
    16-bit ``x / 32768``, 24-bit ``x / 2**23``, 32-bit ``x / 2**31``. Float samples are taken as they are, NaN as
    0 and clipped to [-1, 1]."""
    info = info or wav_info(path)
    with open(path, "rb") as f:
        f.seek(info.data_offset)
        raw = f.read(info.frames * info.block_align)
    frames = len(raw) // info.block_align  # the file may have shrunk since its header was read
    raw = raw[:frames * info.block_align]
    if info.encoding == "float":
        samples = np.frombuffer(raw, "<f4" if info.bits == 32 else "<f8").astype(np.float32)
        samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    elif info.bits == 8:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif info.bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = ((value ^ 0x800000) - 0x800000).astype(np.float32) / 2.0**23  # sign-extended
    else:
        dtype = {16: "<i2", 32: "<i4"}[info.bits]
        samples = (np.frombuffer(raw, dtype).astype(np.float64) / 2.0 ** (info.bits - 1)).astype(np.float32)
    return samples.reshape(frames, info.channels), info.sample_rate


def to_mono(samples: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` -> ``(frames,)``: the mean of the channels (a mono clip as it is)."""
    samples = np.asarray(samples, np.float32)
    return samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)


def resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """Samples a clip of `frames` samples at `source_rate` has at `target_rate` (same duration, rounded up)."""
    return -(-frames * target_rate // source_rate)


# A Kaiser-windowed sinc low-pass, 24 zero crossings each side of the peak at the lower rate's Nyquist frequency
# times ROLLOFF: about 90 dB stop-band attenuation (Kaiser beta 8.6) with a 5 % transition band, librosa's
# "kaiser_best" class of filter without its 64 crossings.
ZERO_CROSSINGS = 24
ROLLOFF = 0.95
KAISER_BETA = 8.6
_CHUNK = 1 << 16  # output samples resampled at a time: bounds the (chunk, taps) gather in memory
_MAX_PHASE_LOOP = 1024  # phases looped over in Python; past it, outputs are gathered (see `resample`)


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """A mono float waveform at `source_rate` -> the same sound at `target_rate` (float32, clipped to [-1, 1],
    `resampled_length` samples): band-limited interpolation with a windowed-sinc filter, as a polyphase filter
    bank of one phase per distinct fractional position, so each output sample is one dot product."""
    waveform = np.asarray(waveform, np.float32)
    if source_rate == target_rate:
        return waveform.copy()
    up, down = _ratio(source_rate, target_rate)
    bank, half = _filter_bank(up, down)
    total = resampled_length(len(waveform), source_rate, target_rate)
    padded = np.concatenate([np.zeros(half, np.float32), waveform, np.zeros(half + 2 + down, np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, bank.shape[1])  # a view: window i starts at i
    out = np.empty(total, np.float32)
    if up <= _MAX_PHASE_LOOP:
        # Output n = r + m * up sits at input position (r * down) // up + m * down, always at the same phase:
        # each residue r is one matrix-vector product over every down-th window.
        for r in range(min(up, total)):
            base, phase = divmod(r * down, up)
            count = len(range(r, total, up))
            out[r::up] = windows[base:base + count * down:down] @ bank[phase]
    else:  # rates without a small common ratio (44101 -> 16000): gather each output's window and phase
        for start in range(0, total, _CHUNK):
            n = np.arange(start, min(total, start + _CHUNK), dtype=np.int64)
            base, phase = np.divmod(n * down, up)  # output n sits at input position base + phase / up
            out[start:start + len(n)] = np.einsum("nk,nk->n", windows[base], bank[phase])
    return np.clip(out, -1.0, 1.0)


def _ratio(source_rate, target_rate):
    g = math.gcd(int(source_rate), int(target_rate))
    return int(target_rate) // g, int(source_rate) // g


@functools.lru_cache(maxsize=8)
def _filter_bank(up: int, down: int) -> tuple[np.ndarray, int]:
    """(weights ``(up, 2 * half + 2)``, half): row p weighs the input samples around an output sample at
    fractional input position ``p / up``; `half` input samples each side cover the filter."""
    cutoff = min(1.0, up / down) * ROLLOFF  # of the input's Nyquist frequency
    width = ZERO_CROSSINGS / cutoff  # the filter's half width in input samples
    half = math.ceil(width)
    distance = np.arange(up)[:, None] / up - np.arange(-half, half + 2)[None, :]
    inside = np.abs(distance) < width
    window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (distance / width) ** 2, 0.0, 1.0))) / np.i0(KAISER_BETA)
    weights = np.where(inside, cutoff * np.sinc(cutoff * distance) * window, 0.0)
    return weights.astype(np.float32), half


def fit_length(waveform: np.ndarray, num_samples: int) -> np.ndarray:
    """`waveform` cropped at the end, or padded with trailing zeros, to `num_samples` (float32)."""
    waveform = np.asarray(waveform, np.float32)[:num_samples]
    return np.pad(waveform, (0, num_samples - len(waveform)))


def load_clip(path, *, sample_rate: int, num_samples: int, resample_rate: bool = True) -> np.ndarray:
    """WAV file `path` as an audio input takes it: float32 ``(num_samples,)`` in [-1, 1], mono (the channels'
    mean), at `sample_rate` (resampled when the file's rate differs, else `WavError` with
    ``resample_rate=False``), cropped or zero-padded at the end."""
    samples, rate = read_wav(path)
    mono = to_mono(samples)
    if rate != sample_rate:
        if not resample_rate:
            raise WavError(path, f"has a sample rate of {rate} Hz; expected {sample_rate} Hz", "rate")
        mono = resample(mono, rate, sample_rate)
    return fit_length(mono, num_samples)
