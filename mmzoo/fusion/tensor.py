"""Tensor fusions: the full outer product (Zadeh et al., 2017) and its low-rank form (Liu et al., 2018)."""

import keras
from keras import ops

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer, check_activation, check_positive_int, keep_present

# Largest outer product TensorFusion forms: its output layer alone has `units` times as many weights.
MAX_TENSOR_FEATURES = 2**20


def _append_one(x):
    """[x; 1] along the last axis."""
    return ops.concatenate([x, ops.ones_like(x[..., :1])], axis=-1)


@keras.saving.register_keras_serializable(package="mmzoo")
class TensorFusion(FusionLayer):
    """Tensor Fusion Network: `h_m = activation(W_m x_m)` of width `projection_dim` for each modality,
    `z = flatten([h_1; 1] ⊗ [h_2; 1] ⊗ ... ⊗ [h_N; 1])` (every unimodal, bimodal, ..., N-modal term),
    `out = dropout(activation(W z + b))`.

    The outer product has `(projection_dim + 1) ** N` features, hence the small projection first; more than
    `MAX_TENSOR_FEATURES` (2**20) is refused at construction (use `LowRankFusion` for many modalities).
    Token inputs are first reduced with a mask-aware mean over steps. With `presence=[flag_1, ...]` an absent
    modality's `h_m` is 0, so `z` keeps exactly the terms of the modalities present (the appended 1s).

    Args:
        units: output width.
        projection_dim: width of each modality before the outer product (default 16).
        activation: activation of the projections and of the output layer (default "relu").
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    requires_tokens = False
    max_inputs = None
    supports_presence = True
    _own_attributes = ("dense",)

    def __init__(self, units, projection_dim=16, activation="relu", dropout=0.0, modalities=DEFAULT_MODALITIES,
                 **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        self.projection_dim = check_positive_int(projection_dim, "projection_dim")
        self.activation = check_activation(activation)
        self._features = (self.projection_dim + 1) ** len(self.modalities)
        if self._features > MAX_TENSOR_FEATURES:
            raise ValueError(
                f"TensorFusion's outer product of {len(self.modalities)} modalities would have "
                f"({self.projection_dim} + 1) ** {len(self.modalities)} = {self._features} features, more than "
                f"{MAX_TENSOR_FEATURES}; lower `projection_dim` or use LowRankFusion. "
                f"Received: projection_dim={projection_dim!r}, modalities={list(self.modalities)!r}"
            )
        # === Layers ===
        self._check_modality_attributes([f"{m}_projection" for m in self.modalities])
        for m in self.modalities:
            setattr(
                self,
                f"{m}_projection",
                keras.layers.Dense(
                    self.projection_dim, activation=self.activation, dtype=self.dtype_policy, name=f"{m}_projection"
                ),
            )
        self.dense = keras.layers.Dense(self.units, activation=self.activation, dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        batch = shapes[0][0]
        for projection, shape in zip(self._per_modality("projection"), shapes):
            projection.build((batch, shape[-1]))
        self.dense.build((batch, self._features))
        self.output_dropout.build((batch, self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None, presence=None):
        pooled = self._pooled(inputs, mask)
        hidden = [
            _append_one(keep_present(projection(x), w))
            for projection, x, w in zip(self._per_modality("projection"), pooled, self._presence(presence))
        ]
        fused, width = hidden[0], self.projection_dim + 1
        for h in hidden[1:]:  # row-major flattening of the outer product, one modality at a time
            width *= self.projection_dim + 1
            fused = ops.reshape(ops.einsum("bi,bj->bij", fused, h), (-1, width))
        return self.output_dropout(self.dense(fused), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"projection_dim": self.projection_dim, "activation": keras.activations.serialize(self.activation)}
        )
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class LowRankFusion(FusionLayer):
    """Low-rank Multimodal Fusion (Liu et al., 2018), for any number N >= 2 of modalities.

    With modality-specific factors `W_m^(r)` of shape `(dim_m + 1, units)` for `r = 1..rank`:
    `out = dropout(sum_r w_r * prod_m ([x_m; 1] W_m^(r)) + b)`,
    the tensor-fusion product computed without forming the outer product, so its size grows linearly with N.
    The factors are stored as `f"{modality}_factor"`, created in modality order before `rank_weights` and `bias`.
    Token inputs are first reduced with a mask-aware mean over steps. With `presence=[flag_1, ...]` an absent
    modality's `x_m` is 0, so it enters as `[0; 1] W_m`, as in tensor fusion.

    Args:
        units: output width.
        rank: number of rank-one factors per modality (default 4).
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    requires_tokens = False
    max_inputs = None
    supports_presence = True
    _own_attributes = ("rank_weights", "bias")

    def __init__(self, units, rank=4, dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        self.rank = check_positive_int(rank, "rank")
        self._check_modality_attributes([f"{m}_factor" for m in self.modalities])

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        # === Weights ===
        for m, shape in zip(self.modalities, shapes):
            factor = self.add_weight(
                name=f"{m}_factor", shape=(self.rank, shape[-1] + 1, self.units), initializer="glorot_normal"
            )
            setattr(self, f"{m}_factor", factor)
        self.rank_weights = self.add_weight(name="rank_weights", shape=(self.rank,), initializer="ones")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.output_dropout.build((shapes[0][0], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None, presence=None):
        pooled = [keep_present(x, w) for x, w in zip(self._pooled(inputs, mask), self._presence(presence))]
        product = None
        for x, factor in zip(pooled, self._per_modality("factor")):
            z = ops.einsum("bd,rdu->bru", _append_one(x), factor)
            product = z if product is None else product * z
        fused = ops.einsum("bru,r->bu", product, self.rank_weights) + self.bias
        return self.output_dropout(fused, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"rank": self.rank})
        return config
