"""Gated multimodal unit (Arevalo et al., 2017)."""

import keras
from keras import ops

from mmzoo.fusion.base import FusionLayer


@keras.saving.register_keras_serializable(package="mmzoo")
class GatedFusion(FusionLayer):
    """GMU: `h_i = tanh(W_i x_i)`, `h_t = tanh(W_t x_t)`, `z = sigmoid(W_z [x_i; x_t])`,
    `out = z * h_i + (1 - z) * h_t`.

    Token inputs are first reduced with a mask-aware mean over steps.

    Args:
        units: output width.
        dropout: dropout rate on the output.
    """

    requires_tokens = False

    def __init__(self, units, dropout=0.0, **kwargs):
        super().__init__(units=units, dropout=dropout, **kwargs)
        # === Layers ===
        self.image_dense = keras.layers.Dense(
            self.units, activation="tanh", dtype=self.dtype_policy, name="image_dense"
        )
        self.text_dense = keras.layers.Dense(
            self.units, activation="tanh", dtype=self.dtype_policy, name="text_dense"
        )
        self.gate_dense = keras.layers.Dense(
            self.units, activation="sigmoid", dtype=self.dtype_policy, name="gate_dense"
        )

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        batch = image_shape[0]
        self.image_dense.build((batch, image_shape[-1]))
        self.text_dense.build((batch, text_shape[-1]))
        self.gate_dense.build((batch, image_shape[-1] + text_shape[-1]))
        self.output_dropout.build((batch, self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        image, text, image_mask, text_mask = self._unpack(inputs, mask)
        x_image, x_text = self._pool(image, image_mask), self._pool(text, text_mask)
        h_image, h_text = self.image_dense(x_image), self.text_dense(x_text)
        z = self.gate_dense(ops.concatenate([x_image, x_text], axis=-1))
        return self.output_dropout(z * h_image + (1.0 - z) * h_text, training=training)
