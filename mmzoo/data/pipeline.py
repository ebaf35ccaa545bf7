"""tf.data pipelines that turn a TFDS image, text and audio dataset into what mmzoo models take.

    ds, info = mmzoo.data.load("mmzoo_shapes/vqa", "train", batch_size=32, with_info=True)
    model = mmzoo.build_model("small_cnn_lstm_concat", **info.model_kwargs())
    model.fit(ds, validation_data=mmzoo.data.load("mmzoo_shapes/vqa", "validation", batch_size=32))

Every dataset yields ``({"image": uint8 [B, H, W, 3], "text": string [B]}, label int64 [B])``, plus
``"audio": float32 [B, num_samples]`` for a dataset with an `Audio` feature (``mmzoo_shapes/vqa_spoken``).
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
# "auto" for the audio: the dataset's one top-level `tfds.features.Audio` feature, if it has one.
AUTO = "auto"
DEFAULT_FEATURE_KEYS = {"image": "image", "text": "text", "audio": AUTO, "label": "label"}
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
    num_samples: int | None = None,
    with_info: bool = False,
):
    """A batched ``tf.data.Dataset`` of ``({"image", "text", "audio"}, label)`` from a TFDS dataset.

    Args:
        name: a TFDS name, e.g. ``"mmzoo_shapes/vqa"`` (bundled; generated on first use, ~30 s) or any
            image + text dataset you have prepared under `data_dir`.
        split: a TFDS split, slices included (``"train[:10%]"``).
        batch_size: examples per batch; ``None`` for unbatched examples.
        image_size: ``int`` or ``(height, width)`` to resize to with `mmzoo.images.resize_image`, as the
            export resizes what it serves; ``None`` keeps the stored size, which must then be fixed.
        shuffle: shuffle files and examples; defaults to ``True`` for splits whose name starts with "train".
        data_dir: TFDS data directory (default: TFDS' own, ``~/tensorflow_datasets``).
        feature_keys: which features hold ``"image"``, ``"text"``, ``"audio"`` and ``"label"``, e.g.
            ``{"text": "question", "label": "answer"}``; nested features as ``"outer/inner"``. The image must
            be an ``Image`` feature (1, 3 or 4 channels); the text a scalar ``Text``; the audio an ``Audio``
            feature (default: the dataset's one top-level ``Audio`` feature, if any, e.g. ``speech``); the label
            a ``ClassLabel``, a scalar ``Text`` (names collected from `vocabulary_split`) or an integer. ``None``
            leaves a feature out (``"label": None`` yields the features alone). With audio, the default image
            and text features are read only if the dataset has them.
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
        num_samples: the length the audio is zero-padded (at the end) or cropped to, as float32 in [-1, 1] (16-bit
            PCM / 32768, channels averaged). Default: the length the dataset declares in its metadata
            (``<feature>_num_samples``, as the spoken `mmzoo_shapes` configs do), else the longest clip of
            `vocabulary_split`. The audio keeps the feature's ``sample_rate`` (TensorFlow cannot resample).
        with_info: also return a `DataInfo` (class names, vocabulary, image size, audio sample rate and length,
            number of examples).

    Returns:
        the dataset, or ``(dataset, DataInfo)`` when `with_info` is true.
    """
    keys = _check_keys(feature_keys, DEFAULT_FEATURE_KEYS)
    size = _as_size(image_size)
    if config is not None and "/" in name.split(":")[0]:
        raise ValueError(f"Name a config either in `name` or with `config`, not both. Received: name={name!r}, "
                         f"config={config.name!r}; use name={name.split('/')[0]!r} with `config`.")
    builder = get_builder(name, config=config, data_dir=data_dir, download=download)
    keys = _resolve_keys(name, builder.info.features, keys, given=feature_keys or {})
    image_feature, text_feature, audio_feature, label_feature = _check_features(name, builder.info.features, keys)
    stored = size = _image_size(name, image_feature, size)
    if image_feature is not None:
        stored = image_feature.shape[:2]
    audio = _audio_format(name, builder, keys["audio"], audio_feature, num_samples, vocabulary_split)
    if shuffle is None:
        shuffle = split.startswith("train")
    num_examples = _num_examples(builder, split)
    class_names, label_table = _labels(builder, keys, label_feature, vocabulary_split)

    read_config = tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=False)
    ds = builder.as_dataset(
        split=split, shuffle_files=shuffle, read_config=read_config,
        decoders=_decoders(keys))
    to_model = functools.partial(_to_model_inputs, keys=keys, size=size, stored=stored, label_table=label_table,
                                 name=name, num_samples=audio[1])
    deterministic = True if not shuffle or seed is not None else None  # None: tf.data's default
    ds = ds.map(to_model, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = finish(ds, batch_size=batch_size, shuffle=shuffle, cache=cache, shuffle_buffer=shuffle_buffer,
                seed=seed, drop_remainder=drop_remainder, num_examples=num_examples, image_size=size or (0, 0),
                num_images=int(size is not None), audio_samples=audio[1] or 0)
    if not with_info:
        return ds
    kinds = {role: role for role in ("image", "text", "audio") if keys[role] is not None}
    info = DataInfo(
        name=name if config is None else f"{builder.name}/{builder.builder_config.name}",
        split=split, class_names=class_names,
        vocabulary=_vocabulary(builder, keys["text"], vocabulary_split, max_tokens) if keys["text"] else (),
        image_size=size, num_examples=num_examples, feature_keys=keys, input_kinds=kinds,
        sample_rate=audio[0], num_samples=audio[1])
    return ds, info


def _image_size(name, image_feature, size):
    """The size images are resized to: `size`, or the stored one (which must then be fixed); None: no images."""
    if image_feature is None or size is not None:
        return size
    stored = image_feature.shape[:2]
    if None in stored:
        raise ValueError(f"The images of {name!r} have no fixed size (shape {image_feature.shape}): pass `image_size`.")
    return int(stored[0]), int(stored[1])


def _labels(builder, keys, label_feature, vocabulary_split):
    """(class names, a string -> id table for Text labels or None)."""
    if keys["label"] is None:
        return (), None
    if isinstance(label_feature, tfds.features.ClassLabel):
        return tuple(label_feature.names), None
    is_text = isinstance(label_feature, tfds.features.Text)
    class_names = _label_names(builder, keys, vocabulary_split, is_text)
    return class_names, _string_table(class_names) if is_text else None


def finish(ds: tf.data.Dataset, *, batch_size: int | None, shuffle: bool, cache: bool | str = "auto",
           shuffle_buffer: int | None = None, seed: int | None = None, drop_remainder: bool = False,
           num_examples: int | None = None, image_size: tuple[int, int] = (64, 64),
           num_images: int = 1, audio_samples: int = 0) -> tf.data.Dataset:
    """Cache, shuffle, batch and prefetch a dataset of decoded, resized examples (shared by all loaders).

    `image_size`, `num_images` (images per example) and `audio_samples` (float32 audio samples per example, all
    audio features together) size the in-memory cache and shuffle buffer."""
    # pixels + waveforms + texts and label, roughly
    per_example = num_images * image_size[0] * image_size[1] * 3 + 4 * audio_samples + 256
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


def _resolve_keys(name, features, keys, *, given) -> dict:
    """`keys` with the audio found ("auto": the one top-level Audio feature, if any) and, with audio, the default
    image and text features left out where the dataset has none."""
    keys = dict(keys)
    if keys["audio"] == AUTO:
        found = [key for key, feature in features.items() if isinstance(feature, tfds.features.Audio)]
        if len(found) > 1:
            raise ValueError(f"{name!r} has several Audio features {found}: name the one to read, e.g. "
                             f"feature_keys={{'audio': {found[0]!r}}}.")
        keys["audio"] = found[0] if found else None
    if keys["audio"] is not None:
        for role in ("image", "text"):
            if role not in given and keys[role] not in features:
                keys[role] = None
    if all(keys[role] is None for role in ("image", "text", "audio")):
        raise ValueError(f"`feature_keys` leaves no image, text or audio feature of {name!r} to read. "
                         f"Received: feature_keys={dict(given)!r}")
    return keys


def _check_features(name, features, keys):
    """(image, text, audio, label) features of the dataset (None where not read), each of a kind mmzoo reads."""
    def feature(role):
        key = keys[role]
        if key is None:
            return None
        try:
            return _get(features, key)
        except (KeyError, TypeError):
            available = sorted(features.keys())
            raise ValueError(
                f"{name!r} has no feature {key!r} for the {role}. Its features are {available}; map yours with "
                f"`feature_keys`, e.g. feature_keys={{{role!r}: {available[0]!r}}}.") from None

    image, text, audio, label = (feature(role) for role in ("image", "text", "audio", "label"))
    if image is not None and (not isinstance(image, tfds.features.Image) or image.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"The {keys['image']!r} feature of {name!r} must be an Image feature with 1, 3 or 4 "
                         f"channels. Received: {image!r}")
    if text is not None and not isinstance(text, tfds.features.Text):
        raise ValueError(f"The {keys['text']!r} feature of {name!r} must be a scalar Text feature. "
                         f"Received: {text!r}")
    if audio is not None and not isinstance(audio, tfds.features.Audio):
        raise ValueError(f"The {keys['audio']!r} feature of {name!r} must be an Audio feature. Received: {audio!r}")
    if label is not None:
        ok = isinstance(label, (tfds.features.ClassLabel, tfds.features.Text)) or (
            isinstance(label, tfds.features.Tensor) and label.shape == () and label.dtype.is_integer)
        if not ok:
            raise ValueError(f"The {keys['label']!r} feature of {name!r} must be a ClassLabel, a scalar Text or a "
                             f"scalar integer. Received: {label!r}")
    return image, text, audio, label


def _audio_format(name, builder, key, feature, num_samples, split):
    """(sample rate, num_samples) of the audio feature `key` (None, None without one): the rate the feature
    records (or the dataset's metadata, ``<key>_sample_rate``), the length given, declared in the metadata
    (``<key>_num_samples``) or the longest clip of `split`."""
    if feature is None:
        return None, None
    if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                                    or num_samples < 1):
        raise ValueError(f"`num_samples` must be a positive integer or None. Received: num_samples={num_samples!r}")
    metadata = builder.info.metadata or {}
    prefix = key.replace("/", "_")
    rate = feature.sample_rate or metadata.get(f"{prefix}_sample_rate")
    if not rate:
        raise ValueError(f"The {key!r} audio feature of {name!r} records no sample rate (tfds.features.Audio("
                         "sample_rate=...)); mmzoo needs it to declare the model's.")
    if num_samples is None:
        num_samples = metadata.get(f"{prefix}_num_samples") or _longest_clip(builder, key, split)
    return int(rate), int(num_samples)


@functools.lru_cache(maxsize=32)
def _longest_clip_cached(data_dir: str, name: str, config_name: str | None, key: str, split: str) -> int:
    builder = tfds.builder_from_directory(data_dir)
    clips = builder.as_dataset(split=split, decoders=tfds.decode.PartialDecoding(_nested(key)))
    lengths = clips.map(lambda ex: tf.shape(_get(ex, key))[0], num_parallel_calls=AUTOTUNE)
    return int(lengths.reduce(tf.constant(0), tf.maximum))


def _longest_clip(builder, key, split):
    config = builder.builder_config.name if builder.builder_config else None
    return max(1, _longest_clip_cached(str(builder.data_dir), builder.name, config, key, split))


def waveform(audio: tf.Tensor, num_samples: int) -> tf.Tensor:
    """A TFDS Audio feature's samples ``(length,)`` or ``(length, channels)`` -> float32 ``(num_samples,)`` in
    [-1, 1]: integers as 16-bit PCM (/ 32768, TFDS' Audio hands them over as int16 or int64), channels averaged,
    zero-padded or cropped at the end (`mmzoo.data.speech.waveform_features`)."""
    from mmzoo.data.speech.waveform import float_samples, waveform_features

    if audio.shape.rank == 2:
        audio = tf.reduce_mean(float_samples(audio), axis=-1)
    return waveform_features(audio, num_samples)


def _decoders(keys):
    """Parse only the features we use; decode the image ourselves, inside our parallel map."""
    wanted: dict = {}
    for key in (keys["image"], keys["text"], keys["audio"], keys["label"]):
        if key is not None:
            _set_nested(wanted, key, True)
    skip = {} if keys["image"] is None else _set_nested({}, keys["image"], tfds.decode.SkipDecoding())
    return tfds.decode.PartialDecoding(wanted, decoders=skip)


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


def _to_model_inputs(example, *, keys, size, stored, label_table, name, num_samples):
    features = {}
    if keys["image"] is not None:
        features["image"] = decode_stored_image(_get(example, keys["image"]), stored=stored, size=size)
    if keys["text"] is not None:
        features["text"] = _get(example, keys["text"])
    if keys["audio"] is not None:
        features["audio"] = waveform(_get(example, keys["audio"]), num_samples)
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
