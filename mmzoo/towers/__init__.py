"""Towers: one encoder per modality. They know nothing of fusion, recipes, trainers or export."""

from mmzoo.towers.image import IMAGE_TOWERS, build_image_tower
from mmzoo.towers.preprocessing import ResNetPreprocessing
from mmzoo.towers.text import (
    TEXT_TOWERS,
    adapt_vocabulary,
    apply_text_tower,
    build_text_vectorizer,
    check_vocabulary,
)

__all__ = [
    "IMAGE_TOWERS",
    "TEXT_TOWERS",
    "ResNetPreprocessing",
    "adapt_vocabulary",
    "apply_text_tower",
    "build_image_tower",
    "build_text_vectorizer",
    "check_vocabulary",
]
