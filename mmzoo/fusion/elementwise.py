"""Element-wise fusions: project every modality to `units`, then add or multiply."""

import keras

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer, check_activation, keep_present


class _ElementwiseFusion(FusionLayer):
    requires_tokens = False
    max_inputs = None
    supports_presence = True

    def __init__(self, units, activation, dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        self.activation = check_activation(activation)
        # === Layers ===
        self._check_modality_attributes([f"{m}_dense" for m in self.modalities])
        for m in self.modalities:
            setattr(self, f"{m}_dense", keras.layers.Dense(self.units, dtype=self.dtype_policy, name=f"{m}_dense"))

    def build(self, input_shape):
        shapes = self._shapes(input_shape)
        for dense, shape in zip(self._per_modality("dense"), shapes):
            dense.build((shape[0], shape[-1]))
        self.output_dropout.build((shapes[0][0], self.units))
        self.built = True

    def _projections(self, inputs, mask):
        """`W_m x_m + b_m` for every modality, in order."""
        pooled = self._pooled(inputs, mask)
        return [dense(x) for dense, x in zip(self._per_modality("dense"), pooled)]

    def get_config(self):
        config = super().get_config()
        config.update({"activation": keras.activations.serialize(self.activation)})
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class SumFusion(_ElementwiseFusion):
    """`out = dropout(activation(sum_m (W_m x_m + b_m)))`, for any number N >= 2 of modalities.

    Token inputs are first reduced with a mask-aware mean over steps. With `presence=[flag_1, ...]` the sum
    runs over the modalities present.

    Args:
        units: output width.
        activation: applied to the sum (default "relu").
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    def __init__(self, units, activation="relu", dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, activation=activation, dropout=dropout, modalities=modalities, **kwargs)

    def call(self, inputs, mask=None, training=None, presence=None):
        # An absent modality adds nothing: the sum runs over the modalities present.
        projections = [keep_present(h, w) for h, w in zip(self._projections(inputs, mask), self._presence(presence))]
        total = projections[0]
        for h in projections[1:]:
            total = total + h
        return self.output_dropout(self.activation(total), training=training)


@keras.saving.register_keras_serializable(package="mmzoo")
class ProductFusion(_ElementwiseFusion):
    """`out = dropout(prod_m activation(W_m x_m + b_m))` (Hadamard product), for any number N >= 2 of modalities.

    Token inputs are first reduced with a mask-aware mean over steps. With `presence=[flag_1, ...]` the product
    runs over the modalities present.

    Args:
        units: output width.
        activation: applied to each projection before the product (default "tanh", as in the VQA baseline).
        dropout: dropout rate on the output.
        modalities: names of the inputs, in the order `inputs` lists them (default `("image", "text")`).
    """

    def __init__(self, units, activation="tanh", dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, activation=activation, dropout=dropout, modalities=modalities, **kwargs)

    def call(self, inputs, mask=None, training=None, presence=None):
        # An absent modality multiplies by 1: the product runs over the modalities present.
        factors = [self.activation(h) for h in self._projections(inputs, mask)]
        weights = self._presence(presence)
        factors = [f if w is None else keep_present(f, w) + (1.0 - w) for f, w in zip(factors, weights)]
        product = factors[0]
        for h in factors[1:]:
            product = product * h
        return self.output_dropout(product, training=training)
