"""Shared pieces of the fusion layers: argument checks, input/mask unpacking, a masked mean.

A fusion layer is built for a list of named modalities (`modalities`, default `("image", "text")`) and takes
`inputs = [features_1, ..., features_N]`, one entry per modality in that order, each either pooled
`(batch, dim)` or tokens `(batch, steps, dim)`, and an optional `mask = [mask_1, ..., mask_N]` (each None, meaning
every step is valid, or a boolean `(batch, steps)` tensor; pooled inputs carry no mask). It returns
`(batch, units)`.

Sublayers and weights that belong to one modality are stored under attributes named after it
(`f"{modality}_dense"`, ...), because Keras' `.keras` format addresses weights by attribute path: with the
default modalities the paths are `image_*` / `text_*`, whatever the number of modalities a family supports.
"""

import numbers
import re

import keras
from keras import ops

from mmzoo.fusion.presence import check_presence, presence_weights

DEFAULT_MODALITIES = ("image", "text")

_MODALITY_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


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


def check_modalities(value, layer_name, max_inputs=None):
    """Checks `value` is a list/tuple of >= 2 distinct lowercase identifiers (at most `max_inputs`); returns a
    tuple. They become parts of attribute and layer names, hence the restricted spelling."""
    if (
        isinstance(value, str)
        or not isinstance(value, (list, tuple))
        or len(value) < 2
        or not all(isinstance(m, str) and _MODALITY_NAME.match(m) for m in value)
        or len(set(value)) != len(value)
    ):
        raise ValueError(
            f"{layer_name} expects `modalities` to be a list of two or more distinct lowercase names (letters, "
            f"digits and underscores, starting with a letter), e.g. ['image', 'text']. Received: modalities={value!r}"
        )
    if max_inputs is not None and len(value) > max_inputs:
        raise ValueError(
            f"{layer_name} takes exactly {max_inputs} inputs (the family is only defined for {max_inputs}); use a "
            f"fusion that accepts any number for {len(value)} inputs. Received: modalities={list(value)!r}"
        )
    return tuple(value)


# === Inputs, shapes, masks ===


def _is_shape(shape):
    return isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape)


def _expected_inputs(layer_name, modalities, max_inputs):
    """The part of an error message that says what a layer takes: one entry per modality, in order."""
    only = f" ({layer_name} takes exactly {max_inputs} inputs)" if max_inputs is not None else ""
    return (
        f"{layer_name} was built for modalities {list(modalities)!r} and expects `inputs` to be a list or tuple of "
        f"{len(modalities)} tensors, one per modality in that order{only}"
    )


def unpack_shapes(input_shape, layer_name, modalities=DEFAULT_MODALITIES, requires_tokens=False, max_inputs=None):
    """Checks `input_shape` is one rank-2/3 shape with a known feature size per modality; returns a tuple of
    tuples."""
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != len(modalities)
        or not all(_is_shape(s) for s in input_shape)
    ):
        raise ValueError(
            f"{_expected_inputs(layer_name, modalities, max_inputs)}. Received: inputs with shape {input_shape}"
        )
    shapes = tuple(tuple(s) for s in input_shape)
    for name, shape in zip(modalities, shapes):
        if len(shape) not in (2, 3):
            raise ValueError(
                f"{layer_name} expects each input to be pooled (batch, dim) or tokens (batch, steps, dim). "
                f"Received: {name}_features with shape {shape}"
            )
        if requires_tokens and len(shape) != 3:
            raise ValueError(
                f"{layer_name} attends over steps, so it requires token features of shape (batch, steps, dim) "
                f"for every modality; keep the tokens (e.g. `return_sequences=True`, no global pooling) or "
                f"use a fusion that accepts pooled vectors. Received: {name}_features with shape {shape}"
            )
        if shape[-1] is None:
            raise ValueError(
                f"{layer_name} needs the last (feature) dimension of each input to be known. "
                f"Received: {name}_features with shape {shape}"
            )
    return shapes


def unpack_inputs(inputs, layer_name, modalities=DEFAULT_MODALITIES, max_inputs=None):
    """Checks `inputs` is a list/tuple with one tensor per modality; returns it as a list."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != len(modalities):
        received = f"a {type(inputs).__name__}" if not isinstance(inputs, (list, tuple)) else f"{len(inputs)} items"
        raise ValueError(f"{_expected_inputs(layer_name, modalities, max_inputs)}. Received: inputs={received}")
    return list(inputs)


def unpack_mask(mask, layer_name, modalities=DEFAULT_MODALITIES):
    """`mask` is None or one entry per modality; returns a list (entries may be None)."""
    if mask is None:
        return [None] * len(modalities)
    if not isinstance(mask, (list, tuple)) or len(mask) != len(modalities):
        raise ValueError(
            f"{layer_name} was built for modalities {list(modalities)!r} and expects `mask` to be None or a list or "
            f"tuple of {len(modalities)} masks, one per modality (each None or a boolean (batch, steps) tensor). "
            f"Received: mask={mask!r}"
        )
    return list(mask)


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


def keep_present(x, weight):
    """`x` (batch, ...) zeroed in the rows whose modality is absent (`weight` (batch, 1) of 0/1; None: all present)."""
    if weight is None:
        return x
    return x * ops.reshape(weight, (-1,) + (1,) * (len(x.shape) - 1))


# === Base layer ===


class FusionLayer(keras.layers.Layer):
    """Base class: holds `units`/`dropout`/`modalities`, input checks, pooling of token inputs, output shape.

    Class attributes a model builder can read before building anything:
    `requires_tokens` (every input must be tokens `(batch, steps, dim)`) and `max_inputs` (None: any number
    N >= 2 of modalities; an integer: the family is only defined for that many).

    Subclasses create their sublayers in `__init__` (per-modality ones under attributes named after the
    modality, checked with `_check_modality_attributes`), build them in `build(input_shape)` and compute
    `(batch, units)` in `call`. Not registered itself: only concrete fusions are.
    """

    requires_tokens = False
    max_inputs = None
    # Whether `call` takes `presence=[flag_1, ..., flag_N]` (mmzoo/fusion/presence.py): an absent modality then
    # contributes nothing to the output.
    supports_presence = False
    # Attributes a subclass sets besides its per-modality ones; a modality name must not produce one of them.
    _own_attributes = ()

    def __init__(self, units, dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.dropout = check_rate(dropout, "dropout")
        self.modalities = check_modalities(modalities, type(self).__name__, self.max_inputs)
        self.supports_masking = True
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="output_dropout")

    @classmethod
    def recorded_options(cls, options):
        """`options` as a model's config records them: with today's value of every default that has changed
        between versions written out, so that `saved_options` can tell a config saved before the change (None:
        no options)."""
        return options

    @classmethod
    def saved_options(cls, options):
        """The options a saved model's config gives this family, with the defaults of the version that saved it
        filled in where a default has since changed (so it loads as it was trained). None: no options."""
        return options

    def _check_modality_attributes(self, attributes):
        """Checks that the attribute names derived from the modality names are distinct and free, so that no
        modality name can shadow another sublayer, weight or method of the layer."""
        seen = set()
        for attribute in attributes:
            if (
                attribute in seen
                or attribute in self._own_attributes
                or hasattr(type(self), attribute)
                or attribute in self.__dict__
            ):
                raise ValueError(
                    f"{type(self).__name__} stores per-modality sublayers under names made from the modality names, "
                    f"and `{attribute}` would collide with another attribute of the layer; rename that modality. "
                    f"Received: modalities={list(self.modalities)!r}"
                )
            seen.add(attribute)

    def _per_modality(self, suffix):
        """The sublayers (or weights) stored as `f"{modality}_{suffix}"`, in modality order."""
        return [getattr(self, f"{m}_{suffix}") for m in self.modalities]

    def _shapes(self, input_shape):
        return unpack_shapes(
            input_shape, type(self).__name__, self.modalities, self.requires_tokens, self.max_inputs
        )

    def _unpack(self, inputs, mask):
        """Returns (features, masks), lists in modality order; masks are None for pooled (rank 2) inputs."""
        name = type(self).__name__
        features = unpack_inputs(inputs, name, self.modalities, self.max_inputs)
        self._shapes([tuple(x.shape) for x in features])
        masks = unpack_mask(mask, name, self.modalities)
        return features, [token_mask(x, m) for x, m in zip(features, masks)]

    def _pool(self, x, mask):
        """Pooled features: `x` itself if it is (batch, dim), else its masked mean over steps."""
        if len(x.shape) == 2:
            return x
        return masked_mean(x, mask, dtype=self.compute_dtype)

    def _pooled(self, inputs, mask):
        """Every input pooled to (batch, dim), in modality order."""
        features, masks = self._unpack(inputs, mask)
        return [self._pool(x, m) for x, m in zip(features, masks)]

    def _presence(self, presence):
        """`presence` as one `(batch, 1)` float per modality (1.0 present, 0.0 absent; None: always present)."""
        return presence_weights(check_presence(presence, type(self).__name__, self.modalities), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        shapes = self._shapes(input_shape)
        return (shapes[0][0], self.units)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "dropout": self.dropout, "modalities": list(self.modalities)})
        return config
