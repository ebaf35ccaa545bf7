"""The shipped word clips: every word of the bundled data, spoken by several synthetic voices.

`clips.npz` (beside this file) was made once with espeak-ng by ``bench/synthesize_speech_clips.py`` and ships in
the package, so building the spoken configs needs no speech synthesiser and downloads nothing. It holds, per
voice and word, one trimmed clip at `SAMPLE_RATE`, stored as 8-bit mu-law (telephone quality, half the size of
int16) in one concatenated array with (start, end) bounds.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

__all__ = ["CLIPS_PATH", "SAMPLE_RATE", "ClipBank", "load_clips", "mulaw_decode", "mulaw_encode", "save_clips"]

CLIPS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clips.npz")
SAMPLE_RATE = 8_000
_MU = 255.0


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """uint8 mu-law codes (mu = 255) of float samples in [-1, 1]."""
    x = np.clip(np.asarray(x, np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(_MU * np.abs(x)) / np.log1p(_MU)
    return np.round((y + 1.0) * 127.5).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] of uint8 mu-law codes: the inverse of `mulaw_encode` up to quantisation."""
    y = np.asarray(codes, np.float64) / 127.5 - 1.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(_MU)) / _MU).astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class ClipBank:
    """Word clips by voice: ``bank.clip(voice_index, "circle")`` is float32 in [-1, 1] at `sample_rate` Hz."""

    sample_rate: int
    voices: tuple[str, ...]
    settings: tuple[str, ...]  # the espeak-ng settings each voice was made with, for the record
    words: tuple[str, ...]
    _clips: tuple[tuple[np.ndarray, ...], ...]  # [voice][word]

    def clip(self, voice: int, word: str) -> np.ndarray:
        try:
            index = self._word_index[word]
        except KeyError:
            raise ValueError(f"No clip for the word {word!r}: the shipped clips cover the bundled data's "
                             f"{len(self.words)} words ({', '.join(self.words)}).") from None
        return self._clips[voice][index]

    @functools.cached_property
    def _word_index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}


def save_clips(path: str, clips: dict, *, voices, words, sample_rate: int, settings) -> None:
    """Write `clips` ({(voice, word): float array}) as `load_clips` reads them."""
    pieces = [mulaw_encode(clips[(voice, word)]) for voice in voices for word in words]
    ends = np.cumsum([len(p) for p in pieces])
    bounds = np.stack([ends - [len(p) for p in pieces], ends], axis=-1).reshape(len(voices), len(words), 2)
    np.savez_compressed(path, mulaw=np.concatenate(pieces), bounds=bounds.astype(np.int64),
                        voices=np.array(voices), settings=np.array(settings), words=np.array(words),
                        sample_rate=np.int64(sample_rate))


@functools.lru_cache(maxsize=4)
def load_clips(path: str = CLIPS_PATH) -> ClipBank:
    """The clip bank at `path` (default: the shipped one), decoded once per process."""
    # A file object, not a path: TFDS' builder tests replace np.load with a version that refuses paths.
    with open(path, "rb") as f, np.load(f) as data:
        samples = mulaw_decode(data["mulaw"])
        bounds = data["bounds"]
        bank = ClipBank(
            sample_rate=int(data["sample_rate"]), voices=tuple(str(v) for v in data["voices"]),
            settings=tuple(str(s) for s in data["settings"]), words=tuple(str(w) for w in data["words"]),
            _clips=tuple(tuple(samples[start:end] for start, end in row) for row in bounds),
        )
    return bank
