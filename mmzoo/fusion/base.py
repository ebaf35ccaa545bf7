"""Shared pieces of the fusion layers: argument checks, input/mask unpacking, a masked mean.

A fusion layer takes `inputs = [image_features, text_features]`, each either pooled `(batch, dim)` or tokens
`(batch, steps, dim)`, and an optional `mask = [image_mask, text_mask]` (each None or a boolean
`(batch, steps)` tensor). It returns `(batch, units)`.
"""

import numbers

import keras
from keras import ops

MODALITIES = ("image_features", "text_features")


# === Argument checks ===


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_optional_positive_int(value, name):
    return None if value is None else check_positive_int(value, name)


def check_rate(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_activation(value, name="activation"):
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"`{name}` must be the name of a Keras activation, a callable or None. Received: {name}={value!r}"
        ) from e


# === Inputs, shapes, masks ===


def _is_shape(shape):
    return isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape)


def unpack_shapes(input_shape, layer_name, requires_tokens=False):
    """Checks `input_shape` is a pair of rank-2/3 shapes with a known feature size; returns two tuples."""
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 2
        or not all(_is_shape(s) for s in input_shape)
    ):
        raise ValueError(
            f"{layer_name} expects `inputs` to be a list or tuple of two tensors "
            f"[image_features, text_features]. Received: inputs with shape {input_shape}"
        )
    shapes = tuple(tuple(s) for s in input_shape)
    for name, shape in zip(MODALITIES, shapes):
        if len(shape) not in (2, 3):
            raise ValueError(
                f"{layer_name} expects each input to be pooled (batch, dim) or tokens (batch, steps, dim). "
                f"Received: {name} with shape {shape}"
            )
        if requires_tokens and len(shape) != 3:
            raise ValueError(
                f"{layer_name} attends over steps, so it requires token features of shape (batch, steps, dim) "
                f"for both modalities; keep the tokens (e.g. `return_sequences=True`, no global pooling) or "
                f"use a fusion that accepts pooled vectors. Received: {name} with shape {shape}"
            )
        if shape[-1] is None:
            raise ValueError(
                f"{layer_name} needs the last (feature) dimension of each input to be known. "
                f"Received: {name} with shape {shape}"
            )
    return shapes


def unpack_inputs(inputs, layer_name):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        received = f"a {type(inputs).__name__}" if not isinstance(inputs, (list, tuple)) else f"{len(inputs)} items"
        raise ValueError(
            f"{layer_name} expects `inputs` to be a list or tuple of two tensors "
            f"[image_features, text_features]. Received: inputs={received}"
        )
    return inputs[0], inputs[1]


def unpack_mask(mask, layer_name):
    """`mask` is None or a pair [image_mask, text_mask]; returns a pair (entries may be None)."""
    if mask is None:
        return None, None
    if not isinstance(mask, (list, tuple)) or len(mask) != 2:
        raise ValueError(
            f"{layer_name} expects `mask` to be None or a list or tuple of two masks "
            f"[image_mask, text_mask] (each None or a boolean (batch, steps) tensor). Received: mask={mask!r}"
        )
    return mask[0], mask[1]


def token_mask(x, mask):
    """The mask that applies to `x`: None for pooled features (rank 2), else `mask` (may be None)."""
    if mask is None or len(x.shape) != 3:
        return None
    return mask


def zero_padding(x, mask, dtype):
    """Sets the features at padded steps of `x` (batch, steps, dim) to zero, so they cannot leak anywhere."""
    if mask is None:
        return x
    return x * ops.expand_dims(ops.cast(mask, dtype), -1)


def masked_mean(x, mask=None, dtype=None):
    """Mean of `x` (batch, steps, dim) over steps, counting only steps where `mask` (batch, steps) is True.

    A row whose steps are all padding gives zeros. `dtype` is the compute dtype the mask is cast to
    (defaults to `x.dtype`).
    """
    if mask is None:
        return ops.mean(x, axis=1)
    weights = ops.expand_dims(ops.cast(mask, dtype or x.dtype), -1)  # (batch, steps, 1)
    total = ops.sum(x * weights, axis=1)
    count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, weights.dtype))
    return total / count


# === Base layer ===


class FusionLayer(keras.layers.Layer):
    """Base class: holds `units`/`dropout`, input checks, pooling of token inputs, output shape.

    Subclasses set `requires_tokens`, create their sublayers in `__init__`, build them in `build(input_shape)`
    and compute `(batch, units)` in `call`. Not registered itself: only concrete fusions are.
    """

    requires_tokens = False

    def __init__(self, units, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.dropout = check_rate(dropout, "dropout")
        self.supports_masking = True
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="output_dropout")

    def _shapes(self, input_shape):
        return unpack_shapes(input_shape, type(self).__name__, self.requires_tokens)

    def _unpack(self, inputs, mask):
        """Returns (image, text, image_mask, text_mask); masks are dropped for pooled (rank 2) inputs."""
        name = type(self).__name__
        image, text = unpack_inputs(inputs, name)
        unpack_shapes([tuple(image.shape), tuple(text.shape)], name, self.requires_tokens)
        image_mask, text_mask = unpack_mask(mask, name)
        return image, text, token_mask(image, image_mask), token_mask(text, text_mask)

    def _pool(self, x, mask):
        """Pooled features: `x` itself if it is (batch, dim), else its masked mean over steps."""
        if len(x.shape) == 2:
            return x
        return masked_mean(x, mask, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        image_shape, _ = self._shapes(input_shape)
        return (image_shape[0], self.units)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "dropout": self.dropout})
        return config
