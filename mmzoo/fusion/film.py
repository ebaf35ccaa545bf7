"""FiLM fusion: the text modulates the image features channel by channel, then the modulated grid is pooled."""

import math

import keras
from keras import ops

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer, check_positive_int, masked_mean, zero_padding


@keras.saving.register_keras_serializable(package="mmzoo")
class FiLMFusion(FusionLayer):
    """Feature-wise linear modulation (Perez et al., 2018) of image tokens by the text, then pooling.

    FiLM is only defined for two inputs, image tokens then text tokens (`max_inputs = 2`; `modalities` may
    rename them). Both inputs must be tokens `(batch, steps, dim)`. With `kernel_size > 1` the image tokens must
    come from a square grid (`steps = g * g`, row-major, as the image towers' `output="tokens"` give) and carry
    no mask; with the default `kernel_size=1` every block works per token, on any number of (masked) tokens.
    The text tokens are mean-pooled over valid steps into `q`. The image tokens are projected to `units` and go
    through `num_blocks` residual blocks

        x = relu(conv1x1(x));  h = conv_k(x);  h = LayerNorm(h) * (1 + gamma_b(q)) + beta_b(q);  x = x + relu(h)

    so the question decides, per channel, what each block keeps: a colour, a kind of object, a relation to another object.
    `out = dropout(relu(W [max_steps(x); mean_steps(x); q] + b))`: max-pooling answers "is there",
    mean-pooling "how many" and "where" (with position channels in the tokens, e.g. the `coord_cnn` tower).

    Args:
        units: width of the modulated features and of the output.
        num_blocks: FiLM residual blocks.
        kernel_size: spatial size of each block's second convolution on the token grid (default 1: per token).
        dropout: dropout rate on the output.
        modalities: names of the two inputs, the image tokens first (default `("image", "text")`).
    """

    requires_tokens = True
    max_inputs = 2

    def __init__(self, units, num_blocks=2, kernel_size=1, dropout=0.0, modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        self.num_blocks = check_positive_int(num_blocks, "num_blocks")
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        # === Layers ===
        common = dict(dtype=self.dtype_policy)
        self.image_projection = keras.layers.Dense(self.units, name="image_projection", **common)
        self.inputs_1x1, self.convs, self.norms, self.films = [], [], [], []
        for b in range(self.num_blocks):
            self.inputs_1x1.append(keras.layers.Dense(self.units, activation="relu", name=f"block{b}_input", **common))
            self.convs.append(
                keras.layers.Conv2D(self.units, self.kernel_size, padding="same", name=f"block{b}_conv", **common)
            )
            self.norms.append(
                keras.layers.LayerNormalization(center=False, scale=False, epsilon=1e-5, name=f"block{b}_norm", **common)
            )
            # gamma and beta from the text; zero-initialised so every block starts as plain (unmodulated) LayerNorm.
            self.films.append(keras.layers.Dense(2 * self.units, kernel_initializer="zeros", name=f"block{b}_film", **common))
        self.output_projection = keras.layers.Dense(self.units, activation="relu", name="output_projection", **common)

    def _grid(self, steps):
        side = math.isqrt(steps) if steps is not None else None
        if self.kernel_size > 1 and (side is None or side * side != steps):
            raise ValueError(
                f"FiLMFusion with kernel_size={self.kernel_size} needs image tokens from a square grid "
                f"(steps = g * g); use kernel_size=1 for other token sequences. Received: {steps} image tokens"
            )
        return side

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        side = self._grid(image_shape[1])
        self.image_projection.build(image_shape)
        token_shape = (image_shape[0], image_shape[1], self.units)
        grid_shape = (image_shape[0], side, side, self.units)
        for dense, conv, norm, film in zip(self.inputs_1x1, self.convs, self.norms, self.films):
            dense.build(token_shape)
            conv.build(grid_shape if self.kernel_size > 1 else (image_shape[0], image_shape[1], 1, self.units))
            norm.build(token_shape)
            film.build((text_shape[0], text_shape[-1]))
        self.output_projection.build((image_shape[0], 2 * self.units + text_shape[-1]))
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        (image, text), (image_mask, text_mask) = self._unpack(inputs, mask)
        if image_mask is not None and self.kernel_size > 1:
            raise ValueError(
                f"FiLMFusion with kernel_size={self.kernel_size} convolves over the image token grid, so the image "
                "tokens cannot be masked; use kernel_size=1. Received: an image mask"
            )
        question = masked_mean(text, text_mask, dtype=self.compute_dtype)
        x = self.image_projection(zero_padding(image, image_mask, self.compute_dtype))
        steps = x.shape[1]
        side = self._grid(steps)
        for dense, conv, norm, film in zip(self.inputs_1x1, self.convs, self.norms, self.films):
            x = dense(x)
            grid = ops.reshape(x, (-1, side, side, self.units) if self.kernel_size > 1 else (-1, steps, 1, self.units))
            h = ops.reshape(conv(grid), (-1, steps, self.units))
            gamma, beta = ops.split(ops.expand_dims(film(question), 1), 2, axis=-1)
            h = norm(h) * (1.0 + gamma) + beta
            x = x + ops.relu(h)
        if image_mask is None:
            pooled_max, pooled_mean = ops.max(x, axis=1), ops.mean(x, axis=1)
        else:
            valid = ops.expand_dims(ops.cast(image_mask, "bool"), -1)
            pooled_max = ops.max(ops.where(valid, x, ops.cast(-1e4, x.dtype)), axis=1)
            pooled_mean = masked_mean(x, image_mask, dtype=self.compute_dtype)
        fused = self.output_projection(ops.concatenate([pooled_max, pooled_mean, question], axis=-1))
        return self.output_dropout(fused, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"num_blocks": self.num_blocks, "kernel_size": self.kernel_size})
        return config
