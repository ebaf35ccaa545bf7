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


def test_a_0_1_0_model_with_a_frozen_tower_stays_frozen(tmp_path, cases):
    import keras

    import mmzoo.classifier  # noqa: F401  (registers mmzoo's layers for the plain Keras load)

    legacy = keras.saving.load_model(os.path.join(FIXTURES, "concat.keras"))  # the 0.1.0 functional model
    assert type(legacy).__name__ == "Functional"
    tower = next(layer for layer in legacy.get_layer("backbone").layers if layer.name.endswith("_tower"))
    tower.trainable = False  # as 0.1.0's `mmzoo train` saved its model after object pretraining
    legacy.save(tmp_path / "frozen.keras")
    model = mmzoo.load_model(tmp_path / "frozen.keras")
    assert type(model).__name__ == "MultimodalClassifier"
    assert not mmzoo.get_image_tower(model).trainable
    assert all(not w.trainable for w in mmzoo.get_image_tower(model).weights)
    assert model.backbone.get_layer("fusion").trainable
    np.testing.assert_allclose(np.asarray(model(_feed(cases, "concat"), training=False)), cases["concat/logits"],
                               rtol=1e-5, atol=1e-5)
