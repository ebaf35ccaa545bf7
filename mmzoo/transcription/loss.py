"""The CTC loss of a transcriber: per-example negative log-likelihood of the transcript over all alignments,
summed over the replica's examples and divided by the GLOBAL batch size.

Lengths come from masks. Label lengths: labels are 0-padded (0 is the blank, which no transcript holds), so a
row's length is its count of non-zero ids. Logit lengths: a `SpeechTranscriber`'s logits are masked by its audio
tower's token mask (`BlankPadding`): every step after the clip ends is a certain blank (log-probability 0 for
the blank, -1e4 for each character). CTC over all steps then equals CTC over the clip's own steps (the forced
blanks multiply every alignment by exactly 1; tests/test_transcription.py checks it against `keras.ops.ctc_loss`
with the mask's lengths), so the loss needs no second input. Give `logit_lengths` yourself for logits that are
not masked that way.

Replicas: `mmzoo.trainers.base.global_mean` divides this replica's sum by the example count summed over all
replicas, so the replicas' losses add up to the global mean and 1 and N replicas take the same step. Keras
applies no further replica scaling to a loss whose `__call__` reduces by itself. The logits are cast to
float32 first (mixed_float16 included).

Implementation: "native" (default) runs TensorFlow's CTCLoss kernel on sparse labels (O(time x labels));
"keras" runs `keras.ops.ctc_loss`, which for dense labels is TensorFlow's pure-op `ctc_loss_dense`, whose every
step multiplies a (2L+2) x (2L+2) transition matrix per example: on the 2-core CPU 3x slower for 60-character
labels over 401 steps and 11x for 110 (both agree to float32 rounding, tested). A transcript that cannot fit in
the steps (more labels plus repeats than steps) gets loss 0 with "native" (the example is skipped) and an
infinite one with "keras"; `pack_dataset` weighs such examples 0.
"""

import keras
import tensorflow as tf
from keras import ops

from mmzoo.trainers.base import global_mean

IMPLEMENTATIONS = ("native", "keras")


def label_lengths(labels):
    """int32 [batch]: the non-zero ids of each row of 0-padded labels."""
    return ops.sum(ops.cast(ops.not_equal(labels, 0), "int32"), axis=1)


def ctc_per_example(labels, logits, logit_lengths=None, implementation="native"):
    """float32 [batch]: the CTC negative log-likelihood of each row's labels (0-padded, blank id 0) under its
    logits [batch, steps, classes] (unnormalised; the blank is class 0)."""
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    steps = ops.shape(logits)[1]
    if logit_lengths is None:
        logit_lengths = ops.full((ops.shape(logits)[0],), steps, dtype="int32")
    logit_lengths = ops.cast(logit_lengths, "int32")
    if implementation == "keras":
        return ops.ctc_loss(labels, logits, label_lengths(labels), logit_lengths, mask_index=0)
    # The v1 op takes the blank last: characters 1..V-1 become 0..V-2, the blank V-1.
    shifted = tf.concat([logits[:, :, 1:], logits[:, :, :1]], axis=-1)
    sparse = tf.sparse.from_dense(labels)
    sparse = tf.SparseTensor(sparse.indices, sparse.values - 1, sparse.dense_shape)
    return tf.compat.v1.nn.ctc_loss(sparse, shifted, logit_lengths, preprocess_collapse_repeated=False,
                                    ctc_merge_repeated=True, ignore_longer_outputs_than_inputs=True,
                                    time_major=False)


@keras.saving.register_keras_serializable(package="mmzoo")
class CTCLoss(keras.losses.Loss):
    """`y_true`: int labels [batch, length], 0-padded; `y_pred`: logits [batch, steps, classes] whose padding
    steps are certain blanks (a `SpeechTranscriber`'s output). Returns this replica's share of the global mean
    per-example CTC loss; `sample_weight` [batch] weighs examples (the mean is then over the weights' sum)."""

    def __init__(self, implementation="native", name="ctc_loss", **kwargs):
        super().__init__(name=name, reduction=None, **kwargs)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"`implementation` must be one of {', '.join(IMPLEMENTATIONS)}. "
                             f"Received: implementation={implementation!r}")
        self.implementation = implementation

    def call(self, y_true, y_pred):
        return ctc_per_example(y_true, y_pred, implementation=self.implementation)

    def __call__(self, y_true, y_pred, sample_weight=None):
        per_example = self.call(y_true, y_pred)
        if sample_weight is None:
            return global_mean(per_example)
        weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        # 0 * inf is NaN: an example weighed 0 (a transcript too long for its clip) must not count at all.
        return global_mean(ops.where(weights > 0, per_example, 0.0), weights)

    def get_config(self):
        return {"name": self.name, "implementation": self.implementation}
