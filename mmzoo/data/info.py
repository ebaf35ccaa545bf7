"""`DataInfo`: what a model needs to know about a dataset (its inputs, classes, vocabulary, image size, audio
format), and the
vocabulary adapter shared by the TFDS pipeline and the own-data loaders."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

__all__ = ["DataInfo", "adapt_vocabulary"]


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What comes with a dataset from `mmzoo.data.load`, `from_csv` or `from_jsonl` (``with_info=True``).

    Attributes:
        name: the TFDS name (``"mmzoo_shapes/vqa"``) or the path of the CSV/JSONL file.
        split: the split that was loaded (TFDS split string; ``None`` for own data).
        class_names: label names; label ``i`` of the dataset is ``class_names[i]``.
        vocabulary: tokens of the texts (of every text feature together), most frequent first, as
            ``keras.layers.TextVectorization(standardize="lower_and_strip_punctuation")`` adapted on the
            *training* texts returns from ``get_vocabulary(include_special_tokens=False)``.
        image_size: ``(height, width)`` of the images the dataset yields (every image feature has it); ``None``
            when it yields no images.
        num_examples: examples in the loaded split (after skipped rows), or ``None`` if unknown.
        num_skipped: rows left out because of a bad image or value (own data with ``skip_bad_rows=True``).
        skipped: ``(row, reason)`` of every skipped row.
        feature_keys: the source key or column each feature (and ``"label"``) came from.
        input_kinds: ``{feature key: "image" | "text" | "audio"}`` of the features the dataset yields, in order:
            the inputs a model for it takes, e.g. ``{"front": "image", "side": "image", "question": "text"}``.
        sample_rate: the rate (Hz) of the audio features (every audio feature has it); ``None`` without audio.
        num_samples: the length every audio feature is padded or cropped to; ``None`` without audio.
    """

    name: str
    split: str | None
    class_names: tuple[str, ...]
    vocabulary: tuple[str, ...]
    image_size: tuple[int, int] | None
    num_examples: int | None = None
    num_skipped: int = 0
    skipped: tuple[tuple[int, str], ...] = ()
    feature_keys: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    input_kinds: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"image": "image", "text": "text"})
    sample_rate: int | None = None
    num_samples: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def audio_options(self) -> dict:
        """``{"sample_rate", "num_samples"}`` an audio input of a model for this data declares (the options of
        the "audio" input kind, e.g. ``towers={"audio": {"tower": "mel_cnn", **info.audio_options()}}``); ``{}``
        without audio."""
        if "audio" not in self.input_kinds.values():
            return {}
        return {"sample_rate": self.sample_rate, "num_samples": self.num_samples}

    def model_kwargs(self) -> dict:
        """Keyword arguments for ``mmzoo.build_model(name, **info.model_kwargs())`` (or `build_classifier`, whose
        `towers` name one tower per key of `input_kinds`): classes, and the vocabulary and image size when the
        data has texts and images."""
        kwargs = {"num_classes": self.num_classes, "class_names": list(self.class_names)}
        if "text" in self.input_kinds.values():
            kwargs["vocabulary"] = list(self.vocabulary)
        if self.image_size is not None:
            height, width = self.image_size
            kwargs["image_size"] = height if height == width else (height, width)
        return kwargs


def adapt_vocabulary(texts, *, max_tokens: int | None = None) -> tuple[str, ...]:
    """Vocabulary of `texts` (an iterable of str, or a `tf.data.Dataset` of scalar or batched strings), as
    `mmzoo.adapt_vocabulary` (the text tower's) learns it: most frequent first, without special tokens."""
    from mmzoo.towers.text import adapt_vocabulary as tower_adapt_vocabulary

    return tuple(tower_adapt_vocabulary(texts, max_tokens=max_tokens))


def _as_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        size = (image_size, image_size)
    else:
        size = tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f"`image_size` must be a positive int or a (height, width) pair. Received: image_size={image_size!r}")
    return size


def _check_keys(feature_keys: Mapping | None, defaults: Mapping[str, str | None]) -> dict:
    keys = dict(defaults)
    if feature_keys is not None:
        unknown = set(feature_keys) - set(defaults)
        if unknown:
            raise ValueError(
                f"`feature_keys` may only name {sorted(defaults)}. Received: feature_keys={dict(feature_keys)!r}")
        keys.update(feature_keys)
    return keys


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
