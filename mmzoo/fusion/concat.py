"""Concatenation fusion: Dense(activation) over the concatenation of every modality's features."""

import keras
from keras import ops

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer, check_activation, keep_present


@keras.saving.register_keras_serializable(package="mmzoo")
class ConcatFusion(FusionLayer):
    """`out = dropout(activation(W [x_1; ...; x_N] + b))`, for any number N >= 2 of modalities.

    Token inputs `(batch, steps, dim)` are first reduced with a mask-aware mean over steps. With
    `presence=[flag_1, ...]` an absent modality's features are zeros in the concatenation, so its part of `W x`
    is nothing (rather than the projection of, say, a black image's features).

    Args:
        units: output width.
        activation: activation of the projection (default "relu").
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    requires_tokens = False
    max_inputs = None
    supports_presence = True
    _own_attributes = ("dense",)

    def __init__(self, units, activation="relu", dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        self.activation = check_activation(activation)
        # === Layers ===
        self.dense = keras.layers.Dense(
            self.units, activation=self.activation, dtype=self.dtype_policy, name="dense"
        )

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        batch = shapes[0][0]
        self.dense.build((batch, sum(shape[-1] for shape in shapes)))
        self.output_dropout.build((batch, self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None, presence=None):
        pooled = [keep_present(x, w) for x, w in zip(self._pooled(inputs, mask), self._presence(presence))]
        fused = ops.concatenate(pooled, axis=-1)
        return self.output_dropout(self.dense(fused), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"activation": keras.activations.serialize(self.activation)})
        return config
