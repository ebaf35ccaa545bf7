"""Tests of the `mmzoo_shapes` TFDS builder: the TFDS contract, determinism, and the question design."""

import collections
import hashlib
import json
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

import mmzoo.data
from mmzoo.data import shapes

DUMMY_DATA = pathlib.Path(shapes.__file__).parent / "dummy_data"


class MmzooShapesVqaTest(tfds.testing.DatasetBuilderTestCase):
    """The TFDS contract (build, splits, reload, specs) on tiny configs of both tasks."""

    DATASET_CLASS = shapes.MmzooShapes
    BUILDER_CONFIG_NAMES_TO_TEST = [shapes.shapes_config("vqa", num_train=6, num_validation=3, num_test=2)]
    SPLITS = {"train": 6, "validation": 3, "test": 2}
    SKIP_CHECKSUMS = True


class MmzooShapesCaptionsTest(MmzooShapesVqaTest):
    BUILDER_CONFIG_NAMES_TO_TEST = [
        shapes.shapes_config("captions", image_size=32, num_train=6, num_validation=3, num_test=2)]


def _fingerprint(example: dict) -> dict:
    return {
        "text": example["text"],
        "label": example["label"],
        "pixels_sha256": hashlib.sha256(np.ascontiguousarray(example["image"]).tobytes()).hexdigest(),
    }


def golden_examples() -> dict:
    """Fingerprints of the first examples of every split, as stored in dummy_data/golden_v<VERSION>.json."""
    return {
        f"{task}/{split}/{i}": _fingerprint(shapes.generate_example(task, split, i))
        for task in ("vqa", "captions") for split in ("train", "validation", "test") for i in range(3)
    }


def test_generation_matches_the_released_version():
    """Same version -> same examples. If this fails, you changed generation: bump MmzooShapes.VERSION and write
    dummy_data/golden_v<VERSION>.json from golden_examples()."""
    expected = json.loads((DUMMY_DATA / f"golden_v{shapes.MmzooShapes.VERSION}.json").read_text())
    assert golden_examples() == expected


def test_generation_is_deterministic_and_splits_differ():
    a = shapes.generate_example("vqa", "train", 7)
    b = shapes.generate_example("vqa", "train", 7)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["text"] == b["text"] and a["label"] == b["label"]
    c = shapes.generate_example("vqa", "test", 7)
    assert not np.array_equal(a["image"], c["image"])
    d = shapes.generate_example("vqa", "train", 7, seed=1)
    assert not np.array_equal(a["image"], d["image"])


def test_png_encoder_round_trips():
    import tensorflow as tf

    image = shapes.generate_example("captions", "train", 0, image_size=40)["image"]
    np.testing.assert_array_equal(tf.io.decode_png(shapes.encode_png(image)).numpy(), image)


def test_answers_are_balanced_within_each_question_type():
    """Text alone must not predict the answer: within a question type, answers are (close to) uniform, also
    conditioned on the word the question names."""
    per_type = collections.defaultdict(collections.Counter)
    for i in range(1500):
        ex = shapes.generate_example("vqa", "train", i)
        per_type[ex["question_type"]][ex["label"]] += 1
    expected = {
        "color_of_shape": set(shapes.COLORS), "shape_of_color": set(shapes.SHAPES),
        "exists": {"yes", "no"}, "count": set(shapes.COUNTS), "position": {"yes", "no"},
    }
    assert set(per_type) == set(shapes.QUESTION_TYPES)
    for qtype, counts in per_type.items():
        assert set(counts) == expected[qtype], qtype
        total = sum(counts.values())
        # The most frequent answer is at most 1.5x its uniform share.
        assert max(counts.values()) / total < 1.5 / len(counts), (qtype, counts)


def test_questions_agree_with_the_objects():
    for i in range(300):
        ex = shapes.generate_example("vqa", "validation", i)
        objs = list(zip(ex["objects"]["shape"], ex["objects"]["color"]))
        text, answer, qtype = ex["text"], ex["label"], ex["question_type"]
        assert 1 <= len(objs) <= 4
        if qtype == "color_of_shape":
            shape = next(s for s in shapes.SHAPES if f" {s}" in text)
            assert [c for s, c in objs if s == shape] == [answer]
        elif qtype == "shape_of_color":
            color = next(c for c in shapes.COLORS if f" {c}" in text)
            assert [s for s, c in objs if c == color] == [answer]
        elif qtype == "exists":
            pair = next((s, c) for s in shapes.SHAPES for c in shapes.COLORS if f"{c} {s}" in text)
            assert (pair in objs) == (answer == "yes")
        elif qtype == "count":
            n = shapes.COUNTS.index(answer)
            if any(f"{s}s" in text for s in shapes.SHAPES):
                shape = next(s for s in shapes.SHAPES if f"{s}s" in text)
                assert sum(s == shape for s, _ in objs) == n
            else:
                color = next(c for c in shapes.COLORS if f" {c} " in text)
                assert sum(c == color for _, c in objs) == n
        elif qtype == "position":
            named = [(s, c) for c in shapes.COLORS for s in shapes.SHAPES if f"{c} {s}" in text]
            relation = next(r for r in ("left of", "right of", "above", "below") if r in text)
            first, second = sorted(named, key=lambda pair: text.index(f"{pair[1]} {pair[0]}"))
            ya0, xa0, ya1, xa1 = ex["objects"]["bbox"][objs.index(first)]
            yb0, xb0, yb1, xb1 = ex["objects"]["bbox"][objs.index(second)]
            truth = {"left of": xa1 <= xb0, "right of": xa0 >= xb1, "above": ya1 <= yb0, "below": ya0 >= yb1}
            assert truth[relation] == (answer == "yes"), (text, answer)


def test_config_validation():
    with pytest.raises(ValueError, match="task"):
        shapes.shapes_config("segmentation")
    with pytest.raises(ValueError, match="num_train"):
        shapes.shapes_config("vqa", num_train=0)
    with pytest.raises(ValueError, match="image_size"):
        shapes.shapes_config("vqa", image_size=8)


def test_registered_with_tfds():
    assert "mmzoo_shapes" in tfds.list_builders()
    builder = tfds.builder("mmzoo_shapes/captions", data_dir="/nonexistent-mmzoo-test-dir")
    assert builder.info.features["label"].num_classes == len(shapes.CAPTION_LABELS)
    assert builder.info.version == shapes.MmzooShapes.VERSION
    assert mmzoo.data.MmzooShapes is shapes.MmzooShapes
