"""Tensor fusions: the full outer product (Zadeh et al., 2017) and its low-rank form (Liu et al., 2018)."""

import keras
from keras import ops

from mmzoo.fusion.base import FusionLayer, check_activation, check_positive_int


def _append_one(x):
    """[x; 1] along the last axis."""
    return ops.concatenate([x, ops.ones_like(x[..., :1])], axis=-1)


@keras.saving.register_keras_serializable(package="mmzoo")
class TensorFusion(FusionLayer):
    """Tensor Fusion Network: `h_m = activation(W_m x_m)` of width `projection_dim` for each modality,
    `z = flatten([h_i; 1] ⊗ [h_t; 1])` (all unimodal and bimodal terms), `out = dropout(activation(W z + b))`.

    The outer product has `(projection_dim + 1) ** 2` features, hence the small projection first.
    Token inputs are first reduced with a mask-aware mean over steps.

    Args:
        units: output width.
        projection_dim: width of each modality before the outer product (default 16).
        activation: activation of the projections and of the output layer (default "relu").
        dropout: dropout rate on the output.
    """

    requires_tokens = False

    def __init__(self, units, projection_dim=16, activation="relu", dropout=0.0, **kwargs):
        super().__init__(units=units, dropout=dropout, **kwargs)
        self.projection_dim = check_positive_int(projection_dim, "projection_dim")
        self.activation = check_activation(activation)
        # === Layers ===
        self.image_projection = keras.layers.Dense(
            self.projection_dim, activation=self.activation, dtype=self.dtype_policy, name="image_projection"
        )
        self.text_projection = keras.layers.Dense(
            self.projection_dim, activation=self.activation, dtype=self.dtype_policy, name="text_projection"
        )
        self.dense = keras.layers.Dense(self.units, activation=self.activation, dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        batch = image_shape[0]
        self.image_projection.build((batch, image_shape[-1]))
        self.text_projection.build((batch, text_shape[-1]))
        self.dense.build((batch, (self.projection_dim + 1) ** 2))
        self.output_dropout.build((batch, self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        image, text, image_mask, text_mask = self._unpack(inputs, mask)
        h_image = _append_one(self.image_projection(self._pool(image, image_mask)))
        h_text = _append_one(self.text_projection(self._pool(text, text_mask)))
        outer = ops.einsum("bi,bj->bij", h_image, h_text)
        fused = ops.reshape(outer, (-1, (self.projection_dim + 1) ** 2))
        return self.output_dropout(self.dense(fused), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"projection_dim": self.projection_dim, "activation": keras.activations.serialize(self.activation)}
        )
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class LowRankFusion(FusionLayer):
    """Low-rank Multimodal Fusion (Liu et al., 2018).

    With modality-specific factors `W_m^(r)` of shape `(dim_m + 1, units)` for `r = 1..rank`:
    `out = dropout(sum_r w_r * (([x_i; 1] W_i^(r)) * ([x_t; 1] W_t^(r))) + b)`,
    the tensor-fusion product computed without forming the outer product.
    Token inputs are first reduced with a mask-aware mean over steps.

    Args:
        units: output width.
        rank: number of rank-one factors per modality (default 4).
        dropout: dropout rate on the output.
    """

    requires_tokens = False

    def __init__(self, units, rank=4, dropout=0.0, **kwargs):
        super().__init__(units=units, dropout=dropout, **kwargs)
        self.rank = check_positive_int(rank, "rank")

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        # === Weights ===
        self.image_factor = self.add_weight(
            name="image_factor", shape=(self.rank, image_shape[-1] + 1, self.units), initializer="glorot_normal"
        )
        self.text_factor = self.add_weight(
            name="text_factor", shape=(self.rank, text_shape[-1] + 1, self.units), initializer="glorot_normal"
        )
        self.rank_weights = self.add_weight(name="rank_weights", shape=(self.rank,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        image, text, image_mask, text_mask = self._unpack(inputs, mask)
        z_image = ops.einsum("bd,rdu->bru", _append_one(self._pool(image, image_mask)), self.image_factor)
        z_text = ops.einsum("bd,rdu->bru", _append_one(self._pool(text, text_mask)), self.text_factor)
        fused = ops.einsum("bru,r->bu", z_image * z_text, self.rank_weights) + self.bias
        return self.output_dropout(fused, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"rank": self.rank})
        return config
