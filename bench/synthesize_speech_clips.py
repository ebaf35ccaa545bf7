"""Remake mmzoo/data/speech/clips.npz, the word clips the spoken `mmzoo_shapes` configs are assembled from.

Development only: the clips ship in the package, so neither users nor the tests need espeak-ng. Run this after
changing the bundled data's vocabulary (`mmzoo.data.shapes.spoken_vocabulary()`), then bump
`MmzooShapes.VERSION`, since the spoken configs' audio changes with the clips.

    apt-get install -y espeak-ng        # Debian/Ubuntu; 1.51 made the shipped clips
    python bench/synthesize_speech_clips.py [--output mmzoo/data/speech/clips.npz]
    python bench/synthesize_speech_clips.py --check      # no espeak needed: how distinguishable the words are

Every word (the questions' and captions' words plus the answers) is spoken in isolation by each of the voices
below (espeak-ng language voice + variant, words per minute, pitch), resampled from espeak's 22 050 Hz to
8 000 Hz (scipy's polyphase filter, anti-aliased), trimmed of leading and trailing silence, peak-normalised and
stored as 8-bit mu-law. A few function words are given as phonemes, because espeak reads a lone "a" as the
letter name ("ay"); as phonemes they sound as they do inside a sentence.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import wave

import numpy as np
from scipy import signal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmzoo.data import shapes  # noqa: E402
from mmzoo.data.speech import clips as clip_bank  # noqa: E402

ESPEAK_RATE = 22_050
# (name, espeak voice, words per minute, pitch 0-99). Six accents, male and female variants, slow to fast, low to
# high: the bank's own spread of timbre, pitch and tempo, before the per-utterance variation at assembly.
VOICES = (
    ("us_m1", "en-us+m1", 190, 45),
    ("us_f2", "en-us+f2", 200, 60),
    ("us_m7", "en-us+m7", 215, 35),
    ("us_f5", "en-us+f5", 180, 72),
    ("us_klatt", "en-us+klatt", 205, 50),
    ("gb_m3", "en-gb+m3", 185, 40),
    ("gb_f1", "en-gb+f1", 210, 55),
    ("gb_m5", "en-gb+m5", 225, 48),
    ("rp_f4", "en-gb-x-rp+f4", 195, 68),
    ("scot_m2", "en-gb-scotland+m2", 200, 52),
    ("carib_f3", "en-029+f3", 190, 62),
    ("lanc_m4", "en-gb-x-gbclan+m4", 210, 30),
    ("us_m6", "en-us+m6", 195, 42),
    ("us_f1", "en-us+f1", 205, 66),
    ("rp_m2", "en-gb-x-rp+m2", 180, 38),
    ("scot_f4", "en-gb-scotland+f4", 200, 64),
)
# Words espeak says differently alone than in a sentence, given as the phonemes it uses in context.
PHONEMES = {"a": "[[a#]]"}
# Unstressed function words, spoken this much faster than the voice's rate: alone, espeak gives them the length
# of a stressed word at the end of a sentence (a lone "the" lasts as long as "red").
FUNCTION_WORDS = ("a", "an", "and", "are", "at", "in", "is", "of", "the", "with")
FUNCTION_WORD_SPEEDUP = 1.5
TRIM_THRESHOLD = 0.02  # of the clip's peak, per 5 ms frame
TRIM_MARGIN_S = 0.005


def words() -> tuple[str, ...]:
    """The bank's words: everything the spoken texts say, and the answers (so spoken answers are possible)."""
    answers = [word for answer in shapes.ANSWERS for word in answer.split()]
    return tuple(sorted(set(shapes.spoken_vocabulary()) | set(answers)))


def synthesize(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's waveform of `word`, float32 in [-1, 1] at 22 050 Hz."""
    text = PHONEMES.get(word, word)
    if word in FUNCTION_WORDS:
        speed = round(speed * FUNCTION_WORD_SPEEDUP)
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        if reader.getframerate() != ESPEAK_RATE or reader.getsampwidth() != 2 or reader.getnchannels() != 1:
            raise RuntimeError(f"espeak-ng wrote {reader.getparams()}; expected 16-bit mono at {ESPEAK_RATE} Hz")
        # espeak's header gives a huge frame count when writing to a pipe: read everything after it.
        data = reader.readframes(1 << 30)
    return np.frombuffer(data, np.int16).astype(np.float32) / 32768.0


def trim(x: np.ndarray, rate: int) -> np.ndarray:
    """`x` without the leading and trailing frames quieter than TRIM_THRESHOLD of its peak (plus a margin)."""
    frame = max(1, rate // 200)
    n = len(x) // frame * frame
    peaks = np.abs(x[:n]).reshape(-1, frame).max(axis=1)
    loud = np.nonzero(peaks > TRIM_THRESHOLD * peaks.max())[0]
    margin = int(TRIM_MARGIN_S * rate)
    return x[max(0, loud[0] * frame - margin):min(len(x), (loud[-1] + 1) * frame + margin)]


def clip(word: str, voice: str, speed: int, pitch: int, rate: int) -> np.ndarray:
    """One word at `rate` Hz, trimmed, peak-normalised to 0.95."""
    x = signal.resample_poly(synthesize(word, voice, speed, pitch), rate, ESPEAK_RATE).astype(np.float32)
    x = trim(x, rate)
    return 0.95 * x / np.abs(x).max()


def _log_mel_shape(x: np.ndarray, rate: int, frames: int = 16, bins: int = 40) -> np.ndarray:
    """A clip's log-mel spectrogram stretched to `frames` frames, mean-removed, unit norm (a crude word shape)."""
    n_fft, hop = 256, rate // 100
    x = np.pad(x, (0, max(0, n_fft - len(x))))
    power = np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft))) ** 2
    mel = 2595 * np.log10(1 + np.linspace(0, rate / 2, n_fft // 2 + 1) / 700)
    centres = np.linspace(0, mel[-1], bins + 2)
    step = centres[1] - centres[0]
    bank = np.clip(1 - np.abs(mel[None, :] - centres[1:-1, None]) / step, 0, None)
    logmel = np.log(power @ bank.T + 1e-6)
    positions = np.linspace(0, len(logmel) - 1, frames)
    shape = np.stack([np.interp(positions, np.arange(len(logmel)), band) for band in logmel.T], axis=1)
    shape -= shape.mean()
    return (shape / np.linalg.norm(shape)).ravel()


def check(path: str) -> float:
    """Leave-one-voice-out accuracy of a 1-nearest-neighbour word classifier over the clips' log-mel shapes."""
    bank = clip_bank.load_clips(path)
    shapes_ = np.array([[_log_mel_shape(bank.clip(v, w), bank.sample_rate) for w in bank.words]
                        for v in range(len(bank.voices))])
    n_voices, n_words = shapes_.shape[:2]
    correct = 0
    for voice in range(n_voices):
        others = np.delete(shapes_, voice, axis=0).reshape(-1, shapes_.shape[-1])
        distances = ((shapes_[voice][:, None, :] - others[None]) ** 2).sum(-1)
        correct += int((distances.argmin(axis=1) % n_words == np.arange(n_words)).sum())
    return correct / (n_voices * n_words)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=clip_bank.CLIPS_PATH)
    parser.add_argument("--sample-rate", type=int, default=clip_bank.SAMPLE_RATE)
    parser.add_argument("--check", action="store_true",
                        help="only report the leave-one-voice-out word accuracy of a crude classifier on --output")
    args = parser.parse_args(argv)
    if args.check:
        print(f"leave-one-voice-out 1-NN word accuracy: {check(args.output):.3f}")
        return
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed: apt-get install -y espeak-ng")
    vocabulary = words()
    clips = {(name, word): clip(word, voice, speed, pitch, args.sample_rate)
             for name, voice, speed, pitch in VOICES for word in vocabulary}
    clip_bank.save_clips(args.output, clips, voices=[v[0] for v in VOICES], words=vocabulary,
                         sample_rate=args.sample_rate,
                         settings=[f"{voice} -s {speed} -p {pitch}" for _, voice, speed, pitch in VOICES])
    lengths = np.array([len(x) for x in clips.values()]) / args.sample_rate
    print(f"{len(VOICES)} voices x {len(vocabulary)} words -> {args.output} ({os.path.getsize(args.output):,} bytes); "
          f"clip length {lengths.min():.2f}-{lengths.max():.2f} s, mean {lengths.mean():.2f} s")


if __name__ == "__main__":
    main()
