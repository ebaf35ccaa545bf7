"""Image towers: raw pixels (0..255) in, a pooled vector or a sequence of spatial tokens out.

Every tower is a `keras.Model` built by a function registered with `@register_tower(name, kind="image")`.
Preprocessing is part of the tower, so a model built from it takes the same raw pixels in training and in a
SavedModel export.
"""

import os
import re

import keras
from keras import ops

from mmzoo.towers.normalization import fuse_batch_normalization
from mmzoo.towers.preprocessing import ResNetPreprocessing
from mmzoo.towers.registry import InputKind, get_tower, register_input_kind, register_tower

OUTPUT_MODES = ("pooled", "tokens")


def _check_common(name, image_size, output, min_size):
    if output not in OUTPUT_MODES:
        raise ValueError(
            f"`output` must be one of {', '.join(OUTPUT_MODES)}. Received: output={output!r}"
        )
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < min_size:
        raise ValueError(
            f"`image_size` must be an integer >= {min_size} for the '{name}' image tower. "
            f"Received: image_size={image_size!r}"
        )


def _check_weights(weights):
    if weights is None or weights == "imagenet":
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`image_weights` must be None, 'imagenet' or the path to a weights file. "
            f"Received: image_weights={weights!r}"
        )
    if not os.path.isfile(weights):
        raise ValueError(
            "`image_weights` is neither None nor 'imagenet', so it must be an existing weights file "
            f"(.h5 or .weights.h5). No such file. Received: image_weights={os.fspath(weights)!r}"
        )


def _freeze(model, stage_of, num_stages, trainable_stages):
    """Train only the last `trainable_stages` stages; None trains everything, 0 nothing."""
    if trainable_stages is None:
        return
    if (
        not isinstance(trainable_stages, int)
        or isinstance(trainable_stages, bool)
        or not 0 <= trainable_stages <= num_stages
    ):
        raise ValueError(
            f"`trainable_stages` must be None (train all) or an integer in [0, {num_stages}]. "
            f"Received: trainable_stages={trainable_stages!r}"
        )
    first_trainable = num_stages - trainable_stages
    for layer in model.layers:
        if layer.weights:
            layer.trainable = stage_of(layer.name) >= first_trainable


def _head(features, output, name):
    """Turn a (batch, h, w, channels) feature map into the requested output mode."""
    if output == "pooled":
        return keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    channels = features.shape[-1]
    return keras.layers.Reshape((-1, channels), name=f"{name}_tokens")(features)


def _resnet50_stage(layer_name):
    # keras.applications names layers conv1_*, conv2_block1_*, ..., conv5_block3_*.
    if layer_name.startswith("conv") and layer_name[4:5].isdigit():
        return int(layer_name[4]) - 1
    return 0


@register_tower("resnet50", kind="image")
def resnet50(*, image_size=224, output="pooled", weights=None, trainable_stages=None, name="resnet50"):
    """ResNet50 from keras.applications with caffe-style preprocessing inside.

    `weights`: None (random), "imagenet" (downloaded by Keras) or a path to a weights file of the
    `include_top=False` network. `trainable_stages`: train only the last N of the 5 stages (conv1..conv5).
    `output="tokens"` returns the final (image_size/32)^2 grid flattened, e.g. 7x7=49 tokens at 224 px.
    """
    _check_common("resnet50", image_size, output, min_size=32)
    _check_weights(weights)
    backbone = keras.applications.ResNet50(
        include_top=False,
        weights=None if weights is None else os.fspath(weights),
        input_shape=(image_size, image_size, 3),
    )
    # Same layers and weights, with each BatchNormalization as one fused op: faster training on CPU
    # (docs/benchmarks.md).
    backbone = fuse_batch_normalization(backbone)
    _freeze(backbone, _resnet50_stage, 5, trainable_stages)
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    x = ResNetPreprocessing(name="resnet_preprocessing")(pixels)
    x = backbone(x)
    return keras.Model(pixels, _head(x, output, name), name=name)


def _mobilenet_v3_stage(layer_name):
    # Stem and block 0 | blocks 1-2 | blocks 3-7 | blocks 8-10 and the last 1x1 conv, split where the
    # resolution halves. keras.applications names blocks expanded_conv_*, expanded_conv_1_*, ...
    if layer_name.startswith("conv_1"):
        return 3
    match = re.match(r"expanded_conv_(\d+)_", layer_name)
    if match is None:
        return 0
    block = int(match.group(1))
    return 1 if block <= 2 else 2 if block <= 7 else 3


@register_tower("mobilenet_v3_small", kind="image")
def mobilenet_v3_small(
    *, image_size=224, output="pooled", weights=None, trainable_stages=None, name="mobilenet_v3_small"
):
    """MobileNetV3-Small from keras.applications (its own rescaling layer inside); 4 stages."""
    _check_common("mobilenet_v3_small", image_size, output, min_size=32)
    _check_weights(weights)
    backbone = keras.applications.MobileNetV3Small(
        include_top=False,
        weights=None if weights is None else os.fspath(weights),
        input_shape=(image_size, image_size, 3),
        include_preprocessing=True,
    )
    _freeze(backbone, _mobilenet_v3_stage, 4, trainable_stages)
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    return keras.Model(pixels, _head(backbone(pixels), output, name), name=name)


@keras.saving.register_keras_serializable(package="mmzoo")
class AddCoordinates(keras.layers.Layer):
    """Append two channels holding each pixel's column and row, scaled to [-1, 1] (CoordConv, Liu et al. 2018).

    (batch, h, w, c) -> (batch, h, w, c + 2). Convolutions and pooled features can then tell where things are,
    which translation-equivariant convolutions alone cannot.
    """

    def call(self, inputs):
        shape = ops.shape(inputs)
        height, width = shape[1], shape[2]
        rows = ops.linspace(-1.0, 1.0, height)
        cols = ops.linspace(-1.0, 1.0, width)
        grid_rows = ops.broadcast_to(ops.reshape(rows, (1, -1, 1, 1)), (shape[0], height, width, 1))
        grid_cols = ops.broadcast_to(ops.reshape(cols, (1, 1, -1, 1)), (shape[0], height, width, 1))
        coords = ops.cast(ops.concatenate([grid_cols, grid_rows], axis=-1), inputs.dtype)
        return ops.concatenate([inputs, coords], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (None if input_shape[-1] is None else input_shape[-1] + 2,)


def _conv_net(tower, name, image_size, output, weights, trainable_stages, widths, coordinates, pool_last=True):
    min_size = 2 ** (len(widths) if pool_last else len(widths) - 1)
    _check_common(tower, image_size, output, min_size=min_size)
    if weights == "imagenet":
        raise ValueError(
            f"The '{tower}' image tower has no ImageNet weights; pass None or a weights file. "
            "Received: image_weights='imagenet'"
        )
    _check_weights(weights)
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(pixels)
    if coordinates:
        x = AddCoordinates(name="input_coordinates")(x)
    for stage, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"stage{stage}_conv")(x)
        # momentum 0.9, not Keras' 0.99: runs here are a few hundred steps, and slow moving averages made
        # inference-mode accuracy lag far behind training accuracy.
        x = keras.layers.BatchNormalization(momentum=0.9, synchronized=True, name=f"stage{stage}_bn")(x)
        x = keras.layers.ReLU(name=f"stage{stage}_relu")(x)
        if pool_last or stage < len(widths) - 1:
            x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    if coordinates:
        x = AddCoordinates(name="output_coordinates")(x)
    backbone = keras.Model(pixels, x, name=f"{name}_backbone")
    if weights is not None:
        backbone.load_weights(os.fspath(weights))
    _freeze(backbone, lambda layer_name: int(layer_name[5]) if layer_name.startswith("stage") else 0, len(widths), trainable_stages)
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    return keras.Model(inputs, _head(backbone(inputs), output, name), name=name)


@register_tower("small_cnn", kind="image")
def small_cnn(
    *, image_size=64, output="pooled", weights=None, trainable_stages=None, widths=(32, 64, 128), name="small_cnn"
):
    """A small, fast conv net for CPU work: one conv-BN-ReLU-pool stage per width.

    `weights`: None or a `.weights.h5` file saved from a small_cnn of the same shape (no ImageNet weights).
    """
    return _conv_net("small_cnn", name, image_size, output, weights, trainable_stages, widths, coordinates=False)


@register_tower("coord_cnn", kind="image")
def coord_cnn(
    *, image_size=64, output="pooled", weights=None, trainable_stages=None, widths=(32, 64, 128), name="coord_cnn"
):
    """small_cnn that knows where things are: x/y coordinate channels on its input and on its output tokens.

    Each output token (one per cell of the final grid, 8x8 at 64 px) ends with its cell's column and row in
    [-1, 1], so a fusion can answer "left of" / "above" questions. `weights`: None or a `.weights.h5` file
    saved from a coord_cnn of the same shape.
    """
    return _conv_net("coord_cnn", name, image_size, output, weights, trainable_stages, widths, coordinates=True)


def build_image_tower(tower, **kwargs):
    """Build the image tower registered under `tower` (see `mmzoo.towers.list_towers("image")`)."""
    return get_tower(tower, kind="image", argument="image_tower").function(**kwargs)


class ImageInput(InputKind):
    """Pixels `(image_size, image_size, 3)`, 0..255: no input-pipeline step; the tower holds its preprocessing."""

    name = "image"
    defaults = {"image_size": 224, "image_weights": None, "trainable_stages": None}
    raw_dtype = "float32"

    def raw_shape(self, options):
        return (options["image_size"], options["image_size"], 3)

    def check_options(self, name, options):
        size = options.get("image_size", self.defaults["image_size"])
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(
                f"`image_size` of input {name!r} must be a positive integer. Received: image_size={size!r}"
            )
        return dict(options)

    def prepare(self, modality, value):
        """Pixels of another size than this input's are resized with the function the data pipelines and the
        export use (`mmzoo.images.resize_image`), so an input whose size differs from the data's still sees
        what the export would show it. Pixels of the right size pass unchanged."""
        size = modality.image_size
        if tuple(value.shape[-3:-1]) == (size, size):
            return value
        from mmzoo.images import resize_image

        return resize_image(value, size)

    def encode(self, modality, x, *, output, dropout):
        tower = build_image_tower(
            modality.tower,
            image_size=modality.image_size,
            output=output,
            weights=modality.options["image_weights"],
            trainable_stages=modality.options["trainable_stages"],
            name=self.layer_prefix(modality),
        )
        return tower(x)

    def placeholder(self, modality, batch_size):
        """Black images of the model's size: pixels of that size pass `prepare` unresized."""
        import tensorflow as tf

        return tf.zeros([batch_size, *modality.shape], dtype=modality.dtype)


register_input_kind(ImageInput())
