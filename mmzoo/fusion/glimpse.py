"""Glimpse fusion: the question looks at the image a few times, and each look can find, read and count."""

import math
import numbers

import keras
from keras import ops

from mmzoo.fusion.base import DEFAULT_MODALITIES, FusionLayer, check_positive_int, masked_mean, zero_padding


RELATION_READOUTS = ("bilinear", "sign")  # the first is the default
GATE_SCORES = ("centered", "raw")  # the first is the default
# Defaults that changed between versions, with the value a config saved before the change meant.
_EARLIER_DEFAULTS = {"relation_readout": "sign", "gate_scores": "raw"}


def _skip_padded_words(scores, text_mask):
    """Scores `(batch, text steps, k)` of a softmax over words, with padded words pushed to weight 0."""
    if text_mask is None:
        return scores
    word_valid = ops.expand_dims(ops.cast(text_mask, "bool"), -1)
    return ops.where(word_valid, scores, ops.cast(-1e4, scores.dtype))


def _centered(scores, image_mask):
    """`scores` `(batch, glimpses, image steps)` minus their mean over each glimpse's (valid) image tokens."""
    if image_mask is None:
        return scores - ops.mean(scores, axis=-1, keepdims=True)
    valid = ops.expand_dims(ops.cast(image_mask, scores.dtype), 1)
    mean = ops.sum(scores * valid, axis=-1, keepdims=True) / ops.maximum(ops.sum(valid, axis=-1, keepdims=True), 1.0)
    return scores - mean


@keras.saving.register_keras_serializable(package="mmzoo")
class GlimpseFusion(FusionLayer):
    """Question-guided attention over image tokens with several glimpses (as in stacked-attention and MCB VQA).

    Glimpses are only defined for two inputs, image tokens then text tokens (`max_inputs = 2`; `modalities` may
    rename them). Both inputs must be tokens `(batch, steps, dim)`. The text tokens are mean-pooled (valid steps
    only) into `q`, and each glimpse reads the words it needs: `w_g = sum_t softmax_t(<u_g, h_t> + b_gt) h_t`
    over the valid text tokens `h_t`, with a learned bias `b_gt` per glimpse and word position (up to
    `max_text_steps`), so that one glimpse can take the first object named and another the second. Glimpse `g`
    scores every image token `i` against a query made from those reads,
    `s_gi = <W_k x_i, (W_q [w_1..w_G])_g> / sqrt(key_dim)`, and returns:

    - `read_g = sum_i softmax_i(s_g) W_v x_i`: the features of what it found ("what colour is the car");
    - `count_g = sum_i sigmoid(c_gi + b)`: how many tokens match — softmax attention cannot count, a sum of
      independent gates can (Zhang et al., 2018). `c_gi = s_gi - mean_j s_gj`, the score against the image's
      average token (`gate_scores="centered"`): softmax attention ignores a shift of all of a glimpse's scores,
      so the colour and shape questions that train the queries leave that shift free, and with raw scores
      (`gate_scores="raw"`) it decided whether the gates opened on the objects or on the background;
    - `peak_g = max_i sigmoid(c_gi + b)`: whether anything matches ("is there a ...");
    - with `grid_positions=True`, `where_g = sum_i softmax_i(s_g) p_i`: the attended column and row `p_i` in
      [-1, 1], for image tokens that form a square grid (`steps = g * g`, row-major, as the image towers'
      `output="tokens"` give; no image mask). Two glimpses can then compare two objects ("is the cup left
      of the plate") from four numbers rather than from position channels diluted in `read`.

    Pooled glimpses see the question as a bag of words: nothing tells them which object was named first, and in
    practice they do not learn to (position questions stay at chance, docs/cli.md). `relation_heads=R` adds
    order by construction: every word `t` points at a grid position `where_t` (attention with its own query
    `W_w h_t`), each head weighs the words with a learned softmax `beta_t`, and returns the weighted mean offset
    over word pairs `rel_r = sum_{t<u} beta_t beta_u (where_t - where_u) / sum_{t<u} beta_t beta_u` — first
    named minus second named. The question sets which way to compare ("left of": the first column minus the
    second is negative), so `rel` enters the output both as it is and times every feature of the pooled question
    (`relation_readout="bilinear"`, `rel (x) q`), which makes the answer linear in it. The glimpses' queries
    are then the same per-word queries, averaged with their word attention (`sum_t softmax_t(...) W_w h_t`), so
    every question type trains what the relations rely on.

    `out = dropout(relu(W [q; read_1..G; count_1..G; peak_1..G; where_1..G; rel; rel (x) q] + b))`,
    with `rel` in grid cells. `look(inputs)` returns the attention maps and the other pieces, for inspection.

    Args:
        units: width of the output.
        num_glimpses: number of question-guided looks at the image.
        key_dim: width of queries, keys and read values (default: `units`).
        grid_positions: also return where each glimpse looked (needs a square grid of image tokens).
        max_text_steps: the longest text (in tokens) the word-position bias covers.
        gate_bias: initial value of the learned gate bias `b`, or None for no bias weight at all. Negative, so
            that at initialisation few of the many image tokens count as a match: with
            gates at 0.5 each glimpse's count starts near half the number of tokens (32 on an 8x8 grid), which
            swamps the output projection and made training collapse on some seeds (docs/cli.md).
        relation_heads: number of word-order relation heads (0: none; needs `grid_positions=True`).
        relation_readout: "bilinear" (`rel (x) q`) or "sign" (`rel * tanh(W_s q)`, what models saved before
            this option had; on some seeds its two learned factors never met, see `_relation_by_question`).
        gate_scores: "centered" (gates on `s - mean(s)`) or "raw" (gates on `s`, what models saved before this
            option had).
        dropout: dropout rate on the output.
        modalities: names of the two inputs, the image tokens first (default `("image", "text")`).
    """

    requires_tokens = True
    max_inputs = 2

    def __init__(self, units, num_glimpses=2, key_dim=None, grid_positions=False, max_text_steps=64, gate_bias=-4.0,
                 relation_heads=0, relation_readout=RELATION_READOUTS[0], gate_scores=GATE_SCORES[0], dropout=0.0,
                 modalities=DEFAULT_MODALITIES, **kwargs):
        super().__init__(units=units, dropout=dropout, modalities=modalities, **kwargs)
        self.num_glimpses = check_positive_int(num_glimpses, "num_glimpses")
        self.key_dim = check_positive_int(key_dim if key_dim is not None else self.units, "key_dim")
        if not isinstance(grid_positions, bool):
            raise ValueError(f"`grid_positions` must be True or False. Received: grid_positions={grid_positions!r}")
        self.grid_positions = grid_positions
        self.max_text_steps = check_positive_int(max_text_steps, "max_text_steps")
        if gate_bias is not None and (isinstance(gate_bias, bool) or not isinstance(gate_bias, numbers.Real)
                                      or not math.isfinite(gate_bias)):
            raise ValueError(f"`gate_bias` must be a finite number or None. Received: gate_bias={gate_bias!r}")
        self.gate_bias = None if gate_bias is None else float(gate_bias)
        if isinstance(relation_heads, bool) or not isinstance(relation_heads, numbers.Integral) or relation_heads < 0:
            raise ValueError(f"`relation_heads` must be a non-negative integer. Received: relation_heads={relation_heads!r}")
        self.relation_heads = int(relation_heads)
        if relation_readout not in RELATION_READOUTS:
            raise ValueError(f"`relation_readout` must be one of {', '.join(map(repr, RELATION_READOUTS))}. "
                             f"Received: relation_readout={relation_readout!r}")
        self.relation_readout = relation_readout
        if gate_scores not in GATE_SCORES:
            raise ValueError(f"`gate_scores` must be one of {', '.join(map(repr, GATE_SCORES))}. "
                             f"Received: gate_scores={gate_scores!r}")
        self.gate_scores = gate_scores
        if self.relation_heads and not grid_positions:
            raise ValueError("`relation_heads` compare positions on the image grid and need grid_positions=True. "
                             f"Received: relation_heads={relation_heads!r}, grid_positions=False")
        # === Layers ===
        common = dict(dtype=self.dtype_policy)
        self.keys = keras.layers.Dense(self.key_dim, name="keys", **common)
        self.values = keras.layers.Dense(self.key_dim, name="values", **common)
        self.word_scores = keras.layers.Dense(self.num_glimpses, name="word_scores", **common)
        if self.relation_heads:
            self.word_queries = keras.layers.Dense(self.key_dim, name="word_queries", **common)
            self.relation_words = keras.layers.Dense(self.relation_heads, name="relation_words", **common)
            if relation_readout == "sign":
                self.relation_signs = keras.layers.Dense(2 * self.relation_heads, name="relation_signs", **common)
        else:
            self.queries = keras.layers.Dense(self.num_glimpses * self.key_dim, name="queries", **common)
        self.output_projection = keras.layers.Dense(self.units, activation="relu", name="output_projection", **common)

    def _grid_side(self, steps, image_mask=None):
        if not self.grid_positions:
            return None
        side = math.isqrt(steps) if steps else 0
        if side * side != steps or image_mask is not None:
            raise ValueError(
                "GlimpseFusion with grid_positions=True needs image tokens from a square grid (steps = g * g) "
                f"without a mask; use grid_positions=False for other token sequences. Received: {steps} image "
                f"tokens{', with an image mask' if image_mask is not None else ''}"
            )
        return side

    def build(self, input_shape):
        image_shape, text_shape = self._shapes(input_shape)
        self.keys.build(image_shape)
        self.values.build(image_shape)
        self.word_scores.build(text_shape)
        if text_shape[1] is not None and text_shape[1] > self.max_text_steps:
            raise ValueError(f"GlimpseFusion(max_text_steps={self.max_text_steps}) got longer text; raise "
                             f"`max_text_steps`. Received: {self.modalities[1]}_features with {text_shape[1]} steps")
        self.word_position_bias = self.add_weight(
            shape=(self.max_text_steps, self.num_glimpses), initializer="zeros", name="word_position_bias")
        if not self.relation_heads:
            self.queries.build((text_shape[0], self.num_glimpses * text_shape[-1]))
        if self.gate_bias is not None:
            self.gate_bias_weight = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(self.gate_bias), name="gate_bias")
        self._grid_side(image_shape[1])
        if self.relation_heads:
            self.word_queries.build(text_shape)
            self.relation_words.build(text_shape)
            if self.relation_readout == "sign":
                self.relation_signs.build((text_shape[0], text_shape[-1]))
        read_width = (self.num_glimpses * (self.key_dim + 2 + (2 if self.grid_positions else 0))
                      + self._relation_width(text_shape[-1]))
        self.output_projection.build((image_shape[0], text_shape[-1] + read_width))
        self.output_dropout.build((image_shape[0], self.units))
        self.built = True

    def look(self, inputs, mask=None):
        """What the glimpses see, for inspection (e.g. plotting `attention` over the image grid): a dict of
        `attention` and `gates` (batch, glimpses, image steps), `read` (batch, glimpses, key_dim), `count` and
        `peak` (batch, glimpses), `where` (batch, glimpses, 2: column, row) when the tokens form a grid, and
        `relation` (batch, relation_heads, 2) with relation heads."""
        (image, text), (image_mask, text_mask) = self._unpack(inputs, mask)
        image = zero_padding(image, image_mask, self.compute_dtype)
        text = zero_padding(text, text_mask, self.compute_dtype)  # a row of padding only reads zeros
        keys, values = self.keys(image), self.values(image)  # (batch, steps, key_dim)
        word_scores = self.word_scores(text)  # (batch, text steps, glimpses)
        steps = text.shape[1]
        if steps is not None and steps > self.max_text_steps:
            raise ValueError(f"GlimpseFusion(max_text_steps={self.max_text_steps}) got longer text; raise "
                             f"`max_text_steps`. Received: {self.modalities[1]}_features with {steps} steps")
        bias = self.word_position_bias[: ops.shape(text)[1]]  # (text steps, glimpses)
        word_scores = word_scores + ops.cast(bias, word_scores.dtype)
        word_scores = _skip_padded_words(word_scores, text_mask)
        word_attention = ops.softmax(word_scores, axis=1)  # (batch, text steps, glimpses)
        if self.relation_heads:
            # One query per word, shared by the glimpses and the relations: every question type trains it.
            word_queries = self.word_queries(text)  # (batch, text steps, key_dim)
            queries = ops.einsum("btg,btd->bgd", word_attention, word_queries)
        else:
            word_queries = None
            words = ops.einsum("btg,btd->bgd", word_attention, text)  # (batch, glimpses, dim)
            words = ops.reshape(words, (-1, self.num_glimpses * text.shape[-1]))
            queries = ops.reshape(self.queries(words), (-1, self.num_glimpses, self.key_dim))
        scores = ops.einsum("bgd,bsd->bgs", queries, keys) / ops.cast(math.sqrt(self.key_dim), keys.dtype)
        gate_scores = _centered(scores, image_mask) if self.gate_scores == "centered" else scores
        if self.gate_bias is not None:
            gate_scores = gate_scores + ops.cast(self.gate_bias_weight, scores.dtype)
        gates = ops.sigmoid(gate_scores)
        if image_mask is not None:
            valid = ops.expand_dims(ops.cast(image_mask, "bool"), 1)  # (batch, 1, steps)
            scores = ops.where(valid, scores, ops.cast(-1e4, scores.dtype))
            gates = gates * ops.cast(valid, gates.dtype)
        attention = ops.softmax(scores, axis=-1)
        seen = {
            "attention": attention,
            "gates": gates,
            "read": ops.einsum("bgs,bsd->bgd", attention, values),
            "count": ops.sum(gates, axis=-1),
            "peak": ops.max(gates, axis=-1),
        }
        side = self._grid_side(image.shape[1], image_mask)
        if side:
            line = ops.linspace(-1.0, 1.0, side)
            positions = ops.stack([ops.tile(line, (side,)), ops.repeat(line, side)], axis=-1)  # row-major (steps, 2)
            positions = ops.cast(positions, attention.dtype)
            seen["where"] = ops.einsum("bgs,sc->bgc", attention, positions)
            if self.relation_heads:
                seen["relation"] = self._relations(text, text_mask, keys, positions, word_queries)
        return seen

    def _relations(self, text, text_mask, keys, positions, word_queries):
        """`(batch, relation_heads, 2)`: for each head, the mean over word pairs t < u, weighted by
        `beta_t beta_u`, of `where_t - where_u`, where `where_t` is the grid position word `t` points at and
        `beta` a learned softmax over words. The ordering is built in (first named minus second named), so
        "is A left of B" needs no glimpse to learn which object came first — a symmetry pooled glimpses do
        not break within a short training (docs/cli.md)."""
        scores = ops.einsum("btd,bsd->bts", word_queries, keys) / ops.cast(math.sqrt(self.key_dim), keys.dtype)
        word_where = ops.einsum("bts,sc->btc", ops.softmax(scores, axis=-1), positions)  # (batch, text steps, 2)
        beta_scores = self.relation_words(text)  # (batch, text steps, heads)
        beta_scores = _skip_padded_words(beta_scores, text_mask)
        beta = ops.softmax(beta_scores, axis=1)
        through = ops.cumsum(beta, axis=1)  # weight of words up to and including t
        # sum_{t<u} b_t b_u (w_t - w_u) = sum_t b_t w_t (weight after t - weight before t)
        signed = beta * ((1.0 - through) - (through - beta))
        # Divided by the total pair weight sum_{t<u} b_t b_u = (1 - sum_t b_t^2) / 2: a weighted mean of the
        # pairwise offsets, of the same size whether beta is spread over the sentence (at the start) or not.
        pairs = (1.0 - ops.sum(ops.square(beta), axis=1)) / 2.0  # (batch, heads)
        pairs = ops.maximum(pairs, ops.cast(1e-3, pairs.dtype))
        return ops.einsum("btr,btc->brc", signed, word_where) / ops.expand_dims(pairs, -1)

    def call(self, inputs, mask=None, training=None):
        (_, text), (_, text_mask) = self._unpack(inputs, mask)
        seen = self.look(inputs, mask)
        parts = [
            masked_mean(text, text_mask, dtype=self.compute_dtype),
            ops.reshape(seen["read"], (-1, self.num_glimpses * self.key_dim)),
            seen["count"],
            seen["peak"],
        ]
        if "where" in seen:
            parts.append(ops.reshape(seen["where"], (-1, self.num_glimpses * 2)))
        if "relation" in seen:
            # In grid cells rather than [-1, 1], so that an offset of a few cells is a number of a few units.
            cells = ops.cast((math.isqrt(seen["attention"].shape[-1]) - 1) / 2, seen["relation"].dtype)
            relation = ops.reshape(seen["relation"], (-1, self.relation_heads * 2)) * cells
            parts += [relation, self._relation_by_question(relation, parts[0])]
        fused = self.output_projection(ops.concatenate(parts, axis=-1))
        return self.output_dropout(fused, training=training)

    def _relation_width(self, text_dim):
        if not self.relation_heads:
            return 0
        return 2 * self.relation_heads * (2 if self.relation_readout == "sign" else 1 + text_dim)

    def _relation_by_question(self, relation, question):
        """The relation offsets as the question reads them. The question picks the axis and direction ("left of":
        first column minus second, negative), so the answer must be linear in a product of the two.

        "bilinear": every offset times every feature of the pooled question, `rel (x) q`, a fixed product the
        output projection weighs linearly. "sign": `rel * tanh(W_s q)`, a product of two learned factors, whose
        gradients each scale with the other: on some seeds both fade before they meet, the signs stay the same
        for "left of" and "right of", and position questions stay at chance although `rel` follows the
        objects' offsets (docs/cli.md)."""
        if self.relation_readout == "sign":
            return relation * ops.tanh(self.relation_signs(question))
        products = ops.expand_dims(relation, -1) * ops.expand_dims(question, 1)  # (batch, heads * 2, text dim)
        return ops.reshape(products, (-1, products.shape[1] * products.shape[2]))

    def get_config(self):
        config = super().get_config()
        config.update({"num_glimpses": self.num_glimpses, "key_dim": self.key_dim,
                       "grid_positions": self.grid_positions, "max_text_steps": self.max_text_steps,
                       "gate_bias": self.gate_bias, "relation_heads": self.relation_heads,
                       "relation_readout": self.relation_readout, "gate_scores": self.gate_scores})
        return config

    @classmethod
    def from_config(cls, config):
        # A config saved before `gate_bias` existed has no gate bias weight: load it as it was.
        return cls(**cls.saved_options({"gate_bias": None, **config}))

    @classmethod
    def recorded_options(cls, options):
        return {"relation_readout": RELATION_READOUTS[0], "gate_scores": GATE_SCORES[0], **(options or {})}

    @classmethod
    def saved_options(cls, options):
        return {**_EARLIER_DEFAULTS, **(options or {})}
