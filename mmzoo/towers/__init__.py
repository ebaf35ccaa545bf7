"""Towers: one encoder per input, registered by the kind of input it takes. They know nothing of fusion,
recipes, trainers or export."""

from mmzoo.towers.audio import (
    AudioInput,
    apply_audio_tower,
    build_audio_tower,
    output_length,
    time_downsampling,
)
from mmzoo.towers.audio_features import LogMelSpectrogram, SpecAugment, WaveformMask
from mmzoo.towers.image import ImageInput, build_image_tower
from mmzoo.towers.preprocessing import ResNetPreprocessing
from mmzoo.towers.registry import (
    InputKind,
    Modality,
    Tower,
    get_input_kind,
    get_tower,
    list_towers,
    register_input_kind,
    register_tower,
)
from mmzoo.towers.text import (
    TextInput,
    adapt_vocabulary,
    apply_text_tower,
    build_text_vectorizer,
    check_vocabulary,
)

__all__ = [
    "AudioInput",
    "LogMelSpectrogram",
    "SpecAugment",
    "WaveformMask",
    "apply_audio_tower",
    "build_audio_tower",
    "output_length",
    "time_downsampling",
    "ImageInput",
    "InputKind",
    "Modality",
    "ResNetPreprocessing",
    "TextInput",
    "Tower",
    "adapt_vocabulary",
    "apply_text_tower",
    "build_image_tower",
    "build_text_vectorizer",
    "check_vocabulary",
    "get_input_kind",
    "get_tower",
    "list_towers",
    "register_input_kind",
    "register_tower",
]
