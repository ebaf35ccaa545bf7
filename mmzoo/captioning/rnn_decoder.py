"""A recurrent caption decoder that looks at the image at every word (Show, Attend and Tell; Xu et al. 2015).

At step t the previous state asks where to look: additive attention over the image tokens gives a context vector,
which is fed to the GRU/LSTM cell beside the previous word's embedding; the next word is predicted from the new
state, the context and the word embedding (the paper's "deep output"). Training and decoding run the same `_advance`
step: training scans it over the whole shifted caption (teacher forcing), decoding calls it once per generated word
with the state as its cache. The cells are Keras' generic GRUCell/LSTMCell, so no exported graph carries cuDNN ops.
"""

import keras
from keras import ops

CELLS = {"gru": keras.layers.GRUCell, "lstm": keras.layers.LSTMCell}


@keras.saving.register_keras_serializable(package="mmzoo")
class AttentionRNNDecoder(keras.layers.Layer):
    """`[token_ids (batch, length), image_tokens (batch, tokens, features)]` -> logits (batch, length, vocabulary).

    Args:
        vocabulary_size: number of token ids (padding, out-of-vocabulary, start and end included).
        cell: "gru" or "lstm".
        units: width of the recurrent state.
        embedding_dim: width of the word embeddings.
        attention_units: width of the additive attention (default `units`).
        dropout: before the output projection, in [0, 1).
    """

    def __init__(self, vocabulary_size, cell="gru", units=256, embedding_dim=128, attention_units=None, dropout=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"`cell` must be one of {sorted(CELLS)}. Received: cell={cell!r}")
        for argument, value in (("vocabulary_size", vocabulary_size), ("units", units),
                                ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{argument}` must be a positive integer. Received: {argument}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.vocabulary_size, self.cell, self.units = vocabulary_size, cell, units
        self.embedding_dim, self.dropout = embedding_dim, dropout
        self.attention_units = attention_units or units
        self.num_states = 2 if cell == "lstm" else 1

        # === Layers ===
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.initial_states = [keras.layers.Dense(units, activation="tanh", name=f"initial_state_{i}")
                               for i in range(self.num_states)]
        self.attention_keys = keras.layers.Dense(self.attention_units, use_bias=False, name="attention_keys")
        self.attention_query = keras.layers.Dense(self.attention_units, name="attention_query")
        self.attention_score = keras.layers.Dense(1, use_bias=False, name="attention_score")
        self.recurrent_cell = CELLS[cell](units, name=f"{cell}_cell")
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        # Logits in float32 under mixed precision: the softmax and the loss need its range.
        self.logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")

    def build(self, input_shape):
        _, image_shape = input_shape
        features = int(image_shape[-1])
        # Built here, not on first call: the first call happens inside a while loop, where no variable may be made.
        self.embedding.build((None,))
        for dense in self.initial_states:
            dense.build((None, features))
        self.attention_keys.build((None, None, features))
        self.attention_query.build((None, self.units))
        self.attention_score.build((None, None, self.attention_units))
        self.recurrent_cell.build((None, self.embedding_dim + features))
        self.logits.build((None, self.units + features + self.embedding_dim))

    # === Decoding, one step at a time ===

    def start(self, image_tokens, max_length=None):
        """The cache before the first word: the attention keys (computed once) and the initial state, from the
        mean image token. `max_length` is unused (a recurrent state does not grow)."""
        del max_length
        mean = ops.mean(image_tokens, axis=1)
        return {"keys": self.attention_keys(image_tokens), "values": image_tokens,
                "states": [dense(mean) for dense in self.initial_states]}

    def step(self, token_ids, index, cache):
        """`token_ids` (batch,) of the previous word -> (logits (batch, vocabulary), the next cache)."""
        del index
        features, states = self._advance(self.embedding(token_ids), cache["states"], cache, training=False)
        return self.logits(features), {**cache, "states": states}

    def _advance(self, embedded, states, cache, training):
        query = self.attention_query(states[0])
        scores = self.attention_score(ops.tanh(cache["keys"] + ops.expand_dims(query, 1)))[..., 0]
        weights = ops.softmax(ops.cast(scores, "float32"), axis=-1)
        context = ops.sum(ops.expand_dims(ops.cast(weights, embedded.dtype), -1) * cache["values"], axis=1)
        output, new_states = self.recurrent_cell(ops.concatenate([embedded, context], axis=-1), states,
                                                 training=training)
        new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        features = ops.concatenate([output, context, embedded], axis=-1)
        return self.output_dropout(features, training=training), new_states

    # === Teacher forcing ===

    def call(self, inputs, training=None):
        token_ids, image_tokens = inputs
        cache = self.start(image_tokens)
        # Keras' scan stacks outputs shaped like its carry, so the step's features ride in the carry. Words are
        # embedded inside the step, as in decoding: the embedding's gradient is then accumulated densely by the
        # loop, which tf.distribute reduces like any other (an IndexedSlices coming out of the scan did not: its
        # collective failed with a shape mismatch between replicas).
        width = self.units + int(image_tokens.shape[-1]) + self.embedding_dim
        features = ops.zeros((ops.shape(token_ids)[0], width), self.compute_dtype)

        def advance(carry, word):
            features, states = self._advance(self.embedding(word), carry[1:], cache, training)
            carry = [features] + states
            return carry, carry

        _, outputs = ops.scan(advance, [features] + cache["states"], ops.transpose(token_ids))
        return self.logits(ops.transpose(outputs[0], (1, 0, 2)))

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "cell": self.cell,
                "units": self.units, "embedding_dim": self.embedding_dim,
                "attention_units": self.attention_units, "dropout": self.dropout}
