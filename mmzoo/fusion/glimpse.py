"""Glimpse fusion: the question looks at the image a few times, and each look can find, read and count."""

import math

import keras
from keras import ops

from mmzoo.fusion.base import FusionLayer, check_positive_int, masked_mean, zero_padding


@keras.saving.register_keras_serializable(package="mmzoo")
class GlimpseFusion(FusionLayer):
    """Question-guided attention over image tokens with several glimpses (as in stacked-attention and MCB VQA).

    Both inputs must be tokens `(batch, steps, dim)`. The text tokens are mean-pooled (valid steps only) into `q`,
    and each glimpse also reads the words it needs: `w_g = sum_t softmax_t(<u_g, h_t>) h_t` over the valid text
    tokens `h_t` ("the red circle" for one glimpse, "the blue square" for the other). Glimpse `g` scores every
    image token `i` against a query made from those reads, `s_gi = <W_k x_i, (W_q [w_1..w_G])_g> / sqrt(key_dim)`,
    and returns three things:

    - `read_g = sum_i softmax_i(s_g) W_v x_i`: the features of what it found ("what colour is the circle", and
      with position channels in the tokens, e.g. the `coord_cnn` tower, *where* it is);
    - `count_g = sum_i sigmoid(s_gi)`: how many tokens match — softmax attention cannot count, a sum of
      independent gates can (Zhang et al., 2018);
    - `peak_g = max_i sigmoid(s_gi)`: whether anything matches ("is there a ...").

    - `where_g = sum_i softmax_i(s_g) p_i`, when the image tokens form a square grid (`steps = g * g`, row-major,
      as the image towers' `output="tokens"` give): the attended column and row `p_i` in [-1, 1]. Two glimpses
      then compare two objects ("is the red circle left of the blue square") from four numbers, instead of from
      position channels diluted among a hundred others in `read`.

    `out = dropout(relu(W [q; read_1..G; count_1..G; peak_1..G; where_1..G] + b))`.

    Args:
        units: width of the output.
        num_glimpses: number of question-guided looks at the image.
        key_dim: width of queries, keys and read values (default: `units`).
        dropout: dropout rate on the output.
    """

    requires_tokens = True

    def __init__(self, units, num_glimpses=2, key_dim=None, dropout=0.0, **kwargs):
        super().__init__(units=units, dropout=dropout, **kwargs)
        self.num_glimpses = check_positive_int(num_glimpses, "num_glimpses")
        self.key_dim = check_positive_int(key_dim if key_dim is not None else self.units, "key_dim")
        # === Layers ===
        common = dict(dtype=self.dtype_policy)
        self.keys = keras.layers.Dense(self.key_dim, name="keys", **common)
        self.values = keras.layers.Dense(self.key_dim, name="values", **common)
        self.word_scores = keras.layers.Dense(self.num_glimpses, name="word_scores", **common)
        self.queries = keras.layers.Dense(self.num_glimpses * self.key_dim, name="queries", **common)
        self.output_projection = keras.layers.Dense(self.units, activation="relu", name="output_projection", **common)

    @staticmethod
    def _square_side(steps):
        side = math.isqrt(steps) if steps else 0
        return side if side > 1 and side * side == steps else None

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        self.keys.build(image_shape)
        self.values.build(image_shape)
        self.word_scores.build(text_shape)
        self.queries.build((text_shape[0], self.num_glimpses * text_shape[-1]))
        self._grid_side = self._square_side(image_shape[1])
        read_width = self.num_glimpses * (self.key_dim + 2 + (2 if self._grid_side else 0))
        self.output_projection.build((image_shape[0], text_shape[-1] + read_width))
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def call(self, inputs, mask=None, training=None):
        image, text, image_mask, text_mask = self._unpack(inputs, mask)
        question = masked_mean(text, text_mask, dtype=self.compute_dtype)
        image = zero_padding(image, image_mask, self.compute_dtype)
        keys, values = self.keys(image), self.values(image)  # (batch, steps, key_dim)
        word_scores = self.word_scores(text)  # (batch, text steps, glimpses)
        if text_mask is not None:
            word_valid = ops.expand_dims(ops.cast(text_mask, "bool"), -1)
            word_scores = ops.where(word_valid, word_scores, ops.cast(-1e4, word_scores.dtype))
        words = ops.einsum("btg,btd->bgd", ops.softmax(word_scores, axis=1), text)  # (batch, glimpses, dim)
        words = ops.reshape(words, (-1, self.num_glimpses * text.shape[-1]))
        queries = ops.reshape(self.queries(words), (-1, self.num_glimpses, keys.shape[-1]))
        valid = None if image_mask is None else ops.expand_dims(ops.cast(image_mask, "bool"), 1)  # (batch, 1, steps)
        scores = ops.einsum("bgd,bsd->bgs", queries, keys) / ops.cast(math.sqrt(self.key_dim), keys.dtype)
        gates = ops.sigmoid(scores)
        if valid is not None:
            scores = ops.where(valid, scores, ops.cast(-1e4, scores.dtype))
            gates = gates * ops.cast(valid, gates.dtype)
        weights = ops.softmax(scores, axis=-1)
        read = ops.einsum("bgs,bsd->bgd", weights, values)
        count, peak = ops.sum(gates, axis=-1), ops.max(gates, axis=-1)  # (batch, glimpses)
        parts = [question, ops.reshape(read, (-1, self.num_glimpses * self.key_dim)), count, peak]
        side = self._square_side(image.shape[1])
        if side:
            line = ops.linspace(-1.0, 1.0, side)
            columns = ops.tile(line, (side,))  # row-major: column changes fastest
            rows = ops.repeat(line, side)
            positions = ops.cast(ops.stack([columns, rows], axis=-1), weights.dtype)  # (steps, 2)
            where = ops.einsum("bgs,sc->bgc", weights, positions)
            parts.append(ops.reshape(where, (-1, self.num_glimpses * 2)))
        fused = self.output_projection(ops.concatenate(parts, axis=-1))
        return self.output_dropout(fused, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({"num_glimpses": self.num_glimpses, "key_dim": self.key_dim})
        return config
