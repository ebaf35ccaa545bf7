"""Test accuracy of a trained vqa model per question type (what it can and cannot answer yet).

    mmzoo train && python bench/per_question_type.py --model runs/coord_cnn_gru_glimpse/model.keras

`--model` is a `.keras` file (as `mmzoo train` saves) or an exported SavedModel. Prints one markdown row.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mmzoo  # noqa: E402  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow is imported)
import mmzoo.data  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from mmzoo.data import shapes  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a .keras file or an exported SavedModel directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    examples = list(tfds.as_numpy(tfds.load("mmzoo_shapes/vqa", split=args.split, data_dir=args.data_dir)))
    images = np.stack([e["image"] for e in examples])
    texts = tf.constant([e["text"] for e in examples])
    labels = np.array([e["label"] for e in examples])
    types = np.array([e["question_type"] for e in examples])
    if args.model.endswith(".keras"):
        scores = mmzoo.load_model(args.model).predict({"image": images, "text": texts}, batch_size=256, verbose=0)
    else:
        served = mmzoo.load_exported(args.model)
        scores = np.concatenate([np.asarray(served({"image": images[i:i + 256], "text": texts[i:i + 256]})["probabilities"])
                                 for i in range(0, len(images), 256)])
    correct = np.argmax(scores, axis=-1) == labels
    print("| model | test accuracy | " + " | ".join(shapes.QUESTION_TYPES) + " |")
    print("|---|---:|" + "---:|" * len(shapes.QUESTION_TYPES))
    print(f"| {args.model} | {correct.mean():.3f} | "
          + " | ".join(f"{correct[types == i].mean():.3f}" for i in range(len(shapes.QUESTION_TYPES))) + " |")


if __name__ == "__main__":
    main()
