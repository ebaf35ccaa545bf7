"""Attention fusions over token features: the last modality attends to the others (cross), or every modality
attends to all the others (co-attention)."""

import keras
from keras import ops

from mmzoo.fusion.base import (
    DEFAULT_MODALITIES,
    FusionLayer,
    check_activation,
    check_optional_positive_int,
    check_positive_int,
    keep_present,
    masked_mean,
    zero_padding,
)


def _present_steps(tokens, mask, weight):
    """The token mask of a modality with its presence folded in: every step of an absent example is invalid.
    None when every step of every example is valid."""
    if weight is None:
        return mask
    present = ops.cast(weight, "bool")  # (batch, 1), broadcast over steps
    steps = ops.ones_like(tokens[..., 0], dtype="bool") if mask is None else ops.cast(mask, "bool")
    return ops.logical_and(steps, present)


def _any_present(weights):
    """(batch, 1) 1.0 where at least one of the modalities whose presence `weights` holds is present; None when one
    of them is always present (no flag). Presence, not padding: an empty question with its flag on is present,
    and is computed exactly as by a model that takes no flags."""
    if not weights or any(w is None for w in weights):
        return None
    return ops.max(ops.concatenate(weights, axis=-1), axis=-1, keepdims=True)


def _key_attention_mask(query, key_mask):
    """(batch, q_steps, k_steps) boolean mask letting every query see only the valid keys; None if no mask."""
    if key_mask is None:
        return None
    every_query = ops.expand_dims(ops.ones_like(query[..., 0], dtype="bool"), -1)  # (batch, q_steps, 1)
    return ops.logical_and(every_query, ops.expand_dims(ops.cast(key_mask, "bool"), 1))


def _concatenate_steps(tokens, masks):
    """Joins token tensors `(batch, steps_k, units)` along steps with their masks; the mask is None when no
    part has one, and a part without one counts as all valid."""
    if len(tokens) == 1:
        return tokens[0], masks[0]
    joined = ops.concatenate(tokens, axis=1)
    if all(m is None for m in masks):
        return joined, None
    parts = [
        ops.ones_like(t[..., 0], dtype="bool") if m is None else ops.cast(m, "bool") for t, m in zip(tokens, masks)
    ]
    return joined, ops.concatenate(parts, axis=1)


class _TokenAttentionFusion(FusionLayer):
    """Shared by the attention families: one projection per modality, then one attention direction (with a
    residual LayerNormalization) per querying modality, whose keys are the tokens of all the other modalities.

    A direction is stored as `f"{query}_to_{other}_attention"` / `_norm` for two modalities (`text_to_image_*`
    with the defaults) and as `f"{query}_to_others_attention"` / `_norm` for more.
    """

    requires_tokens = True
    max_inputs = None
    supports_presence = True

    def __init__(self, units, num_heads=4, key_dim=None, dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.key_dim = check_optional_positive_int(key_dim, "key_dim")
        self._key_dim = self.key_dim or max(1, self.units // self.num_heads)
        self._check_modality_attributes(
            [f"{m}_projection" for m in self.modalities]
            + [f"{self._direction(m)}_{part}" for m in self._query_modalities() for part in ("attention", "norm")]
        )
        # === Layers ===
        # Every modality is projected to `units` so queries and keys share a width and the residual fits.
        for m in self.modalities:
            setattr(
                self, f"{m}_projection", keras.layers.Dense(self.units, dtype=self.dtype_policy, name=f"{m}_projection")
            )
        for m in self._query_modalities():
            prefix = self._direction(m)
            setattr(
                self,
                f"{prefix}_attention",
                keras.layers.MultiHeadAttention(
                    num_heads=self.num_heads,
                    key_dim=self._key_dim,
                    dropout=self.dropout,
                    dtype=self.dtype_policy,
                    name=f"{prefix}_attention",
                ),
            )
            setattr(
                self,
                f"{prefix}_norm",
                keras.layers.LayerNormalization(epsilon=1e-6, dtype=self.dtype_policy, name=f"{prefix}_norm"),
            )

    def _query_modalities(self):
        """The modalities whose tokens attend to the others', in the order their sublayers are created."""
        raise NotImplementedError

    def _others(self, modality):
        return [m for m in self.modalities if m != modality]

    def _direction(self, modality):
        others = self._others(modality)
        return f"{modality}_to_{others[0]}" if len(others) == 1 else f"{modality}_to_others"

    def _direction_layers(self, modality):
        prefix = self._direction(modality)
        return getattr(self, f"{prefix}_attention"), getattr(self, f"{prefix}_norm")

    def _build_attention(self, input_shape):
        """Builds projections and directions; returns the batch size of the shapes."""
        shapes = dict(zip(self.modalities, self._shapes(input_shape)))
        projected = {m: shape[:-1] + (self.units,) for m, shape in shapes.items()}
        for m, projection in zip(self.modalities, self._per_modality("projection")):
            projection.build(shapes[m])
        for m in self._query_modalities():
            steps = [projected[o][1] for o in self._others(m)]
            key_shape = (projected[m][0], None if None in steps else sum(steps), self.units)
            attention, norm = self._direction_layers(m)
            attention.build(projected[m], key_shape, key_shape)
            norm.build(projected[m])
        return projected[self.modalities[0]][0]

    def _project(self, inputs, mask, presence=None):
        """Projected tokens, masks and presence weights (`(batch, 1)` or None), as dicts keyed by modality; an
        absent modality's steps are all masked."""
        features, masks = self._unpack(inputs, mask)
        weights = self._presence(presence)
        masks = [_present_steps(x, m, w) for x, m, w in zip(features, masks, weights)]
        # Padded steps are zeroed before anything else, so their content cannot reach the output even where a
        # softmax has no valid key left (a row that is all padding).
        projected = [
            projection(zero_padding(x, m, self.compute_dtype))
            for projection, x, m in zip(self._per_modality("projection"), features, masks)
        ]
        return (dict(zip(self.modalities, projected)), dict(zip(self.modalities, masks)),
                dict(zip(self.modalities, weights)))

    def _attend(self, modality, tokens, masks, weights, training):
        """`LayerNorm(q + MHA(query=q, key=value=[tokens of the other modalities]))` for `q = tokens[modality]`;
        padded steps of the others are excluded as keys."""
        others = self._others(modality)
        keys, key_mask = _concatenate_steps([tokens[o] for o in others], [masks[o] for o in others])
        attention, norm = self._direction_layers(modality)
        query = tokens[modality]
        attended = attention(query, keys, keys, attention_mask=_key_attention_mask(query, key_mask), training=training)
        # A row whose other modalities are all absent (flags off) attends to nothing: the softmax over no keys
        # would otherwise average the masked ones. Only flags decide: a row whose keys are all padding (an empty
        # question) keeps that average, as it always has, so models without flags compute what they did.
        return norm(query + keep_present(attended, _any_present([weights[o] for o in others])))

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "key_dim": self.key_dim})
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class CrossAttentionFusion(_TokenAttentionFusion):
    """The last modality's tokens (e.g. a text) attend to the tokens of all the others (e.g. one or more images);
    the attended tokens are mean-pooled over valid steps.

    Every input must be tokens `(batch, steps, dim)`, for any number N >= 2 of modalities. Each is projected to
    `units`; with `q` the last modality's tokens and `k` the other modalities' tokens concatenated along steps,
    `y = LayerNorm(q + MHA(query=q, key=value=k))`, `out = dropout(masked_mean(y, mask of q))`.
    Padded key tokens are excluded as keys; padded query tokens are excluded from the pool.
    `call(..., return_tokens=True)` returns `y` itself, `(batch, query_steps, units)`, before pooling.

    Args:
        units: model width and output width.
        num_heads: attention heads.
        key_dim: size of each head; None means `units // num_heads` (at least 1).
        dropout: dropout rate of the attention probabilities and of the output.
        modalities: names of the inputs, in the order `inputs` lists them, queries last
            (default `("image", "text")`: the text attends to the image).
    """

    def __init__(self, units, num_heads=4, key_dim=None, dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(
            units=units, num_heads=num_heads, key_dim=key_dim, dropout=dropout, modalities=modalities, **kwargs
        )

    def _query_modalities(self):
        return self.modalities[-1:]

    def build(self, input_shape):
        batch = self._build_attention(input_shape)
        self.output_dropout.build((batch, self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None, return_tokens=False, presence=None):
        tokens, masks, weights = self._project(inputs, mask, presence)
        last = self.modalities[-1]
        attended = self._attend(last, tokens, masks, weights, training)
        if return_tokens:  # per-token fused features of the last modality, e.g. for masked-token prediction
            return attended
        pooled = masked_mean(attended, masks[last], dtype=self.compute_dtype)
        if weights[last] is not None:
            pooled = self._without_query(pooled, tokens, masks, weights[last])
        return self.output_dropout(pooled, training=training)

    def _without_query(self, pooled, tokens, masks, has_query):
        """Where the querying modality is absent (`has_query` 0.0, its flag off), the others' tokens speak for
        themselves: the LayerNorm of their masked mean stands in for the attended query."""
        last = self.modalities[-1]
        keys, key_mask = _concatenate_steps([tokens[o] for o in self._others(last)],
                                            [masks[o] for o in self._others(last)])
        _, norm = self._direction_layers(last)
        fallback = norm(masked_mean(keys, key_mask, dtype=self.compute_dtype))
        return keep_present(pooled, has_query) + keep_present(fallback, 1.0 - has_query)


@keras.saving.register_keras_serializable(package="mmzoo")
class CoAttentionFusion(_TokenAttentionFusion):
    """Every modality's tokens attend to the concatenated tokens of all the others; the pooled results are
    combined.

    Every input must be tokens `(batch, steps, dim)`, for any number N >= 2 of modalities. Each is projected to
    `units`; for each modality `y_m = LayerNorm(t_m + MHA(query=t_m, key=value=[t_o for o != m]))`, and
    `out = dropout(activation(W [masked_mean(y_N); masked_mean(y_1); ...; masked_mean(y_{N-1})] + b))`
    (the last modality first, then the others in order: `[text, image]` with the default modalities).
    Padded tokens of any modality are excluded as keys and from the pools.
    `call(..., return_tokens=True)` returns `y_N`, `(batch, steps of the last modality, units)`, before pooling.

    Args:
        units: model width and output width.
        num_heads: attention heads (each direction).
        key_dim: size of each head; None means `units // num_heads` (at least 1).
        activation: activation of the combining projection (default None, linear).
        dropout: dropout rate of the attention probabilities and of the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    _own_attributes = ("combine",)

    def __init__(self, units, num_heads=4, key_dim=None, activation=None, dropout=0.0,
                 modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(
            units=units, num_heads=num_heads, key_dim=key_dim, dropout=dropout, modalities=modalities, **kwargs
        )
        self.activation = check_activation(activation)
        self.combine = keras.layers.Dense(
            self.units, activation=self.activation, dtype=self.dtype_policy, name="combine"
        )

    def _query_modalities(self):
        return self.modalities[-1:] + self.modalities[:-1]

    def build(self, input_shape):
        batch = self._build_attention(input_shape)
        self.combine.build((batch, len(self.modalities) * self.units))
        self.output_dropout.build((batch, self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None, return_tokens=False, presence=None):
        tokens, masks, weights = self._project(inputs, mask, presence)
        queries = self._query_modalities()
        attended = self._attend(queries[0], tokens, masks, weights, training)
        if return_tokens:  # per-token fused features of the last modality, e.g. for masked-token prediction
            return attended
        pooled = [masked_mean(attended, masks[queries[0]], dtype=self.compute_dtype)]
        for m in queries[1:]:
            pooled.append(masked_mean(self._attend(m, tokens, masks, weights, training), masks[m],
                                      dtype=self.compute_dtype))
        # An absent modality's pooled direction is zeros (its mask has no valid step), so it adds nothing to
        # `combine`.
        return self.output_dropout(self.combine(ops.concatenate(pooled, axis=-1)), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"activation": keras.activations.serialize(self.activation)})
        return config
