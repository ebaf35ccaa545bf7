"""What a trained glimpse model's fusion computes on the bundled vqa test split: the numbers that told why some
seeds of the main job stalled (docs/cli.md, "The main job, measured").

    python bench/glimpse_diagnostics.py --model runs/coord_cnn_gru_glimpse/model.keras

Prints, for position questions, how well each relation head's offset follows the true offset of the two named
objects (correlation, column and row) and the mean relation readout per relation word ("sign" readout only: the
signs must differ between "left of" and "right of"); for count questions, each glimpse's count against the true
count; for "is there" questions, each glimpse's peak gate against the answer.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mmzoo  # noqa: E402  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow is imported)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from mmzoo.data import shapes  # noqa: E402
from mmzoo.fusion.base import masked_mean  # noqa: E402
from mmzoo.fusion.glimpse import GlimpseFusion  # noqa: E402

RELATIONS = ("left of", "right of", "above", "below")


def _glimpse_inputs(model, examples):
    """(the glimpse layer, what it sees for `examples`: its look() dict, text tokens, text mask)."""
    backbone = model.backbone
    layer = next(layer for layer in backbone._flatten_layers() if isinstance(layer, GlimpseFusion))
    token_ids = mmzoo.get_vectorizer(model)(tf.constant([e["text"] for e in examples]))
    images = tf.constant(np.stack([e["image"] for e in examples]))
    features = keras.Model(backbone.inputs, layer.input)(
        {i.name: token_ids if "token" in i.name else images for i in backbone.inputs})
    text_mask = tf.not_equal(token_ids, 0)
    return layer, layer.look(features, mask=[None, text_mask]), features[1], text_mask


def _named_offsets(example):
    """(relation words, column and row of the first named object minus the second's) of a position question."""
    words = example["text"].decode().replace("?", "").split()
    rest = " ".join(words[4:])
    relation = next(r for r in RELATIONS if rest.startswith(r))
    second = rest[len(relation):].split()[1:3]
    objects = example["objects"]
    names = [(shapes.COLORS[c], shapes.SHAPES[s]) for c, s in zip(objects["color"], objects["shape"])]
    centres = [((b[1] + b[3]) / 2, (b[0] + b[2]) / 2) for b in objects["bbox"]]
    first, other = centres[names.index((words[2], words[3]))], centres[names.index(tuple(second))]
    return relation, (first[0] - other[0], first[1] - other[1])


def _position(model, examples):
    layer, seen, text, text_mask = _glimpse_inputs(model, examples)
    relation = np.asarray(seen["relation"])  # (batch, heads, 2)
    words, offsets = zip(*map(_named_offsets, examples))
    words, offsets = np.array(words), np.array(offsets)
    for head in range(relation.shape[1]):
        corr = [np.corrcoef(relation[:, head, axis], offsets[:, axis])[0, 1] for axis in (0, 1)]
        print(f"position: relation head {head}: correlation with the true offset, column {corr[0]:.2f}, "
              f"row {corr[1]:.2f}")
    if layer.relation_readout == "sign":
        signs = np.tanh(np.asarray(layer.relation_signs(masked_mean(text, text_mask))))
        for word in RELATIONS:
            print(f"position: mean signs for {word!r}: {np.round(signs[words == word].mean(0), 2)}")


def _count_and_exists(model, examples_by_type):
    layer, seen, _, _ = _glimpse_inputs(model, examples_by_type["count"])
    truth = np.array([("zero", "one", "two", "three").index(shapes.ANSWERS[e["label"]])
                      for e in examples_by_type["count"]])
    count = np.asarray(seen["count"])
    print(f"count: gate bias {float(np.asarray(layer.gate_bias_weight)):.2f}; per glimpse, correlation with the "
          f"true count {np.round([np.corrcoef(count[:, g], truth)[0, 1] for g in range(count.shape[1])], 2)}, "
          f"mean count {np.round(count.mean(0), 2)}")
    _, seen, _, _ = _glimpse_inputs(model, examples_by_type["exists"])
    yes = np.array([shapes.ANSWERS[e["label"]] == "yes" for e in examples_by_type["exists"]], float)
    peak = np.asarray(seen["peak"])
    print(f"exists: per glimpse, correlation of the peak gate with 'yes' "
          f"{np.round([np.corrcoef(peak[:, g], yes)[0, 1] for g in range(peak.shape[1])], 2)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a .keras file of a glimpse model with relation heads")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    by_type = {name: [] for name in shapes.QUESTION_TYPES}
    for example in tfds.as_numpy(tfds.load("mmzoo_shapes/vqa", split=args.split, data_dir=args.data_dir)):
        by_type[shapes.QUESTION_TYPES[example["question_type"]]].append(example)
    model = mmzoo.load_model(args.model)
    _position(model, by_type["position"])
    _count_and_exists(model, by_type)


if __name__ == "__main__":
    main()
