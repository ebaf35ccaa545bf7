"""Element-wise fusions: project both modalities to `units`, then add or multiply."""

import keras

from mmzoo.fusion.base import FusionLayer, check_activation


class _ElementwiseFusion(FusionLayer):
    requires_tokens = False

    def __init__(self, units, activation, dropout=0.0, **kwargs):
        super().__init__(units=units, dropout=dropout, **kwargs)
        self.activation = check_activation(activation)
        # === Layers ===
        self.image_dense = keras.layers.Dense(self.units, dtype=self.dtype_policy, name="image_dense")
        self.text_dense = keras.layers.Dense(self.units, dtype=self.dtype_policy, name="text_dense")

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        self.image_dense.build((image_shape[0], image_shape[-1]))
        self.text_dense.build((text_shape[0], text_shape[-1]))
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def _projections(self, inputs, mask):
        image, text, image_mask, text_mask = self._unpack(inputs, mask)
        return self.image_dense(self._pool(image, image_mask)), self.text_dense(self._pool(text, text_mask))

    def get_config(self):
        config = super().get_config()
        config.update({"activation": keras.activations.serialize(self.activation)})
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class SumFusion(_ElementwiseFusion):
    """`out = dropout(activation(W_i x_image + W_t x_text + b))`.

    Token inputs are first reduced with a mask-aware mean over steps.

    Args:
        units: output width.
        activation: applied to the sum (default "relu").
        dropout: dropout rate on the output.
    """

    def __init__(self, units, activation="relu", dropout=0.0, **kwargs):
        super().__init__(units=units, activation=activation, dropout=dropout, **kwargs)

    def call(self, inputs, mask=None, training=None):
        h_image, h_text = self._projections(inputs, mask)
        return self.output_dropout(self.activation(h_image + h_text), training=training)


@keras.saving.register_keras_serializable(package="mmzoo")
class ProductFusion(_ElementwiseFusion):
    """`out = dropout(activation(W_i x_image + b_i) * activation(W_t x_text + b_t))` (Hadamard product).

    Token inputs are first reduced with a mask-aware mean over steps.

    Args:
        units: output width.
        activation: applied to each projection before the product (default "tanh", as in the VQA baseline).
        dropout: dropout rate on the output.
    """

    def __init__(self, units, activation="tanh", dropout=0.0, **kwargs):
        super().__init__(units=units, activation=activation, dropout=dropout, **kwargs)

    def call(self, inputs, mask=None, training=None):
        h_image, h_text = self._projections(inputs, mask)
        return self.output_dropout(self.activation(h_image) * self.activation(h_text), training=training)
