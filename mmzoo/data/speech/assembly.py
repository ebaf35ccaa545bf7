"""Assemble a spoken utterance from the shipped word clips, with per-example variation, in numpy.

Each utterance draws, from the example's own generator: one voice; a speaking rate applied as a resampling
factor (tape-speed style: pitch and tempo move together; the voices themselves already differ in pitch and rate
independently); a small extra rate and loudness jitter per word; the silence before, between and after the words
(a comma is a longer pause); a spectral tilt (a first-order filter, like a different microphone); the peak level;
and background noise (white, pink or brown) at a random signal-to-noise ratio. So no two utterances are alike,
and the same generator state always gives the same samples.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from mmzoo.data.speech.clips import ClipBank, load_clips
from mmzoo.data.speech.transcript import PAUSES, spoken_tokens

__all__ = ["Utterance", "Variation", "change_speed", "speak"]


class Utterance(NamedTuple):
    """An assembled utterance: its int16 samples, the words whose clips it was made of (in order), the voice."""

    samples: np.ndarray
    words: tuple[str, ...]
    voice: str


@dataclasses.dataclass(frozen=True)
class Variation:
    """Ranges the per-utterance variation is drawn from (uniformly); times in seconds, levels in dB."""

    rate: tuple[float, float] = (0.87, 1.15)  # > 1: faster and higher
    word_rate_jitter: float = 0.04  # each word's rate: rate * (1 +- this)
    word_gain_db: float = 2.0  # each word's level: +- this
    gap: tuple[float, float] = (0.02, 0.10)  # between words
    pause: tuple[float, float] = (0.12, 0.28)  # at a comma
    lead: tuple[float, float] = (0.0, 0.30)  # before the first word
    tail: tuple[float, float] = (0.02, 0.15)  # after the last word
    tilt: tuple[float, float] = (-0.5, 0.5)  # y[n] = x[n] - tilt * x[n-1]
    peak_db: tuple[float, float] = (-14.0, -1.0)  # the utterance's peak, below full scale
    snr_db: tuple[float, float] = (8.0, 35.0)  # speech power over noise power
    fade: float = 0.004  # each clip's raised-cosine fade in and out, against clicks


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """`x` played `factor` times faster, tape-style (linear interpolation, pitch moves with tempo):
    ``round(len(x) / factor)`` samples. Not a change of sample rate: that is `mmzoo.data.wav.resample`."""
    n = max(1, int(round(len(x) / factor)))
    return np.interp(np.arange(n) * (len(x) / n), np.arange(len(x)), x).astype(np.float32)


resample = change_speed  # its old name, kept importable


def speak(text: str, rng: np.random.Generator, *, max_samples: int | None = None, bank: ClipBank | None = None,
          variation: Variation = Variation()) -> Utterance:
    """`text` spoken: int16 samples at the bank's rate, at most `max_samples` long.

    The words are `transcript(text)`; punctuation only shapes the pauses. An utterance that would be longer than
    `max_samples` is fitted without losing a word: its silences are shortened (to a quarter at most), then, if that
    is not enough, it is sped up (1 % of the bundled vqa_spoken questions are shortened, 0.1 % sped up).
    """
    bank = load_clips() if bank is None else bank
    v = variation
    rate = bank.sample_rate
    voice = int(rng.integers(len(bank.voices)))
    speed = rng.uniform(*v.rate)
    pieces = [np.zeros(_samples(rng.uniform(*v.lead), rate), np.float32)]
    speech_power, speech_samples, words = 0.0, 0, []
    tokens = spoken_tokens(text)
    for k, token in enumerate(tokens):
        if token in PAUSES:
            continue
        word = _word(bank.clip(voice, token), speed * (1 + rng.uniform(-1, 1) * v.word_rate_jitter),
                     10 ** (rng.uniform(-1, 1) * v.word_gain_db / 20), _samples(v.fade, rate))
        words.append(token)
        speech_power += float(np.dot(word, word))
        speech_samples += len(word)
        following = tokens[k + 1] if k + 1 < len(tokens) else None
        silence = v.tail if following is None else v.pause if following in (",", ";", ":") else v.gap
        pieces += [word, np.zeros(_samples(rng.uniform(*silence), rate), np.float32)]
    if speech_samples == 0:
        raise ValueError(f"`text` has no word to speak. Received: text={text!r}")
    x = _fit(pieces, max_samples)
    return Utterance(_finish(x, rng, v, speech_power / speech_samples), tuple(words), bank.voices[voice])


def _fit(pieces: list[np.ndarray], max_samples: int | None) -> np.ndarray:
    """The concatenated pieces (silence, word, silence, word, ..., silence), at most `max_samples` long."""
    total = sum(len(p) for p in pieces)
    if max_samples is None or total <= max_samples:
        return np.concatenate(pieces)
    silence = sum(len(p) for p in pieces[::2])
    keep = max(0.25, 1.0 - (total - max_samples) / silence) if silence else 1.0
    pieces = [p[:int(len(p) * keep)] if k % 2 == 0 else p for k, p in enumerate(pieces)]
    x = np.concatenate(pieces)
    if len(x) > max_samples:
        x = change_speed(x, len(x) / max_samples)[:max_samples]
    return x


def _samples(seconds: float, rate: int) -> int:
    return int(round(seconds * rate))


def _word(clip: np.ndarray, speed: float, gain: float, fade: int) -> np.ndarray:
    """One word's clip at `speed`, scaled by `gain`, faded in and out over `fade` samples."""
    x = change_speed(clip, speed) * np.float32(gain)
    n = min(fade, len(x) // 2)
    if n > 0:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
        x[:n] *= ramp
        x[len(x) - n:] *= ramp[::-1]
    return x


def _finish(x: np.ndarray, rng: np.random.Generator, v: Variation, speech_power: float) -> np.ndarray:
    """Tilt, level, background noise and int16 quantisation of the assembled words."""
    tilt = rng.uniform(*v.tilt)
    y = x.copy()
    y[1:] -= np.float32(tilt) * x[:-1]
    speech_power *= float(np.mean(y * y)) / max(float(np.mean(x * x)), 1e-12)  # what the tilt did to the words
    scale = 10 ** (rng.uniform(*v.peak_db) / 20) / max(float(np.abs(y).max()), 1e-6)
    y *= np.float32(scale)
    noise = _coloured_noise(rng, len(y), exponent=float(rng.integers(3)))
    noise_power = speech_power * scale * scale / 10 ** (rng.uniform(*v.snr_db) / 10)
    y += noise * np.float32(np.sqrt(noise_power))
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-power noise whose power falls as 1 / f ** `exponent` (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    spectrum *= f ** (-exponent / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return (noise / max(float(np.sqrt(np.mean(noise * noise))), 1e-12)).astype(np.float32)
