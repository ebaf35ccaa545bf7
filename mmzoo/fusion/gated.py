"""Gated multimodal unit (Arevalo et al., 2017), with a softmax gate over any number of modalities."""

import keras
from keras import ops

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer


@keras.saving.register_keras_serializable(package="mmzoo")
class GatedFusion(FusionLayer):
    """N-way GMU: `h_m = tanh(W_m x_m)` for each modality, gate logits `l = W_z [x_1; ...; x_N]` of width
    `(N - 1) * units` (one `units`-wide logit per modality but the last, whose logit is fixed at 0),
    `z = softmax over modalities of [l_1, ..., l_{N-1}, 0]`, `out = dropout(sum_m z_m * h_m)`.

    Fixing one logit removes the softmax's redundant degree of freedom, so for two modalities this is exactly
    the original GMU: `z = sigmoid(W_z [x_1; x_2])`, `out = z * h_1 + (1 - z) * h_2`.
    Token inputs are first reduced with a mask-aware mean over steps.

    Args:
        units: output width.
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    requires_tokens = False
    max_inputs = None
    _own_attributes = ("gate_dense",)

    def __init__(self, units, dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        # === Layers ===
        self._check_modality_attributes([f"{m}_dense" for m in self.modalities])
        for m in self.modalities:
            setattr(
                self,
                f"{m}_dense",
                keras.layers.Dense(self.units, activation="tanh", dtype=self.dtype_policy, name=f"{m}_dense"),
            )
        # Linear: the softmax over modalities (a sigmoid for two) is applied in `call`.
        self.gate_dense = keras.layers.Dense(
            (len(self.modalities) - 1) * self.units, dtype=self.dtype_policy, name="gate_dense"
        )

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        batch = shapes[0][0]
        for dense, shape in zip(self._per_modality("dense"), shapes):
            dense.build((batch, shape[-1]))
        self.gate_dense.build((batch, sum(shape[-1] for shape in shapes)))
        self.output_dropout.build((batch, self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        pooled = self._pooled(inputs, mask)
        hidden = ops.stack([dense(x) for dense, x in zip(self._per_modality("dense"), pooled)], axis=1)
        logits = ops.reshape(
            self.gate_dense(ops.concatenate(pooled, axis=-1)), (-1, len(self.modalities) - 1, self.units)
        )
        logits = ops.concatenate([logits, ops.zeros_like(logits[:, :1])], axis=1)  # (batch, N, units)
        gates = ops.softmax(logits, axis=1)
        return self.output_dropout(ops.sum(gates * hidden, axis=1), training=training)
