"""Training on several devices or machines: a strategy from a name or TF_CONFIG, who is chief, and the Keras 3.15
workarounds that `fit` needs under `MultiWorkerMirroredStrategy`.

`mmzoo.train(..., strategy="multiworker")` uses these; a launcher of its own can too. Every worker runs the same
function with its own `TF_CONFIG` (JSON: the cluster's ``host:port`` lists and this process's task in it)::

    strategy, worker = mmzoo.distribute.make_strategy("multiworker")   # before TensorFlow runs anything
    with strategy.scope():
        model = mmzoo.build_model(...)
        mmzoo.compile_model(mmzoo.get_backbone(model), ...)
    ds = shard_by_batch(mmzoo.preprocessing.preprocess_dataset(model, raw_ds))
    patch_for_multiworker(mmzoo.get_backbone(model), strategy, ds.element_spec)
    mmzoo.get_backbone(model).fit(ds)
    output_dir = worker.output_dir("runs/x")    # the chief writes there, the others into a temporary folder

Ray Train's `TensorflowTrainer` only starts the workers and sets `TF_CONFIG` on each, so its per-worker function
is a plain call of `mmzoo.train` (ray is not a dependency of mmzoo)::

    from ray.train import ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    def train_loop_per_worker(config):
        import mmzoo   # first: it sets TensorFlow's oneDNN flag before TensorFlow is imported

        mmzoo.train(config["recipe"], config["data"], strategy="multiworker", epochs=config["epochs"],
                    batch_size=config["batch_size"],       # the global batch, split over all replicas
                    output_dir=config["output_dir"],       # on storage every worker can reach
                    export_dir=config["export_dir"])       # only the chief's export remains

    TensorflowTrainer(train_loop_per_worker, scaling_config=ScalingConfig(num_workers=2),
                      train_loop_config={"recipe": "small_cnn_lstm_concat", "data": "mmzoo_shapes/vqa",
                                         "epochs": 5, "batch_size": 64, "output_dir": "/shared/runs/x",
                                         "export_dir": "/shared/saved_models/x"}).fit()

TensorFlow is imported only inside the functions: `MultiWorkerMirroredStrategy` must be created before TensorFlow
runs any operation, and importing this module runs none.
"""

import dataclasses
import json
import os

STRATEGIES = ("default", "mirrored", "multiworker")

_TF_CONFIG_EXAMPLE = (
    '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
)

__all__ = [
    "STRATEGIES",
    "Worker",
    "is_multi_worker",
    "make_strategy",
    "patch_for_multiworker",
    "read_tf_config",
    "shard_by_batch",
    "worker_of",
]


@dataclasses.dataclass(frozen=True)
class Worker:
    """Where this process stands: the kind of strategy ("default", "mirrored", "multiworker"), chief or not, its
    task in the cluster, and a name for messages.

    On one machine (the default or a mirrored strategy) the process is the chief. In a cluster the chief is the
    task of type "chief" if there is one, else worker 0, as in Keras' multi-worker guide.
    """

    kind: str = "default"
    is_chief: bool = True
    task_type: str | None = None
    task_id: int = 0
    num_workers: int = 1
    replicas: int = 1

    @property
    def description(self):
        if self.kind == "multiworker":
            return f"{self.task_type} {self.task_id} of a {self.num_workers}-worker cluster"
        if self.kind == "mirrored":
            return f"MirroredStrategy ({self.replicas} replica{'s' if self.replicas != 1 else ''})"
        return "one device"

    def output_dir(self, chief_output_dir):
        """Where this worker writes: `chief_output_dir` for the chief; a folder of its own inside it for the
        others (``workertemp_<index>``), which they delete when done. Every worker must save what it trained (some
        reads are collective operations all workers join), but only one copy may land in the shared place."""
        if self.is_chief:
            return chief_output_dir
        return os.path.join(chief_output_dir, f"workertemp_{self.task_id}")


def read_tf_config():
    """``(cluster, task type, task index)`` from the ``TF_CONFIG`` environment variable.

    Raises a one-line ValueError when it is missing or not of the form
    ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "a multi-worker cluster is read from the TF_CONFIG environment variable, which is not set; "
            f"e.g. TF_CONFIG={_TF_CONFIG_EXAMPLE}"
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, task_id = task["type"], int(task["index"])
        workers = cluster[task_type]
        if not isinstance(workers, list) or not 0 <= task_id < len(workers):
            raise KeyError("index")
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"TF_CONFIG must be JSON with a \"cluster\" of host:port lists and this process's \"task\" (its type and "
            f"index in that list), e.g. {_TF_CONFIG_EXAMPLE}. Received: TF_CONFIG={text!r}"
        ) from None
    return cluster, task_type, task_id


def make_strategy(strategy="default"):
    """``(tf.distribute.Strategy, Worker)`` for a strategy name or object.

    Args:
        strategy: ``"default"`` (one device), ``"mirrored"`` (`tf.distribute.MirroredStrategy`: all local GPUs, or
            the CPU), ``"multiworker"`` (`tf.distribute.MultiWorkerMirroredStrategy` over the cluster in
            ``TF_CONFIG``), or a `tf.distribute.Strategy` you created.

    Create it before TensorFlow runs anything else: `MultiWorkerMirroredStrategy` fails after that.
    """
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ValueError(f"`strategy` must be one of {', '.join(STRATEGIES)} or a tf.distribute.Strategy. "
                             f"Received: strategy={strategy!r}")
        if strategy == "multiworker":
            read_tf_config()  # a one-line error before TensorFlow's own, longer one
    import tensorflow as tf

    if strategy == "default":
        strategy = tf.distribute.get_strategy()
    elif strategy == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif strategy == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"`strategy` must be one of {', '.join(STRATEGIES)} or a tf.distribute.Strategy. "
                         f"Received: strategy={strategy!r}")
    return strategy, worker_of(strategy)


def is_multi_worker(strategy):
    """Whether `strategy` spans several workers (the case Keras' trainer treats apart, and the workarounds fix)."""
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def worker_of(strategy):
    """The `Worker` this process is under `strategy`."""
    import tensorflow as tf

    if not is_multi_worker(strategy):
        if isinstance(strategy, tf.distribute.MirroredStrategy):
            return Worker("mirrored", replicas=strategy.num_replicas_in_sync)
        return Worker()
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    task_type, task_id = resolver.task_type, int(resolver.task_id)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    num_workers = sum(len(cluster.get(kind, ())) for kind in ("chief", "worker"))
    return Worker("multiworker", is_chief, task_type, task_id, num_workers, strategy.num_replicas_in_sync)


def shard_by_batch(dataset):
    """`dataset` marked to be sharded by batch under `MultiWorkerMirroredStrategy`.

    Every worker builds the same, identically seeded pipeline and keeps its share of the batches: a dataset with
    fewer files than the cluster has workers cannot be sharded by file.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def patch_for_multiworker(model, strategy, element_spec):
    """Let Keras 3.15's `fit`/`evaluate` run `model` under a multi-worker `strategy` (patches this instance).

    Call it after `compile`, with the `element_spec` of the dataset `model` will be fitted on. It works around two
    failures:

    1. The TensorFlow trainer builds the metrics and optimizer from the first distributed batch, which it averages
       with `strategy.reduce`; MultiWorkerMirroredStrategy reduces one tensor, not a dict of inputs ("Attempt to
       convert a value ({'image': PerReplica...}) to a Tensor"). Built here from the data's tensor specs, nothing
       is left for that step, which is skipped.
    2. It averages each step's logs across workers with `strategy.reduce("MEAN", v, axis=0)`, but the logs are
       scalars ("Invalid reduction dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388). The
       steps here return them with a batch axis of one, which that reduction averages back to a scalar.

    Outside multi-worker mode it does nothing: there the trainer needs neither.
    """
    if not is_multi_worker(strategy):
        return model
    from keras import ops

    with strategy.scope():
        model._symbolic_build(data_batch=element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def with_batch_axis(step):
        def wrapped(data):
            logs = step(data)
            return {key: ops.reshape(value, (1,)) if len(value.shape) == 0 else value for key, value in logs.items()}

        return wrapped

    model.train_step = with_batch_axis(model.train_step)
    model.test_step = with_batch_axis(model.test_step)
    return model
