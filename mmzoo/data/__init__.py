"""Data for mmzoo: the bundled `mmzoo_shapes` TFDS builder, tf.data pipelines and loaders for your own data.

Importing this package registers the `mmzoo_shapes` builder with TFDS, so ``tfds.load("mmzoo_shapes/vqa")``
works afterwards.
"""

from mmzoo.data.shapes import MmzooShapes, ShapesConfig, shapes_config

__all__ = ["MmzooShapes", "ShapesConfig", "shapes_config"]
