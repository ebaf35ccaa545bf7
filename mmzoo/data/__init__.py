"""Data for mmzoo: the bundled `mmzoo_shapes` TFDS builder, tf.data pipelines and loaders for your own data.

Importing this package registers the `mmzoo_shapes` builder with TFDS, so ``tfds.load("mmzoo_shapes/vqa")``
works afterwards.

    ds, info = mmzoo.data.load("mmzoo_shapes/vqa", "train", batch_size=32, with_info=True)
    model = mmzoo.build_model("small_cnn_lstm_concat", **info.model_kwargs())

Every dataset yields ``({"image": uint8 [B, H, W, 3], "text": string [B]}, label int64 [B])``, and audio as
``"audio": float32 [B, num_samples]`` (mono, in [-1, 1], zero-padded) where the data has it: a TFDS `Audio`
feature, or a column of WAV files (`mmzoo.data.wav` reads, mixes down and resamples them).
"""

from mmzoo.data.info import DataInfo, adapt_vocabulary
from mmzoo.data.objects import has_object_annotations, load_object_grid
from mmzoo.data.own_data import DataError, from_csv, from_jsonl
from mmzoo.data.pipeline import load
from mmzoo.data.shapes import MmzooShapes, ShapesConfig, shapes_config

__all__ = [
    "DataError",
    "DataInfo",
    "MmzooShapes",
    "ShapesConfig",
    "adapt_vocabulary",
    "from_csv",
    "from_jsonl",
    "has_object_annotations",
    "load",
    "load_object_grid",
    "shapes_config",
]
