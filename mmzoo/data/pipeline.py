"""tf.data pipelines that turn a TFDS image + text dataset into what mmzoo models take.

    ds, info = mmzoo.data.load("mmzoo_shapes/vqa", "train", batch_size=32, with_info=True)
    model = mmzoo.build_model("small_cnn_lstm_concat", **info.model_kwargs())
    model.fit(ds, validation_data=mmzoo.data.load("mmzoo_shapes/vqa", "validation", batch_size=32))

Every dataset yields ``({"image": uint8 [B, H, W, 3], "text": string [B]}, label int64 [B])``.
"""

from __future__ import annotations

import functools
import logging
from typing import Mapping

import tensorflow as tf
import tensorflow_datasets as tfds

from mmzoo.data import shapes as _shapes  # noqa: F401  (registers mmzoo_shapes with TFDS)
from mmzoo.data.info import DataInfo, _as_size, _check_keys, adapt_vocabulary
from mmzoo.images import decode_image, resize_image

__all__ = ["load", "finish"]

_log = logging.getLogger(__name__)
AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_FEATURE_KEYS = {"image": "image", "text": "text", "label": "label"}
# `cache="auto"` keeps a split in memory when its decoded, resized images take at most this much.
CACHE_LIMIT_BYTES = 2 * 1024**3
# The default shuffle buffer holds the whole split, up to this many examples and this many bytes of pixels.
MAX_SHUFFLE_BUFFER = 20_000
SHUFFLE_BUFFER_BYTES = 256 * 1024**2


def load(
    name: str,
    split: str = "train",
    *,
    batch_size: int | None = 32,
    image_size: int | tuple[int, int] | None = None,
    shuffle: bool | None = None,
    data_dir: str | None = None,
    feature_keys: Mapping[str, str | None] | None = None,
    config: tfds.core.BuilderConfig | None = None,
    cache: bool | str = "auto",
    shuffle_buffer: int | None = None,
    seed: int | None = None,
    drop_remainder: bool = False,
    download: bool = True,
    vocabulary_split: str = "train",
    max_tokens: int | None = None,
    with_info: bool = False,
):
    """A batched ``tf.data.Dataset`` of ``({"image", "text"}, label)`` from a TFDS dataset.

    Args:
        name: a TFDS name, e.g. ``"mmzoo_shapes/vqa"`` (bundled; generated on first use, ~30 s) or any
            image + text dataset you have prepared under `data_dir`.
        split: a TFDS split, slices included (``"train[:10%]"``).
        batch_size: examples per batch; ``None`` for unbatched examples.
        image_size: ``int`` or ``(height, width)`` to resize to with `mmzoo.images.resize_image`, as the
            export resizes what it serves; ``None`` keeps the stored size, which must then be fixed.
        shuffle: shuffle files and examples; defaults to ``True`` for splits whose name starts with "train".
        data_dir: TFDS data directory (default: TFDS' own, ``~/tensorflow_datasets``).
        feature_keys: which features hold ``"image"``, ``"text"`` and ``"label"``, e.g.
            ``{"text": "question", "label": "answer"}``; nested features as ``"outer/inner"``. The image must
            be an ``Image`` feature (1, 3 or 4 channels); the text a scalar ``Text``; the label a ``ClassLabel``,
            a scalar ``Text`` (names collected from `vocabulary_split`) or an integer. ``"label": None`` yields
            the features alone.
        config: a `tfds.core.BuilderConfig`, e.g. ``mmzoo.data.shapes_config("vqa", num_train=2000)``.
        cache: ``"auto"`` caches decoded, resized examples in memory when they take at most 2 GiB; ``True`` or
            ``False`` force it; a string caches to that file prefix.
        shuffle_buffer: examples in the shuffle buffer; default the whole split, up to 20 000 examples and
            256 MiB of pixels (at least 1 000 examples).
        seed: makes shuffling (files and examples) repeatable.
        drop_remainder: drop the last, smaller batch.
        download: run ``download_and_prepare`` first (generates `mmzoo_shapes`; a no-op once prepared).
        vocabulary_split: split whose texts the vocabulary (and string label names) are taken from.
        max_tokens: keep only the most frequent tokens in the vocabulary.
        with_info: also return a `DataInfo` (class names, vocabulary, image size, number of examples).

    Returns:
        the dataset, or ``(dataset, DataInfo)`` when `with_info` is true.
    """
    keys = _check_keys(feature_keys, DEFAULT_FEATURE_KEYS)
    size = _as_size(image_size)
    if config is not None and "/" in name.split(":")[0]:
        raise ValueError(f"Name a config either in `name` or with `config`, not both. Received: name={name!r}, "
                         f"config={config.name!r}; use name={name.split('/')[0]!r} with `config`.")
    builder = get_builder(name, config=config, data_dir=data_dir, download=download)
    features = builder.info.features
    image_feature, text_feature, label_feature = _check_features(name, features, keys)

    stored = image_feature.shape[:2]
    if size is None:
        if None in stored:
            raise ValueError(
                f"The images of {name!r} have no fixed size (shape {image_feature.shape}): pass `image_size`.")
        size = (int(stored[0]), int(stored[1]))
    if shuffle is None:
        shuffle = split.startswith("train")
    num_examples = _num_examples(builder, split)

    label_table, class_names = None, ()
    if keys["label"] is not None:
        if isinstance(label_feature, tfds.features.ClassLabel):
            class_names = tuple(label_feature.names)
        else:
            class_names = _label_names(builder, keys, vocabulary_split, isinstance(label_feature, tfds.features.Text))
            if isinstance(label_feature, tfds.features.Text):
                label_table = _string_table(class_names)

    read_config = tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=False)
    ds = builder.as_dataset(
        split=split, shuffle_files=shuffle, read_config=read_config,
        decoders=_decoders(keys))
    to_model = functools.partial(
        _to_model_inputs, keys=keys, size=size, stored=stored, label_table=label_table, name=name)
    deterministic = True if not shuffle or seed is not None else None  # None: tf.data's default
    ds = ds.map(to_model, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = finish(ds, batch_size=batch_size, shuffle=shuffle, cache=cache, shuffle_buffer=shuffle_buffer,
                seed=seed, drop_remainder=drop_remainder, num_examples=num_examples, image_size=size)
    if not with_info:
        return ds
    info = DataInfo(
        name=name if config is None else f"{builder.name}/{builder.builder_config.name}",
        split=split, class_names=class_names,
        vocabulary=_vocabulary(builder, keys["text"], vocabulary_split, max_tokens),
        image_size=size, num_examples=num_examples, feature_keys=keys, input_kinds={"image": "image", "text": "text"})
    return ds, info


def finish(ds: tf.data.Dataset, *, batch_size: int | None, shuffle: bool, cache: bool | str = "auto",
           shuffle_buffer: int | None = None, seed: int | None = None, drop_remainder: bool = False,
           num_examples: int | None = None, image_size: tuple[int, int] = (64, 64),
           num_images: int = 1) -> tf.data.Dataset:
    """Cache, shuffle, batch and prefetch a dataset of decoded, resized examples (shared by all loaders).

    `image_size` and `num_images` (images per example) size the in-memory cache and shuffle buffer."""
    per_example = num_images * image_size[0] * image_size[1] * 3 + 256  # pixels + texts and label, roughly
    if cache == "auto":
        cache = num_examples is not None and num_examples * per_example <= CACHE_LIMIT_BYTES
    if isinstance(cache, str):
        ds = ds.cache(cache)
    elif cache:
        ds = ds.cache()
    if shuffle:
        buffer = shuffle_buffer or min(num_examples or MAX_SHUFFLE_BUFFER, MAX_SHUFFLE_BUFFER,
                                       max(1_000, SHUFFLE_BUFFER_BYTES // per_example))
        ds = ds.shuffle(max(1, buffer), seed=seed, reshuffle_each_iteration=True)
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE,
                      deterministic=True if not shuffle or seed is not None else None)
    return ds.prefetch(AUTOTUNE)


# ----------------------------------------------------------------------------------------------------------


def _get(tree, key: str):
    for part in key.split("/"):
        tree = tree[part]
    return tree


def _check_features(name, features, keys):
    def feature(role):
        key = keys[role]
        try:
            return _get(features, key)
        except (KeyError, TypeError):
            available = sorted(features.keys())
            raise ValueError(
                f"{name!r} has no feature {key!r} for the {role}. Its features are {available}; map yours with "
                f"`feature_keys`, e.g. feature_keys={{{role!r}: {available[0]!r}}}.") from None

    image = feature("image")
    if not isinstance(image, tfds.features.Image) or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"The {keys['image']!r} feature of {name!r} must be an Image feature with 1, 3 or 4 "
                         f"channels. Received: {image!r}")
    text = feature("text")
    if not isinstance(text, tfds.features.Text):
        raise ValueError(f"The {keys['text']!r} feature of {name!r} must be a scalar Text feature. "
                         f"Received: {text!r}")
    label = None
    if keys["label"] is not None:
        label = feature("label")
        ok = isinstance(label, (tfds.features.ClassLabel, tfds.features.Text)) or (
            isinstance(label, tfds.features.Tensor) and label.shape == () and label.dtype.is_integer)
        if not ok:
            raise ValueError(f"The {keys['label']!r} feature of {name!r} must be a ClassLabel, a scalar Text or a "
                             f"scalar integer. Received: {label!r}")
    return image, text, label


def _decoders(keys):
    """Parse only the features we use; decode the image ourselves, inside our parallel map."""
    wanted: dict = {}
    for key in (keys["image"], keys["text"], keys["label"]):
        if key is not None:
            _set_nested(wanted, key, True)
    return tfds.decode.PartialDecoding(wanted, decoders=_set_nested({}, keys["image"], tfds.decode.SkipDecoding()))


def get_builder(name: str, *, config=None, data_dir: str | None = None, download: bool = True):
    """The TFDS builder of `name` (with `config`, if given), prepared first when `download` (statistics skipped)."""
    builder = tfds.builder(name, data_dir=data_dir, config=config) if config is not None else tfds.builder(
        name, data_dir=data_dir)
    if download:
        prepare(builder)
    return builder


def prepare(builder) -> None:
    """`download_and_prepare` without computing statistics (a no-op once prepared; generates `mmzoo_shapes`)."""
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        compute_stats=tfds.download.ComputeStatsMode.SKIP))


def decode_stored_image(encoded: tf.Tensor, *, stored, size: tuple[int, int]) -> tf.Tensor:
    """A TFDS image's bytes -> (*size, 3) uint8 pixels, through the decode and resize every export uses."""
    image = decode_image(encoded)
    if None not in tuple(stored):  # a fixed stored size: the resize is known to be needed or not when traced
        image = tf.ensure_shape(image, (*stored, 3))
    return resize_image(image, size)


def _to_model_inputs(example, *, keys, size, stored, label_table, name):
    image = decode_stored_image(_get(example, keys["image"]), stored=stored, size=size)
    features = {"image": image, "text": _get(example, keys["text"])}
    if keys["label"] is None:
        return features
    label = _get(example, keys["label"])
    if label_table is not None:
        label = label_table.lookup(label)
        tf.debugging.assert_non_negative(label, message=(
            f"mmzoo.data.load({name!r}): a string label of this split is not among the label names collected "
            f"from the vocabulary split"))
    return features, tf.cast(label, tf.int64)


def _num_examples(builder, split):
    try:
        return int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, TypeError):
        return None


def _string_table(names):
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(names, tf.string), tf.range(len(names), dtype=tf.int64)),
        default_value=-1)


@functools.lru_cache(maxsize=32)
def _vocabulary_cached(data_dir: str, name: str, config_name: str | None, text_key: str, split: str,
                       max_tokens: int | None) -> tuple[str, ...]:
    builder = tfds.builder_from_directory(data_dir)
    texts = builder.as_dataset(split=split, decoders=tfds.decode.PartialDecoding(_nested(text_key)))
    texts = texts.map(lambda ex: _get(ex, text_key), num_parallel_calls=AUTOTUNE)
    return adapt_vocabulary(texts, max_tokens=max_tokens)


def _vocabulary(builder, text_key, split, max_tokens):
    config = builder.builder_config.name if builder.builder_config else None
    return _vocabulary_cached(str(builder.data_dir), builder.name, config, text_key, split, max_tokens)


def _label_names(builder, keys, split, is_text):
    """Names of string or integer labels, collected from `split`: sorted strings, or "0".."max" for ints."""
    ds = builder.as_dataset(split=split, decoders=tfds.decode.PartialDecoding(_nested(keys["label"])))
    values = set()
    for batch in ds.map(lambda ex: _get(ex, keys["label"])).batch(4096).as_numpy_iterator():
        values.update(batch.tolist())
    if is_text:
        return tuple(sorted(v.decode("utf-8") for v in values))
    if values and min(values) < 0:
        raise ValueError(f"Integer labels of {builder.name!r} must be >= 0. Found {min(values)} in {split!r}.")
    return tuple(str(i) for i in range(max(values) + 1)) if values else ()


def _set_nested(tree: dict, key: str, value) -> dict:
    node = tree
    parts = key.split("/")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return tree


def _nested(key: str) -> dict:
    return _set_nested({}, key, True)
