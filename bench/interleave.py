"""Training-step time of several Keras models in ONE process, one step of each in turn: ratios that survive load.

On a shared machine whose load swings within seconds, child processes run minutes apart see different machines.
Here every round times one `train_on_batch` of each model back to back, so each ratio compares steps taken
seconds apart under the same load. Only knobs that live inside a model can be compared this way (thread pools
and oneDNN are per process: use bench/ablation.py for those).

    python bench/interleave.py --image-size 64 --batch-size 32 --rounds 10 mmzoo keras keras_fused_bn
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import mmzoo  # noqa: E402,F401  (sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported)

MODELS = {
    "mmzoo": "the mmzoo recipe (bench/common.py build_mmzoo_model), raw strings in, mmzoo.compile_model (fused Adam)",
    "mmzoo_keras_adam": "mmzoo compiled with keras.optimizers.Adam instead of mmzoo's fused Adam",
    "keras": "hand-written plain Keras (keras.applications.ResNet50 + Embedding + LSTM)",
    "keras_fused_bn": "keras with mmzoo.towers.normalization.fuse_batch_normalization on the ResNet50",
    "keras_fused_adam": "keras compiled with mmzoo.optimizers.Adam (ResourceApplyAdam) instead of Keras' Adam",
    "keras_lstm_unroll": "keras with LSTM(unroll=True)",
    "keras_no_lstm_dropout": "keras with LSTM(dropout=0)",
    "keras_image_only": "keras without the text tower",
    "keras_text_only": "keras without the image tower",
}


def build(name, image_size):
    """(model, input kind, optimizer): mmzoo models train with mmzoo's fused Adam unless named otherwise."""
    import keras

    from common import build_keras_model, build_mmzoo_model
    from mmzoo.optimizers import Adam

    if name.startswith("mmzoo"):
        return build_mmzoo_model(image_size), "strings", keras.optimizers.Adam() if name == "mmzoo_keras_adam" else Adam()
    optimizer = Adam() if name == "keras_fused_adam" else keras.optimizers.Adam()
    kwargs = {
        "keras": {},
        "keras_fused_adam": {},
        "keras_fused_bn": {"fused_bn": True},
        "keras_lstm_unroll": {"lstm_kwargs": {"unroll": True}},
        "keras_no_lstm_dropout": {"lstm_kwargs": {"dropout": 0.0}},
        "keras_image_only": {"text": False},
        "keras_text_only": {"image": False},
    }[name]
    return build_keras_model(image_size, **kwargs), "ids", optimizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", choices=sorted(MODELS), metavar="MODEL")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from common import synthetic_batch
    from mmzoo.optimizers import compile_model

    steps = {}
    for name in args.models:
        keras.utils.set_random_seed(0)
        model, kind, optimizer = build(name, args.image_size)
        compile_model(model, optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x, y = synthetic_batch(args.batch_size, args.image_size, kind=kind, rng=np.random.default_rng(0))
        names = {i.name for i in model.inputs}
        x = {k: tf.constant(list(v) if k == "text" else v) for k, v in x.items() if k in names}
        y = tf.constant(y)
        steps[name] = (lambda model=model, x=x, y=y: model.train_on_batch(x, y))
        for _ in range(1 + args.warmup):
            steps[name]()
    times = {name: [] for name in steps}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    first = args.models[0]
    print(f"{args.image_size} px, batch {args.batch_size}, {args.rounds} interleaved rounds; "
          f"load average {min(loads):.2f}-{max(loads):.2f}")
    print(f"| model | median step, s | samples/s | vs {first} (median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        ratio = statistics.median(a / b for a, b in zip(times[first], values))
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {args.batch_size / median:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
