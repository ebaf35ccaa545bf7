"""Files written by mmzoo 0.1.0 (tests/fixtures/v0_1_0, made by tests/fixtures/make_v0_1_0.py) still load and
give the predictions 0.1.0 gave."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import mmzoo

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "v0_1_0")
with open(os.path.join(FIXTURES, "manifest.json")) as _f:
    MANIFEST = json.load(_f)


@pytest.fixture(scope="module")
def cases():
    with np.load(os.path.join(FIXTURES, "cases.npz")) as data:
        return {key: data[key] for key in data.files}


def _feed(cases, name):
    feed = {"text": tf.constant([str(t) for t in cases[f"{name}/text"]])}
    if f"{name}/image" in cases:
        feed["image"] = tf.constant(cases[f"{name}/image"])
    return feed


@pytest.mark.parametrize("name", sorted(MANIFEST["models"]))
def test_a_0_1_0_keras_file_loads_and_predicts_as_before(name, cases):
    model = mmzoo.load_model(os.path.join(FIXTURES, f"{name}.keras"))
    assert type(model).__name__ == "MultimodalClassifier"
    logits = model(_feed(cases, name), training=False)
    np.testing.assert_allclose(np.asarray(logits), cases[f"{name}/logits"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MANIFEST["exported"])
def test_a_0_1_0_export_loads_and_serves_as_before(name, cases):
    served = mmzoo.load_exported(os.path.join(FIXTURES, f"{name}_export"))
    inputs = {"text": [str(t) for t in cases[f"{name}/text"]], "image": cases[f"{name}/image"]}
    outputs = served(inputs)
    np.testing.assert_allclose(outputs["probabilities"], cases[f"{name}/probabilities"], rtol=1e-5, atol=1e-6)
    assert outputs["label"].tolist() == [["red", "blue", "two"][i] for i in cases[f"{name}/probabilities"].argmax(-1)]
