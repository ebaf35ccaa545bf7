"""Attention fusions over token features: text attends to image (cross), or both ways (co-attention)."""

import keras
from keras import ops

from mmzoo.fusion.base import (
    FusionLayer,
    check_activation,
    check_optional_positive_int,
    check_positive_int,
    masked_mean,
    zero_padding,
)


def _key_attention_mask(query, key_mask):
    """(batch, q_steps, k_steps) boolean mask letting every query see only the valid keys; None if no mask."""
    if key_mask is None:
        return None
    every_query = ops.expand_dims(ops.ones_like(query[..., 0], dtype="bool"), -1)  # (batch, q_steps, 1)
    return ops.logical_and(every_query, ops.expand_dims(ops.cast(key_mask, "bool"), 1))


class _TokenAttentionFusion(FusionLayer):
    requires_tokens = True

    def __init__(self, units, num_heads=4, key_dim=None, dropout=0.0, **kwargs):
        super().__init__(units=units, dropout=dropout, **kwargs)
        self.num_heads = check_positive_int(num_heads, "num_heads")
        self.key_dim = check_optional_positive_int(key_dim, "key_dim")
        self._key_dim = self.key_dim or max(1, self.units // self.num_heads)
        # === Layers ===
        # Both modalities are projected to `units` so queries and keys share a width and the residual fits.
        self.image_projection = keras.layers.Dense(self.units, dtype=self.dtype_policy, name="image_projection")
        self.text_projection = keras.layers.Dense(self.units, dtype=self.dtype_policy, name="text_projection")

    def _attention_layers(self, prefix):
        """Sublayers of one direction (queries attend to keys, then residual + LayerNormalization).

        They are set as attributes of `self` by the caller so Keras tracks (and saves) their weights.
        """
        attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self._key_dim,
            dropout=self.dropout,
            dtype=self.dtype_policy,
            name=f"{prefix}_attention",
        )
        norm = keras.layers.LayerNormalization(epsilon=1e-6, dtype=self.dtype_policy, name=f"{prefix}_norm")
        return attention, norm

    @staticmethod
    def _build_direction(attention, norm, query_shape, key_shape):
        attention.build(query_shape, key_shape, key_shape)
        norm.build(query_shape)

    @staticmethod
    def _attend(attention, norm, query, keys, key_mask, training):
        attended = attention(query, keys, keys, attention_mask=_key_attention_mask(query, key_mask), training=training)
        return norm(query + attended)

    def _build_projections(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        self.image_projection.build(image_shape)
        self.text_projection.build(text_shape)
        return image_shape[:-1] + (self.units,), text_shape[:-1] + (self.units,)

    def _project(self, inputs, mask):
        image, text, image_mask, text_mask = self._unpack(inputs, mask)
        # Padded steps are zeroed before anything else, so their content cannot reach the output even where a
        # softmax has no valid key left (a row that is all padding).
        image = self.image_projection(zero_padding(image, image_mask, self.compute_dtype))
        text = self.text_projection(zero_padding(text, text_mask, self.compute_dtype))
        return image, text, image_mask, text_mask

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "key_dim": self.key_dim})
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class CrossAttentionFusion(_TokenAttentionFusion):
    """Text tokens attend to image tokens; the attended text tokens are mean-pooled over valid steps.

    Both inputs must be tokens `(batch, steps, dim)`. Both are projected to `units`; then
    `y = LayerNorm(t + MHA(query=t, key=value=i))`, `out = dropout(masked_mean(y, text_mask))`.
    Padded image tokens are excluded as keys; padded text tokens are excluded from the pool.
    `call(..., return_tokens=True)` returns `y` itself, `(batch, text_steps, units)`, before pooling.

    Args:
        units: model width and output width.
        num_heads: attention heads.
        key_dim: size of each head; None means `units // num_heads` (at least 1).
        dropout: dropout rate of the attention probabilities and of the output.
    """

    def __init__(self, units, num_heads=4, key_dim=None, dropout=0.0, **kwargs):
        super().__init__(units=units, num_heads=num_heads, key_dim=key_dim, dropout=dropout, **kwargs)
        self.text_to_image_attention, self.text_to_image_norm = self._attention_layers("text_to_image")

    def build(self, input_shape):
        image_shape, text_shape = self._build_projections(input_shape)
        self._build_direction(self.text_to_image_attention, self.text_to_image_norm, text_shape, image_shape)
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None, return_tokens=False):
        image, text, image_mask, text_mask = self._project(inputs, mask)
        text = self._attend(
            self.text_to_image_attention, self.text_to_image_norm, text, image, image_mask, training
        )
        if return_tokens:  # per-text-token fused features, e.g. for masked-token prediction
            return text
        pooled = masked_mean(text, text_mask, dtype=self.compute_dtype)
        return self.output_dropout(pooled, training=training)


@keras.saving.register_keras_serializable(package="mmzoo")
class CoAttentionFusion(_TokenAttentionFusion):
    """Both ways: text attends to image and image attends to text; the two pooled results are combined.

    Both inputs must be tokens `(batch, steps, dim)`. Both are projected to `units`;
    `y_t = LayerNorm(t + MHA(t -> i))`, `y_i = LayerNorm(i + MHA(i -> t))`,
    `out = dropout(activation(W [masked_mean(y_t); masked_mean(y_i)] + b))`.
    Padded tokens of either modality are excluded as keys and from the pools.
    `call(..., return_tokens=True)` returns `y_t`, `(batch, text_steps, units)`, before pooling.

    Args:
        units: model width and output width.
        num_heads: attention heads (each direction).
        key_dim: size of each head; None means `units // num_heads` (at least 1).
        activation: activation of the combining projection (default None, linear).
        dropout: dropout rate of the attention probabilities and of the output.
    """

    def __init__(self, units, num_heads=4, key_dim=None, activation=None, dropout=0.0, **kwargs):
        super().__init__(units=units, num_heads=num_heads, key_dim=key_dim, dropout=dropout, **kwargs)
        self.activation = check_activation(activation)
        self.text_to_image_attention, self.text_to_image_norm = self._attention_layers("text_to_image")
        self.image_to_text_attention, self.image_to_text_norm = self._attention_layers("image_to_text")
        self.combine = keras.layers.Dense(
            self.units, activation=self.activation, dtype=self.dtype_policy, name="combine"
        )

    def build(self, input_shape):
        image_shape, text_shape = self._build_projections(input_shape)
        self._build_direction(self.text_to_image_attention, self.text_to_image_norm, text_shape, image_shape)
        self._build_direction(self.image_to_text_attention, self.image_to_text_norm, image_shape, text_shape)
        self.combine.build((image_shape[0], 2 * self.units))
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None, return_tokens=False):
        image, text, image_mask, text_mask = self._project(inputs, mask)
        attended_text = self._attend(
            self.text_to_image_attention, self.text_to_image_norm, text, image, image_mask, training
        )
        if return_tokens:  # per-text-token fused features, e.g. for masked-token prediction
            return attended_text
        attended_image = self._attend(
            self.image_to_text_attention, self.image_to_text_norm, image, text, text_mask, training
        )
        pooled = ops.concatenate(
            [
                masked_mean(attended_text, text_mask, dtype=self.compute_dtype),
                masked_mean(attended_image, image_mask, dtype=self.compute_dtype),
            ],
            axis=-1,
        )
        return self.output_dropout(self.combine(pooled), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"activation": keras.activations.serialize(self.activation)})
        return config
