"""A small Transformer caption decoder: causal self-attention over the words so far, cross-attention over the image
tokens, a feed-forward layer; pre-norm residual blocks (as GPT-2 and most captioners since 2019 use).

Training runs all positions at once under a causal mask. Decoding runs one position at a time with a cache: each
block's keys and values of the words so far (preallocated for `max_length` positions, written at `index`) and of
the image tokens (computed once). Both paths call the same projections and `attend`, so a step's logits equal the
teacher-forced logits at that position.
"""

import math

import keras
from keras import ops

from mmzoo.captioning.positions import PositionEmbedding

_NEGATIVE = -1e9  # added to masked attention scores, which are computed in float32


def attend(query, key, value, mask=None):
    """Scaled dot-product attention. query (batch, q, heads, depth), key/value (batch, k, heads, depth), `mask`
    (q, k) booleans (True: may attend) -> (batch, q, heads, depth). Scores and softmax in float32."""
    depth = ops.shape(query)[-1]
    scores = ops.einsum("bqhd,bkhd->bhqk", ops.cast(query, "float32"), ops.cast(key, "float32"))
    scores = scores / ops.sqrt(ops.cast(depth, "float32"))
    if mask is not None:
        scores = ops.where(mask[None, None], scores, _NEGATIVE)
    weights = ops.softmax(scores, axis=-1)
    return ops.cast(ops.einsum("bhqk,bkhd->bqhd", weights, ops.cast(value, "float32")), query.dtype)


@keras.saving.register_keras_serializable(package="mmzoo")
class TransformerDecoderBlock(keras.layers.Layer):
    """One decoder block on (batch, length, units) word features, given the image's cross-attention keys/values."""

    def __init__(self, units, num_heads, feedforward_units, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if units % num_heads:
            raise ValueError(f"`units` must be divisible by `num_heads`. Received: units={units}, "
                             f"num_heads={num_heads}")
        self.units, self.num_heads, self.feedforward_units, self.dropout = units, num_heads, feedforward_units, dropout
        self.depth = units // num_heads
        dense = lambda name, width=units, **kw: keras.layers.Dense(width, name=name, **kw)  # noqa: E731
        self.self_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="self_norm")
        self.self_query, self.self_key, self.self_value = dense("self_query"), dense("self_key"), dense("self_value")
        self.self_output = dense("self_output")
        self.cross_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="cross_norm")
        self.cross_query, self.cross_key, self.cross_value = (dense("cross_query"), dense("cross_key"),
                                                              dense("cross_value"))
        self.cross_output = dense("cross_output")
        self.feedforward_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="feedforward_norm")
        self.feedforward_in = dense("feedforward_in", feedforward_units, activation="gelu")
        self.feedforward_out = dense("feedforward_out")
        self.residual_dropout = keras.layers.Dropout(dropout, name="residual_dropout")

    def build(self, input_shape):
        word_shape, image_shape = input_shape
        for layer in (self.self_norm, self.cross_norm, self.feedforward_norm):
            layer.build((None, None, self.units))
        for layer in (self.self_query, self.self_key, self.self_value, self.self_output, self.cross_query,
                      self.cross_output):
            layer.build((None, None, self.units))
        self.cross_key.build((None, None, int(image_shape[-1])))
        self.cross_value.build((None, None, int(image_shape[-1])))
        self.feedforward_in.build((None, None, self.units))
        self.feedforward_out.build((None, None, self.feedforward_units))

    def heads(self, x):
        """(batch, length, units) -> (batch, length, heads, depth)."""
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.num_heads, self.depth))

    def _merge(self, x):
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.units))

    def image_keys_values(self, image_tokens):
        return self.heads(self.cross_key(image_tokens)), self.heads(self.cross_value(image_tokens))

    def _after_self_attention(self, x, attended, image, training):
        x = x + self.residual_dropout(self.self_output(self._merge(attended)), training=training)
        query = self.heads(self.cross_query(self.cross_norm(x)))
        cross = attend(query, *image)
        x = x + self.residual_dropout(self.cross_output(self._merge(cross)), training=training)
        hidden = self.feedforward_out(self.feedforward_in(self.feedforward_norm(x)))
        return x + self.residual_dropout(hidden, training=training)

    def call(self, inputs, training=None):
        words, image_tokens = inputs
        length = ops.shape(words)[1]
        normed = self.self_norm(words)
        query, key, value = (self.heads(self.self_query(normed)), self.heads(self.self_key(normed)),
                             self.heads(self.self_value(normed)))
        causal = ops.tril(ops.ones((length, length), dtype="bool"))
        attended = attend(query, key, value, causal)
        return self._after_self_attention(words, attended, self.image_keys_values(image_tokens), training)

    def step(self, word, index, cache):
        """`word` (batch, 1, units) at position `index`; `cache` holds "keys"/"values" (batch, max_length, heads,
        depth) of earlier positions and "image" keys/values. Returns (batch, 1, units) and the updated cache."""
        normed = self.self_norm(word)
        query, key, value = (self.heads(self.self_query(normed)), self.heads(self.self_key(normed)),
                             self.heads(self.self_value(normed)))
        max_length = ops.shape(cache["keys"])[1]
        written = ops.cast(ops.reshape(ops.one_hot(index, max_length), (1, -1, 1, 1)), key.dtype)
        keys = cache["keys"] * (1 - written) + key * written
        values = cache["values"] * (1 - written) + value * written
        visible = ops.reshape(ops.arange(max_length) <= index, (1, -1))
        attended = attend(query, keys, values, visible)
        output = self._after_self_attention(word, attended, cache["image"], training=False)
        return output, {"keys": keys, "values": values, "image": cache["image"]}

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_heads": self.num_heads,
                "feedforward_units": self.feedforward_units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="mmzoo")
class TransformerCaptionDecoder(keras.layers.Layer):
    """`[token_ids (batch, length), image_tokens (batch, tokens, features)]` -> logits (batch, length, vocabulary).

    Args:
        vocabulary_size: number of token ids (padding, out-of-vocabulary, start and end included).
        max_length: positions the decoder knows (the longest token sequence it is trained on or generates).
        num_layers, units, num_heads, feedforward_units (default 4 x units), dropout: the blocks' shape.
    """

    def __init__(self, vocabulary_size, max_length, num_layers=2, units=128, num_heads=4, feedforward_units=None,
                 dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        for argument, value in (("vocabulary_size", vocabulary_size), ("max_length", max_length),
                                ("num_layers", num_layers), ("units", units), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{argument}` must be a positive integer. Received: {argument}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.vocabulary_size, self.max_length, self.num_layers = vocabulary_size, max_length, num_layers
        self.units, self.num_heads, self.dropout = units, num_heads, dropout
        self.feedforward_units = feedforward_units or 4 * units
        self.embedding = keras.layers.Embedding(vocabulary_size, units, name="embedding")
        self.positions = PositionEmbedding(max_length, name="positions")
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        self.blocks = [TransformerDecoderBlock(units, num_heads, self.feedforward_units, dropout, name=f"block_{i}")
                       for i in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def build(self, input_shape):
        _, image_shape = input_shape
        self.embedding.build((None,))
        self.positions.build((None, None, self.units))
        for block in self.blocks:
            block.build(((None, None, self.units), tuple(image_shape)))
        self.final_norm.build((None, None, self.units))
        self.logits.build((None, None, self.units))

    def _scale(self):
        # Embeddings scaled by sqrt(units), as in Vaswani et al., so positions do not drown the words at start.
        return math.sqrt(self.units)

    def call(self, inputs, training=None):
        token_ids, image_tokens = inputs
        x = self.positions(self.embedding(token_ids) * ops.cast(self._scale(), self.compute_dtype))
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block([x, image_tokens], training=training)
        return self.logits(self.final_norm(x))

    def start(self, image_tokens, max_length):
        """The cache before the first word: empty self-attention keys/values for `max_length` positions and the
        image keys/values of every block."""
        batch = ops.shape(image_tokens)[0]
        empty = ops.zeros((batch, max_length, self.num_heads, self.units // self.num_heads), self.compute_dtype)
        return {"blocks": [{"keys": empty, "values": empty, "image": block.image_keys_values(image_tokens)}
                           for block in self.blocks]}

    def step(self, token_ids, index, cache):
        """`token_ids` (batch,) at position `index` -> (logits (batch, vocabulary), the next cache)."""
        x = self.embedding(token_ids) * ops.cast(self._scale(), self.compute_dtype)
        x = ops.expand_dims(x, 1) + self.positions.lookup(index, x.dtype)[None]
        caches = []
        for block, block_cache in zip(self.blocks, cache["blocks"]):
            x, block_cache = block.step(x, index, block_cache)
            caches.append(block_cache)
        return self.logits(self.final_norm(x))[:, 0], {"blocks": caches}

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "max_length": self.max_length,
                "num_layers": self.num_layers, "units": self.units, "num_heads": self.num_heads,
                "feedforward_units": self.feedforward_units, "dropout": self.dropout}
