"""Image-only, text-only and fused accuracy on mmzoo_shapes/vqa: do the questions need both modalities?

    python bench/baselines.py                                  # small_cnn_lstm_concat, 10 epochs
    python bench/baselines.py --recipe small_cnn_bilstm_attention --epochs 15 --json out.json

The three models are the same recipe trained the same way; the unimodal ones see a blank input for the other
modality in training and test (an all-zero image, or the empty string), so they can only use one. Also reported:
the best any text-only model can do on the test split — the most frequent training answer of each exact question
text — and the majority class. Accuracy is on the test split, overall and per question type.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mmzoo  # noqa: E402  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow is imported)
import mmzoo.data  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from mmzoo.data import shapes  # noqa: E402

MODES = ("fused", "text_only", "image_only")


def _blank(mode):
    def blank(features, label):
        image, text = features["image"], features["text"]
        if mode == "text_only":
            image = tf.zeros_like(image)
        elif mode == "image_only":
            text = tf.fill(tf.shape(text), "")
        return {"image": image, "text": text}, label
    return blank


def _test_set(name, config, data_dir):
    """Test examples in a fixed order, with their question types (numpy)."""
    builder = tfds.builder(name, data_dir=data_dir, config=config) if config else tfds.builder(
        name, data_dir=data_dir)
    images, texts, labels, qtypes = [], [], [], []
    for ex in tfds.as_numpy(builder.as_dataset(split="test")):
        images.append(ex["image"])
        texts.append(ex["text"])
        labels.append(ex["label"])
        qtypes.append(ex["question_type"])
    return np.stack(images), np.array(texts, dtype=object), np.array(labels), np.array(qtypes)


def _per_type(correct, qtypes):
    return {t: float(correct[qtypes == i].mean()) for i, t in enumerate(shapes.QUESTION_TYPES)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="small_cnn_lstm_concat")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--num-train", type=int, default=None,
                        help="train on a config of this many examples instead of the default vqa config")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import keras

    keras.utils.set_random_seed(args.seed)
    config = shapes.shapes_config("vqa", num_train=args.num_train) if args.num_train else None
    name = "mmzoo_shapes" if config else "mmzoo_shapes/vqa"
    train, info = mmzoo.data.load(name, "train", config=config, batch_size=args.batch_size, data_dir=args.data_dir,
                                  seed=args.seed, with_info=True)
    val = mmzoo.data.load(name, "validation", config=config, batch_size=256, data_dir=args.data_dir)
    images, texts, labels, qtypes = _test_set(name, config, args.data_dir)
    results = {
        "command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, TensorFlow {tf.__version__}",
        "recipe": args.recipe, "epochs": args.epochs, "num_train": info.num_examples,
        "num_test": int(len(labels)),
    }

    # Reference points that need no model.
    train_answers = collections.defaultdict(collections.Counter)
    for batch in mmzoo.data.load(name, "train", config=config, batch_size=1024, data_dir=args.data_dir,
                                 shuffle=False).as_numpy_iterator():
        for text, label in zip(batch[0]["text"], batch[1]):
            train_answers[text][int(label)] += 1
    majority = collections.Counter(l for c in train_answers.values() for l, n in c.items() for _ in range(n))
    majority_label = majority.most_common(1)[0][0]
    lookup = np.array([train_answers[t].most_common(1)[0][0] if t in train_answers else majority_label
                       for t in texts])
    results["majority_class"] = {"accuracy": float((labels == majority_label).mean())}
    results["text_lookup"] = {"accuracy": float((lookup == labels).mean()),
                              "per_type": _per_type(lookup == labels, qtypes)}
    print(f"majority class: {results['majority_class']['accuracy']:.3f}; best text-only (answer lookup by exact "
          f"question): {results['text_lookup']['accuracy']:.3f}", flush=True)

    for mode in args.modes.split(","):
        model = mmzoo.build_model(args.recipe, **info.model_kwargs())
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        start = time.perf_counter()
        history = model.fit(train.map(_blank(mode)), validation_data=val.map(_blank(mode)), epochs=args.epochs,
                            verbose=2)
        seconds = time.perf_counter() - start
        test = tf.data.Dataset.from_tensor_slices(
            ({"image": images, "text": texts.astype(str)}, labels)).batch(256).map(_blank(mode))
        predicted = np.argmax(model.predict(test, verbose=0), axis=-1)
        correct = predicted == labels
        results[mode] = {"accuracy": float(correct.mean()), "per_type": _per_type(correct, qtypes),
                         "val_accuracy_per_epoch": [float(a) for a in history.history["val_accuracy"]],
                         "train_seconds": seconds}
        print(f"{mode}: test accuracy {correct.mean():.3f}  "
              + "  ".join(f"{t} {a:.2f}" for t, a in results[mode]["per_type"].items()), flush=True)

    if all(m in results for m in MODES):
        margin = results["fused"]["accuracy"] - max(results["text_only"]["accuracy"],
                                                    results["image_only"]["accuracy"])
        results["fused_minus_best_unimodal"] = margin
        print(f"fused - best unimodal = {100 * margin:.1f} points")
    print("\n| model | test accuracy | " + " | ".join(shapes.QUESTION_TYPES) + " |")
    print("|---|---:|" + "---:|" * len(shapes.QUESTION_TYPES))
    for key in ("majority_class", "text_lookup") + MODES:
        if key in results:
            per = results[key].get("per_type", {})
            print(f"| {key} | {results[key]['accuracy']:.3f} | "
                  + " | ".join(f"{per[t]:.3f}" if t in per else "" for t in shapes.QUESTION_TYPES) + " |")
    print(f"\nCommand: `{results['command']}`\nMachine: {results['machine']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
