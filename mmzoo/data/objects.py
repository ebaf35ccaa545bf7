"""Object annotations as dense per-cell targets, for pretraining an image tower to see objects.

A TFDS dataset whose examples carry ``objects: Sequence({"bbox": BBoxFeature, <ClassLabel>...})`` (the bundled
`mmzoo_shapes` has shape and colour) becomes ``(image uint8 [B, H, W, 3], targets int32 [B, g * g])``: the image
is divided into a g x g grid, the same grid as an image tower's output tokens, and each cell's target is 0 when no
object's centre falls in it, else 1 + the object's class (where two centres share a cell, a coarse grid, the
larger class). With several ClassLabel features the class is their combination (shape x colour: 15 classes for
`mmzoo_shapes`).

    ds, num_classes = mmzoo.data.load_object_grid("mmzoo_shapes/vqa", "train", grid_size=8, batch_size=64)
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_datasets as tfds

from mmzoo.data import shapes as _shapes  # noqa: F401  (registers mmzoo_shapes with TFDS)
from mmzoo.data.pipeline import AUTOTUNE, decode_stored_image, finish, get_builder, prepare

__all__ = ["has_object_annotations", "load_object_grid"]


def _object_labels(builder) -> list[tuple[str, int]] | None:
    """[(feature name, number of classes)] of the ClassLabels beside a bbox in `objects`; None if there are none."""
    features = builder.info.features
    if "objects" not in features.keys() or not isinstance(features["objects"], tfds.features.Sequence):
        return None
    inner = features["objects"].feature
    if not isinstance(inner, tfds.features.FeaturesDict) or "bbox" not in inner.keys() or not isinstance(
            inner["bbox"], tfds.features.BBoxFeature):
        return None
    labels = [(key, feature.num_classes) for key, feature in inner.items() if isinstance(feature, tfds.features.ClassLabel)]
    return labels or None


def has_object_annotations(name: str, *, data_dir: str | None = None, config=None) -> bool:
    """Whether TFDS dataset `name` has `objects` with boxes and class labels (what `load_object_grid` needs)."""
    return _object_labels(get_builder(name, config=config, data_dir=data_dir, download=False)) is not None


def load_object_grid(
    name: str,
    split: str = "train",
    *,
    grid_size: int,
    batch_size: int = 64,
    image_size: int | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    data_dir: str | None = None,
    config=None,
    download: bool = True,
):
    """``(dataset, num_classes)``: batches of ``(image, per-cell targets)`` and the number of target classes
    (object classes + 1 for "no object centre here").

    Args:
        name: a TFDS name whose examples have ``objects`` with a ``bbox`` and ClassLabel features.
        split: a TFDS split.
        grid_size: side `g` of the target grid; match the image tower's token grid (8 for `coord_cnn` at 64 px).
        batch_size, image_size, shuffle, seed, data_dir, config, download: as in `mmzoo.data.load`.
    """
    if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"`grid_size` must be a positive integer. Received: grid_size={grid_size!r}")
    builder = get_builder(name, config=config, data_dir=data_dir, download=False)
    labels = _object_labels(builder)
    if labels is None:
        raise ValueError(
            f"{name!r} has no object annotations: load_object_grid needs an `objects` Sequence feature with a `bbox` "
            f"BBoxFeature and at least one ClassLabel. Received: features {sorted(builder.info.features.keys())}"
        )
    if download:
        prepare(builder)
    image_feature = builder.info.features["image"]
    stored = image_feature.shape[:2]
    size = (int(image_size), int(image_size)) if image_size else (int(stored[0]), int(stored[1]))
    if None in size:
        raise ValueError(f"The images of {name!r} have no fixed size (shape {stored}): pass `image_size`.")
    num_classes = 1
    for _, n in labels:
        num_classes *= n
    if shuffle is None:
        shuffle = split.startswith("train")
    g = grid_size

    def to_targets(example):
        image = decode_stored_image(example["image"], stored=stored, size=size)
        objects = example["objects"]
        box = objects["bbox"]  # (n, 4): ymin, xmin, ymax, xmax in [0, 1]
        row = tf.clip_by_value(tf.cast(tf.floor((box[:, 0] + box[:, 2]) / 2 * g), tf.int32), 0, g - 1)
        col = tf.clip_by_value(tf.cast(tf.floor((box[:, 1] + box[:, 3]) / 2 * g), tf.int32), 0, g - 1)
        cls = tf.zeros_like(row)
        for key, n in labels:  # mixed radix: the combination of all class labels
            cls = cls * n + tf.cast(objects[key], tf.int32)
        targets = tf.tensor_scatter_nd_max(tf.zeros([g * g], tf.int32), (row * g + col)[:, None], cls + 1)
        return image, targets

    decoders = {"image": tfds.decode.SkipDecoding()}
    ds = builder.as_dataset(split=split, shuffle_files=shuffle, decoders=decoders,
                            read_config=tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=False))
    ds = ds.map(to_targets, num_parallel_calls=AUTOTUNE)
    num_examples = int(builder.info.splits[split].num_examples)
    ds = finish(ds, batch_size=batch_size, shuffle=shuffle, seed=seed, num_examples=num_examples, image_size=size)
    return ds, num_classes + 1
