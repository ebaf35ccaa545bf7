"""Gated multimodal unit (Arevalo et al., 2017), with a softmax gate over any number of modalities."""

import keras
from keras import ops

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer, keep_present


@keras.saving.register_keras_serializable(package="mmzoo")
class GatedFusion(FusionLayer):
    """N-way GMU: `h_m = tanh(W_m x_m)` for each modality, gate logits `l = W_z [x_1; ...; x_N]` of width
    `(N - 1) * units` (one `units`-wide logit per modality but the last, whose logit is fixed at 0),
    `z = softmax over modalities of [l_1, ..., l_{N-1}, 0]`, `out = dropout(sum_m z_m * h_m)`.

    Fixing one logit removes the softmax's redundant degree of freedom, so for two modalities this is exactly
    the original GMU: `z = sigmoid(W_z [x_1; x_2])`, `out = z * h_1 + (1 - z) * h_2`.
    Token inputs are first reduced with a mask-aware mean over steps. With `presence=[flag_1, ...]` an absent
    modality's gate is 0 and the gates of those present are renormalised to sum to 1 (its features are zeros in
    the gate's input, as in a concatenation).

    Args:
        units: output width.
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    requires_tokens = False
    max_inputs = None
    supports_presence = True
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

    def call(self, inputs, mask=None, training=None, presence=None):
        weights = self._presence(presence)
        pooled = [keep_present(x, w) for x, w in zip(self._pooled(inputs, mask), weights)]
        hidden = ops.stack([dense(x) for dense, x in zip(self._per_modality("dense"), pooled)], axis=1)
        logits = ops.reshape(
            self.gate_dense(ops.concatenate(pooled, axis=-1)), (-1, len(self.modalities) - 1, self.units)
        )
        logits = ops.concatenate([logits, ops.zeros_like(logits[:, :1])], axis=1)  # (batch, N, units)
        gates = ops.softmax(logits, axis=1)
        if any(w is not None for w in weights):
            present = ops.stack([ops.ones_like(pooled[0][:, :1]) if w is None else w for w in weights], axis=1)
            gates = gates * present  # (batch, N, units) * (batch, N, 1)
            gates = gates / ops.maximum(ops.sum(gates, axis=1, keepdims=True), ops.cast(1e-6, gates.dtype))
        return self.output_dropout(ops.sum(gates * hidden, axis=1), training=training)
