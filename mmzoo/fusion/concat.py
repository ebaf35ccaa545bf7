"""Concatenation fusion: Dense(activation) over [image; text]."""

import keras
from keras import ops

from mmzoo.fusion.base import FusionLayer, check_activation


@keras.saving.register_keras_serializable(package="mmzoo")
class ConcatFusion(FusionLayer):
    """`out = dropout(activation(W [x_image; x_text] + b))`.

    Token inputs `(batch, steps, dim)` are first reduced with a mask-aware mean over steps.

    Args:
        units: output width.
        activation: activation of the projection (default "relu").
        dropout: dropout rate on the output.
    """

    requires_tokens = False

    def __init__(self, units, activation="relu", dropout=0.0, **kwargs):
        super().__init__(units=units, dropout=dropout, **kwargs)
        self.activation = check_activation(activation)
        # === Layers ===
        self.dense = keras.layers.Dense(
            self.units, activation=self.activation, dtype=self.dtype_policy, name="dense"
        )

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        self.dense.build((image_shape[0], image_shape[-1] + text_shape[-1]))
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        image, text, image_mask, text_mask = self._unpack(inputs, mask)
        fused = ops.concatenate([self._pool(image, image_mask), self._pool(text, text_mask)], axis=-1)
        return self.output_dropout(self.dense(fused), training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"activation": keras.activations.serialize(self.activation)})
        return config
