"""The captioning loss: token cross-entropy averaged over real tokens of the *global* batch.

A per-replica mean over each replica's own tokens would weight a token by how many others its replica holds,
and Keras' "sum_over_batch_size" divides by padded positions too. Here each replica divides its sum by the count
of real tokens summed over all replicas (`mmzoo.trainers.base.global_mean`), so the replicas' losses add up to the
global mean and 1 and N replicas take the same step. Keras applies no further replica scaling to a loss whose
`__call__` reduces by itself.
"""

import keras
from keras import ops

from mmzoo.trainers.base import global_mean


@keras.saving.register_keras_serializable(package="mmzoo")
class CaptionLoss(keras.losses.Loss):
    """Sparse categorical cross-entropy from logits, averaged over tokens whose weight is not 0.

    `sample_weight` (batch, length) marks the real tokens (what `pack_dataset` yields); without it, targets other
    than the padding id 0 count. `label_smoothing` spreads that much probability over the other tokens.
    """

    def __init__(self, label_smoothing=0.0, name="caption_loss", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        targets = ops.one_hot(ops.cast(y_true, "int32"), ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(targets, y_pred, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def __call__(self, y_true, y_pred, sample_weight=None):
        per_token = self.call(y_true, y_pred)
        weights = ops.cast(ops.not_equal(y_true, 0), "float32") if sample_weight is None else sample_weight
        return global_mean(per_token, weights)

    def get_config(self):
        return {"name": self.name, "label_smoothing": self.label_smoothing}
