"""Speech for the bundled data's spoken configs: shipped word clips, utterance assembly, and the waveform a model
takes.

    from mmzoo.data import speech
    utterance = speech.speak("what color is the circle?", numpy.random.default_rng(0), max_samples=40_000)
    utterance.samples      # int16 at speech.SAMPLE_RATE (8 kHz), one voice, per-utterance variation
    waveform = speech.waveform_features(utterance.samples, 40_000)   # float32 [-1, 1], zero-padded

The clips (`clips.npz`, ~2 MB) were made once with espeak-ng by ``bench/synthesize_speech_clips.py``; nothing here
needs a speech synthesiser or the network.
"""

from mmzoo.data.speech.assembly import Utterance, Variation, change_speed, resample, speak  # resample: old name
from mmzoo.data.speech.clips import SAMPLE_RATE, ClipBank, load_clips
from mmzoo.data.speech.transcript import spoken_tokens, transcript
from mmzoo.data.speech.waveform import waveform_features

__all__ = [
    "SAMPLE_RATE",
    "ClipBank",
    "Utterance",
    "Variation",
    "change_speed",
    "load_clips",
    "speak",
    "spoken_tokens",
    "transcript",
    "waveform_features",
]
