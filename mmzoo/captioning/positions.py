"""Learned position embeddings: one trained vector per position, added to a sequence of features.

The image encoder adds one per token of the image tower's grid (a plain CNN's tokens do not say where in the
image they are, and captions name positions); the Transformer decoder adds one per caption position.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmzoo")
class PositionEmbedding(keras.layers.Layer):
    """(batch, length, features) -> the same plus a learned (length, features) table.

    `max_length`: positions the table holds; a shorter sequence uses its first rows. `lookup(index)` returns the
    row of one position, for decoding one step at a time.
    """

    def __init__(self, max_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ValueError(f"`max_length` must be a positive integer. Received: max_length={max_length!r}")
        self.max_length = max_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.table = self.add_weight(
            name="table", shape=(self.max_length, int(input_shape[-1])), initializer=self.initializer
        )

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        return inputs + ops.cast(self.table[:length], inputs.dtype)[None]

    def lookup(self, index, dtype):
        """The embedding of position `index` (a scalar tensor), shape (1, features)."""
        return ops.cast(ops.take(self.table, ops.reshape(index, (1,)), axis=0), dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length,
                "initializer": keras.initializers.serialize(self.initializer)}
