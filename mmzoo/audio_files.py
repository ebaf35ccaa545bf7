"""The one way mmzoo reads WAV audio into the waveforms its audio inputs take, in training and in serving.

A user's files (`from_csv`/`from_jsonl` audio columns, `mmzoo predict --audio`) are read here with numpy:
`tf.audio.decode_wav` reads 16-bit PCM only and TensorFlow has no resampler, so 8/24/32-bit PCM, float samples,
stereo and other rates are read, mixed down and resampled in Python, where a bad file can be named. An export's
`serving_wav_bytes` decodes in the graph with `decode_wav`. Both scale 16-bit PCM as ``int16 / 32768``, mix
channels by their mean and crop or zero-pad at the end with `fit_length`, so a plain 16-bit PCM file gives the
same waveform read here as served.

    clip = load_clip("speech/0.wav", sample_rate=16000, num_samples=32000)   # float32 (32000,)

One header parser reads files (`wav_info`) and bytes (`wav_header`) alike; `decode_wav_refusal` says why
`tf.audio.decode_wav` would refuse bytes that parser accepts (it reads less of the WAV format), so a request is
refused with a clear message before any graph runs. This module imports no other mmzoo module (the towers, the
data loaders and the export all import it); TensorFlow is imported only by the functions that run in a graph.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import struct

import numpy as np

__all__ = ["CONVERT_HINT", "MAX_WAV_BYTES", "WavError", "WavInfo", "decode_wav", "decode_wav_refusal", "fit_length",
           "load_clip", "read_clip", "read_wav", "read_wav_header", "resample", "resampled_length", "to_mono",
           "wav_header", "wav_info"]

# Longer than any clip a classifier takes (an hour of 16 kHz 16-bit mono is 115 MB); a file over it is refused
# before it is read, like an image over MAX_IMAGE_BYTES.
MAX_WAV_BYTES = 256 * 2**20

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_FORMAT_NAMES = {2: "Microsoft ADPCM", 6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 0x55: "MP3"}
_STREAMED = 0xFFFFFFFF  # the data length of a WAV written while streaming, never filled in
_INT32_MAX = 2**31 - 1
CONVERT_HINT = "convert it to PCM, e.g. ffmpeg -i IN.wav -c:a pcm_s16le OUT.wav"


class WavError(ValueError):
    """A WAV file (or WAV bytes) refused. `source` names it (a path, or e.g. "the file"; `path` is the same);
    `reason` says why, as a predicate; `problem` is one of "empty", "size" (over MAX_WAV_BYTES), "format" (not a
    WAV file, or a broken one), "truncated" (a data chunk longer than what follows), "unsupported" (a sample
    format other than PCM 8/16/24/32-bit or float 32/64-bit) and "rate" (another sample rate than expected,
    where it is not resampled)."""

    def __init__(self, source, reason, problem):
        source = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
        super().__init__(f"{source} {reason}")
        self.source = self.path = source
        self.reason, self.problem = reason, problem


@dataclasses.dataclass(frozen=True)
class WavInfo:
    """What a WAV header says: `sample_rate` (Hz), `channels`, `bits` per sample, `encoding` ("pcm" or "float"),
    `frames` (samples per channel) and where the samples are (`data_offset`, bytes per frame `block_align`); and
    how it is written, which `decode_wav_refusal` needs: `format_tag` (1 PCM, 3 float, 0xFFFE extensible),
    `fmt_size` (bytes of the fmt chunk), `first_chunk` (the id of the chunk after the RIFF header) and
    `streamed` (a data length of 0xFFFFFFFF, taken as "to the end of the file")."""

    sample_rate: int
    channels: int
    bits: int
    encoding: str
    frames: int
    data_offset: int
    block_align: int
    format_tag: int = _PCM
    fmt_size: int = 16
    first_chunk: str = "fmt "
    streamed: bool = False

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


# === Headers ===


def wav_info(path) -> WavInfo:
    """The header of WAV file `path`, read without its samples. Raises FileNotFoundError, OSError or `WavError`
    (empty, over `MAX_WAV_BYTES`, not a RIFF/WAVE file, a missing or broken chunk, a data chunk longer than the
    file, an unsupported sample format)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    if os.path.isdir(path):
        raise WavError(path, "is a directory, not a WAV file", "format")
    with open(path, "rb") as f:

        def read(offset, count):
            f.seek(offset)
            return f.read(count)

        return _parse_header(read, size, path)


def wav_header(data, source="the file") -> WavInfo:
    """The header of WAV file bytes `data`, as `wav_info` reads a file's; `WavError`s name `source`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WavError(source, f"is not bytes: expected the bytes of a WAV file, got {type(data).__name__}",
                       "format")
    data = bytes(data)
    return _parse_header(lambda offset, count: data[offset:offset + count], len(data), source)


def _parse_header(read, size, source) -> WavInfo:
    """The header behind `read(offset, count) -> bytes` of a file of `size` bytes: its chunks are walked (each
    padded to an even length, as RIFF writes them) up to the data chunk."""
    if size == 0:
        raise WavError(source, "is empty", "empty")
    if size > MAX_WAV_BYTES:
        raise WavError(source, f"is {size:,} bytes long, over the limit of {MAX_WAV_BYTES:,} "
                       "(mmzoo.data.wav.MAX_WAV_BYTES)", "size")
    head = read(0, 12)
    if head[:4] == b"RF64":
        raise WavError(source, "is an RF64 file (a WAV over 4 GiB), which is not supported", "unsupported")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError(source, "is not a WAV file (no RIFF/WAVE header)", "format")
    fmt, first, position = None, None, 12
    while position + 8 <= size:
        chunk, length = struct.unpack("<4sI", read(position, 8))
        first = chunk.decode("latin-1") if first is None else first
        if chunk == b"fmt ":
            fmt = (*_parse_fmt(source, read(position + 8, min(length, 64))), length)
        elif chunk == b"data":
            return _with_data(source, fmt, first, position + 8, length, size)
        position += 8 + length + (length & 1)  # chunks are padded to an even length
    raise WavError(source, "has no data chunk (a truncated or broken WAV file)", "format")


def _parse_fmt(source, body) -> tuple:
    """(encoding, channels, sample rate, bits, block align, format tag) of a 'fmt ' chunk; WavError if
    unsupported."""
    if len(body) < 16:
        raise WavError(source, "has a broken fmt chunk (a truncated or broken WAV file)", "format")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    sub_format = tag
    if tag == _EXTENSIBLE and len(body) >= 26:
        sub_format = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the format tag
    if sub_format not in (_PCM, _FLOAT):
        name = _FORMAT_NAMES.get(sub_format, f"format tag {sub_format}")
        raise WavError(source, f"holds {name} audio, not PCM or float samples; {CONVERT_HINT}", "unsupported")
    encoding = "pcm" if sub_format == _PCM else "float"
    if (encoding, bits) not in (("pcm", 8), ("pcm", 16), ("pcm", 24), ("pcm", 32), ("float", 32), ("float", 64)):
        raise WavError(source, f"holds {bits}-bit {encoding} samples; supported: PCM 8/16/24/32-bit and float "
                       f"32/64-bit; {CONVERT_HINT}", "unsupported")
    if channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise WavError(source, f"has a broken fmt chunk ({channels} channels, {rate} Hz, {bits} bits, "
                       f"{block_align} bytes per frame)", "format")
    return encoding, channels, rate, bits, block_align, tag


def _with_data(source, fmt, first, offset, length, size) -> WavInfo:
    if fmt is None:
        raise WavError(source, "has its data chunk before its fmt chunk (a broken WAV file)", "format")
    available = size - offset
    streamed = length == _STREAMED
    if streamed:  # written while streaming, the length never filled in: the samples run to the end
        length = available
    if length > available:
        raise WavError(source, f"is truncated: its data chunk declares {length:,} bytes, the file holds "
                       f"{available:,}", "truncated")
    encoding, channels, rate, bits, block_align, tag, fmt_size = fmt
    return WavInfo(rate, channels, bits, encoding, length // block_align, offset, block_align, format_tag=tag,
                   fmt_size=fmt_size, first_chunk=first, streamed=streamed)


def read_wav_header(data) -> dict:
    """`{"format", "channels", "sample_rate", "bits_per_sample", "data_bytes"}` of WAV file bytes: `wav_header`
    in the form the export's checks first used (kept for code that reads it)."""
    info = wav_header(data)
    return {"format": info.format_tag, "channels": info.channels, "sample_rate": info.sample_rate,
            "bits_per_sample": info.bits, "data_bytes": info.frames * info.block_align}


def decode_wav_refusal(data, info: WavInfo) -> str | None:
    """Why `tf.audio.decode_wav` (an export's `serving_wav_bytes`) would refuse WAV bytes `data` whose header
    `wav_header` read as `info`, as a predicate; None if it decodes them (to at least one frame).

    It reads less of the format than `wav_header`: 16-bit PCM of format tag 1 only (not WAVE_FORMAT_EXTENSIBLE,
    whose fmt chunk is 40 bytes), a fmt chunk of 16 or 18 bytes right after the RIFF header (a LIST chunk before
    it is refused), a real data length (not a streamed 0xFFFFFFFF), one data chunk, and chunks after the fmt
    chunk walked without their padding bytes, so a byte left over at the end is refused. A file of no samples
    would decode to silence: refused too, as `from_csv` refuses such a file."""
    if info.encoding != "pcm" or info.bits != 16:
        return f"holds {info.bits}-bit {info.encoding.replace('pcm', 'PCM')} samples; the export decodes 16-bit PCM"
    if info.format_tag != _PCM:
        extensible = " (WAVE_FORMAT_EXTENSIBLE)" if info.format_tag == _EXTENSIBLE else ""
        return (f"is written with format tag {info.format_tag:#x}{extensible}; tf.audio.decode_wav reads plain PCM "
                "(format tag 1) only")
    if info.first_chunk != "fmt ":
        return f"has a {info.first_chunk!r} chunk before its fmt chunk, which tf.audio.decode_wav refuses"
    if info.fmt_size not in (16, 18):
        return f"has a fmt chunk of {info.fmt_size} bytes; tf.audio.decode_wav reads 16 or 18"
    if info.streamed:
        return "has no data length (0xFFFFFFFF: written while streaming, the length never filled in)"
    if info.frames == 0:
        return "has no samples"
    return _decode_wav_walk(bytes(data), 12 + 8 + info.fmt_size, info.block_align)


def _decode_wav_walk(data, offset, block_align) -> str | None:
    """`tf.audio.decode_wav`'s walk over the chunks after the fmt chunk (tensorflow/core/lib/wav/wav_io.cc)."""
    found = False
    while offset < len(data):
        if offset + 8 > len(data):
            return (f"ends in {len(data) - offset} byte(s) after its last chunk (a padding byte or junk), which "
                    "tf.audio.decode_wav refuses")
        chunk, length = struct.unpack("<4sI", data[offset:offset + 8])
        if length > _INT32_MAX:
            return f"has a {chunk.decode('latin-1')!r} chunk of {length:,} bytes, over tf.audio.decode_wav's limit"
        if chunk == b"data":
            if found:
                return "has more than one data chunk"
            found = True
            length = length // block_align * block_align  # decode_wav reads whole frames, then the next chunk
        offset += 8 + length
    return None if found else "has its data chunk after a chunk of odd length, where tf.audio.decode_wav misses it"


# === Samples (numpy) ===


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


def read_clip(path, *, sample_rate: int, resample_rate: bool = True) -> np.ndarray:
    """WAV file `path` as float32 ``(samples,)`` in [-1, 1], mono (the channels' mean), at `sample_rate`
    (resampled when the file's rate differs, else `WavError` with ``resample_rate=False``), as long as it is."""
    samples, rate = read_wav(path)
    mono = to_mono(samples)
    if rate != sample_rate:
        if not resample_rate:
            raise WavError(path, f"has a sample rate of {rate} Hz; expected {sample_rate} Hz", "rate")
        mono = resample(mono, rate, sample_rate)
    return mono


def load_clip(path, *, sample_rate: int, num_samples: int, resample_rate: bool = True) -> np.ndarray:
    """WAV file `path` as an audio input takes it: `read_clip`, cropped or zero-padded at the end to float32
    ``(num_samples,)``."""
    return fit_length(read_clip(path, sample_rate=sample_rate, resample_rate=resample_rate), num_samples)


# === In the graph (TensorFlow) ===


def fit_length(waveform, num_samples):
    """`waveform` (..., samples), any rank, cropped to its first `num_samples` samples or zero-padded at the end
    to them: the one crop/pad of every audio path (data loaders, `AudioInput.prepare`, served WAV files).

    TensorFlow, in a graph or eagerly; a numpy array (or list) given eagerly comes back as a numpy array."""
    import tensorflow as tf

    as_numpy = not tf.is_tensor(waveform) and tf.executing_eagerly()
    waveform = tf.convert_to_tensor(waveform)
    cropped = waveform[..., :num_samples]
    missing = num_samples - tf.shape(cropped)[-1]
    fitted = tf.pad(cropped, [[0, 0]] * (waveform.shape.rank - 1) + [[0, missing]])
    if isinstance(num_samples, numbers.Integral):
        fitted = tf.ensure_shape(fitted, waveform.shape[:-1].concatenate([num_samples]))
    return fitted.numpy() if as_numpy else fitted


def decode_wav(contents, sample_rate, num_samples, name="audio"):
    """One WAV file (a scalar string tensor, 16-bit PCM) -> float32 (num_samples,) in [-1, 1]: every channel
    mixed down to mono by their mean, cropped or zero-padded at the end. A file of another sampling rate fails
    (InvalidArgumentError) with a message naming input `name`, the rate received and the rate expected:
    TensorFlow has no resampler in the graph, and audio played at the wrong rate would be silently wrong."""
    import tensorflow as tf

    audio, rate = tf.audio.decode_wav(contents)  # (samples, channels), float32 in [-1, 1]
    check = tf.debugging.Assert(tf.equal(rate, sample_rate), [tf.strings.join([
        f"Input {name}: a WAV file sampled at ", tf.strings.as_string(rate),
        f" Hz; the model takes {int(sample_rate)} Hz audio (resample it first)."])], summarize=1)
    with tf.control_dependencies([check]):
        mono = tf.reduce_mean(audio, axis=-1)
    return fit_length(mono, int(num_samples))
