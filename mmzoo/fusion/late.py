"""Late fusion: each modality decides on its own, and the decisions are averaged over the modalities present."""

import keras
from keras import ops

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer

WEIGHTINGS = ("mean", "learned")


@keras.saving.register_keras_serializable(package="mmzoo")
class LateFusion(FusionLayer):
    """A head per modality, `z_m = W2_m relu(W1_m x_m + b1_m) + b2_m` (width `units`), combined by a weighted mean
    over the modalities present: `out = dropout(sum_m a_m z_m)`, for any number N >= 2 of modalities.

    `a` is the softmax over the modalities present of one weight per modality: fixed at 0 for
    `weighting="mean"` (every modality present counts the same), trained for `weighting="learned"`. An absent
    modality (`presence=[flag_1, ...]`, mmzoo/fusion/presence.py) gets `a_m = 0`; the others share its part.

    Why this is late fusion of logits: in a classifier, the head after the fusion is affine (Dropout, then
    Dense(num_classes), `head_hidden_units=None`), so `head(sum_m a_m z_m) = sum_m a_m head(z_m)` because the
    `a_m` sum to 1. The model's logits are the weighted mean of each modality's own logits `head(z_m)`, and
    with `units >= num_classes` every modality's head is a free two-layer MLP (`W_head W2_m` spans every linear
    map). `modality_outputs(...)` returns the `z_m`, so per-modality logits, and losses on them, need nothing else.
    Token inputs are first reduced with a mask-aware mean over steps.

    Args:
        units: width of each modality's head and of the output.
        weighting: "mean" or "learned".
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    requires_tokens = False
    max_inputs = None
    supports_presence = True
    _own_attributes = ("modality_weights",)

    def __init__(self, units, weighting="mean", dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"`weighting` must be one of {', '.join(WEIGHTINGS)}. Received: weighting={weighting!r}")
        self.weighting = weighting
        # === Layers ===
        self._check_modality_attributes([f"{m}_{part}" for m in self.modalities for part in ("hidden", "output")])
        for m in self.modalities:
            setattr(self, f"{m}_hidden",
                    keras.layers.Dense(self.units, activation="relu", dtype=self.dtype_policy, name=f"{m}_hidden"))
            setattr(self, f"{m}_output", keras.layers.Dense(self.units, dtype=self.dtype_policy, name=f"{m}_output"))

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        batch = shapes[0][0]
        for hidden, output, shape in zip(self._per_modality("hidden"), self._per_modality("output"), shapes):
            hidden.build((batch, shape[-1]))
            output.build((batch, self.units))
        # === Weights ===
        self.modality_weights = self.add_weight(
            name="modality_weights", shape=(len(self.modalities),), initializer="zeros",
            trainable=self.weighting == "learned",
        )
        self.output_dropout.build((batch, self.units))
        self.built = True

    def modality_outputs(self, inputs, mask=None):
        """Each modality's own head output `z_m`, `(batch, units)`, in modality order."""
        if not self.built:
            self.build([tuple(x.shape) for x in inputs])
        pooled = self._pooled(inputs, mask)
        return [output(hidden(x)) for hidden, output, x in
                zip(self._per_modality("hidden"), self._per_modality("output"), pooled)]

    def combination_weights(self, presence=None, batch_like=None):
        """`a`, `(batch, N, 1)`: the softmax of the modality weights over the modalities present in each row."""
        weights = self._presence(presence)
        like = batch_like[:, :1]
        present = ops.stack([ops.ones_like(like) if w is None else ops.cast(w, like.dtype) for w in weights], axis=1)
        logits = ops.cast(ops.reshape(self.modality_weights, (1, -1, 1)), like.dtype)
        scores = ops.exp(logits - ops.max(logits)) * present
        return scores / ops.maximum(ops.sum(scores, axis=1, keepdims=True), ops.cast(1e-6, like.dtype))

    def call(self, inputs, mask=None, training=None, presence=None):
        outputs = self.modality_outputs(inputs, mask)
        weights = self.combination_weights(presence, batch_like=outputs[0])
        fused = ops.sum(ops.stack(outputs, axis=1) * weights, axis=1)
        return self.output_dropout(fused, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"weighting": self.weighting})
        return config

