"""What every mmzoo trainer shares: raw data turned numeric in the input pipeline, and losses that stay correct
under `tf.distribute` and mixed precision.

Three rules, each from a measured failure (docs/architecture.md):

* Strings never enter the replicated graph. `fit`/`evaluate` map the trainer's `preprocess` (a model's own
  input-pipeline preprocessing through `mmzoo.preprocessing.preprocess_features`, then masking or anything
  random) over the `tf.data.Dataset` first, keras-hub style, so `train_step` sees only numbers and the same
  global batch gives the same step on 1 or N replicas.
* Every loss part is *replica-scaled*: its sum over replicas is the global-batch value. Keras loss objects do this
  already (they divide by the number of replicas); `global_mean` does it for masked or weighted means whose counts
  differ between replicas. Gradients are summed across replicas, so the step equals the 1-replica step.
* The total is passed through `optimizer.scale_loss` inside the tape (a no-op, or the loss scale of a
  `LossScaleOptimizer` under `mixed_float16`).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

AUTOTUNE = tf.data.AUTOTUNE


def global_mean(values, weights=None):
    """Replica-scaled weighted mean: this replica's weighted sum over the weight summed across all replicas.

    Summing the result over replicas gives the exact mean over the global batch even when replicas hold different
    numbers of counted items (e.g. masked tokens). Returns 0 when nothing is counted anywhere.
    """
    values = ops.cast(values, "float32")
    weights = ops.ones_like(values) if weights is None else ops.cast(weights, "float32")
    local_sum = ops.sum(values * weights)
    count = _sum_over_replicas(ops.sum(weights))
    return local_sum / ops.maximum(count, 1e-9)


def global_value(replica_scaled):
    """The global-batch value of a replica-scaled loss (what a metric should report), on every replica."""
    return _sum_over_replicas(ops.cast(replica_scaled, "float32"))


def _sum_over_replicas(value):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


class Trainer(keras.Model):
    """A `keras.Model` that trains other models with its own objective, through plain `fit` and `evaluate`.

    Subclasses pass `loss_names` (the first is the total, `"loss"`) and implement:
      * `preprocess(x, y, seed)`: a batch of raw `(features, label)` -> numeric `(x, y)`; runs in tf.data. A model's
        own preprocessing goes through `mmzoo.preprocessing.preprocess_features(model, features)`, nothing else.
      * `call(x, training)`: the trainer's predictions on preprocessed `x` (Keras traces it to build state under
        a distribution strategy).
      * `compute_losses(x, y, sample_weight, training)`: a dict of replica-scaled scalar losses whose `"loss"` entry
        is the total to minimise; the other entries are reported as metrics.
      * `update_extra_metrics(x, y, outputs)` (optional) and `extra_metrics` for metrics other than losses.
      * `inference_model`: what `mmzoo.export_model(trainer, ...)` exports (the trainer itself never is).
    """

    def __init__(self, loss_names=("loss",), seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be None or an integer. Received: seed={seed!r}")
        # Random choices made in `preprocess` (masks) come from stateless ops seeded per batch from this seed, so
        # they do not depend on how many replicas or parallel map calls there are.
        self.seed = int(np.random.randint(0, 2**31 - 1)) if seed is None else seed
        self.loss_trackers = [keras.metrics.Mean(name=name) for name in loss_names]

    # === Data: raw batches in, numbers out, before distribution ===

    def preprocess(self, x, y, seed):
        """One raw batch -> numeric `(x, y)`. `seed`: an int64 [2] tensor for stateless random ops."""
        return x, y

    def _prepare(self, data, argument, training):
        if data is None:
            return None
        if not isinstance(data, tf.data.Dataset):
            raise ValueError(
                f"{type(self).__name__} trains on a batched tf.data.Dataset of (features, label) pairs "
                f"(e.g. mmzoo.data.load(...)), so its text can be turned into numbers in the input pipeline. "
                f"Received: {argument}={type(data).__name__}"
            )
        # Training draws new masks every epoch; evaluation sees the same ones every time.
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=training).batch(2)
        return tf.data.Dataset.zip(data, seeds).map(self._preprocess_element, num_parallel_calls=AUTOTUNE).prefetch(
            AUTOTUNE
        )

    def _preprocess_element(self, element, seed):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element)
        x, y = self.preprocess(x, y, seed)
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def fit(self, x=None, y=None, validation_data=None, **kwargs):
        if y is not None:
            raise ValueError(f"Give labels inside the dataset `x`, not as `y`. Received: y={type(y).__name__}")
        return super().fit(
            self._prepare(x, "x", training=True),
            validation_data=self._prepare(validation_data, "validation_data", training=False),
            **kwargs,
        )

    def evaluate(self, x=None, y=None, **kwargs):
        if y is not None:
            raise ValueError(f"Give labels inside the dataset `x`, not as `y`. Received: y={type(y).__name__}")
        if kwargs.get("_use_cached_eval_dataset"):  # `fit` validating on the data it already prepared
            return super().evaluate(x, **kwargs)
        return super().evaluate(self._prepare(x, "x", training=False), **kwargs)

    # === Steps ===

    def compute_losses(self, x, y, sample_weight=None, training=False):
        raise NotImplementedError

    @property
    def extra_metrics(self):
        return []

    def update_extra_metrics(self, x, y, outputs):
        pass

    @property
    def metrics(self):
        return list(self.loss_trackers) + list(self.extra_metrics)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            losses, outputs = self.compute_losses(x, y, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(losses["loss"])
        gradients = tape.gradient(scaled, variables)
        used = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        self.optimizer.apply([g for g, _ in used], [v for _, v in used])
        return self._report(losses, x, y, outputs)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        losses, outputs = self.compute_losses(x, y, sample_weight, training=False)
        return self._report(losses, x, y, outputs)

    def _report(self, losses, x, y, outputs):
        for tracker in self.loss_trackers:
            tracker.update_state(global_value(losses[tracker.name]))
        self.update_extra_metrics(x, y, outputs)
        return {metric.name: metric.result() for metric in self.metrics}

    @property
    def inference_model(self):
        raise NotImplementedError

    def export(self, filepath, *args, **kwargs):
        raise ValueError(
            f"A {type(self).__name__} is a training wrapper and is never exported. Export what it trained: "
            "mmzoo.export_model(trainer, path) exports `trainer.inference_model`."
        )


def check_fraction(value, name, *, low_open=True, high_open=True):
    """`value` as a float in (0, 1) (or with closed ends), else a ValueError naming `name`."""
    low_ok = (lambda v: v > 0.0) if low_open else (lambda v: v >= 0.0)
    high_ok = (lambda v: v < 1.0) if high_open else (lambda v: v <= 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low_ok(value) and high_ok(value)):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must be a number in {interval}. Received: {name}={value!r}")
    return float(value)
