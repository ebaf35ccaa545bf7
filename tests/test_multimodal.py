"""Models over any set of named inputs: a classifier of two images and a question, end to end (build, fit,
.keras round trip, export, serve), and what a model says about itself."""


import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from helpers import CLASS_NAMES, VOCABULARY, tiny_overrides

pytestmark = pytest.mark.xdist_group("multimodal")

TOWERS = {"front": "small_cnn", "side": "small_cnn", "question": "gru"}


def _three_input_batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    features = {
        "front": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
        "side": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
        "question": np.array(["what color is the circle", "how many", "is the square left of the circle",
                              "red"] * (n // 4), dtype=object),
    }
    return features, np.arange(n) % len(CLASS_NAMES)


def _tensors(features):
    """The batch as tensors (Keras does not take a dict mixing NumPy arrays and string tensors)."""
    return {key: tf.constant(list(value) if key == "question" else value) for key, value in features.items()}


def _dataset(n=16):
    features, labels = _three_input_batch(n)
    features["question"] = tf.constant(list(features["question"]))
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)


def _build(fusion="concat", **extra):
    options = tiny_overrides(**extra)
    return mmzoo.build_classifier(towers=TOWERS, fusion=fusion, **options)


def _png(image):
    return tf.io.encode_png(image).numpy()


def test_a_model_knows_its_inputs_towers_and_parts():
    model = _build()
    assert isinstance(model, mmzoo.MultimodalClassifier)
    assert list(model.modalities) == ["front", "side", "question"]
    assert [m.kind for m in model.modalities.values()] == ["image", "image", "text"]
    assert model.modalities["question"].backbone_key == "question_token_ids"
    assert model.modalities["front"].image_size == 32 and model.modalities["question"].sequence_length == 8
    assert set(model.backbone.input) == {"front", "side", "question_token_ids"}
    assert set(model.vectorizers) == {"question"} and set(model.image_towers) == {"front", "side"}
    assert model.image_towers["front"] is not model.image_towers["side"]
    assert model.class_names == CLASS_NAMES and model.num_classes == 3
    assert model.fusion.name == "fusion" and model.head.name == "head"
    features, _ = _three_input_batch(4)
    ids = model.preprocess_inputs({**features, "question": tf.constant(["what color"] * 4)})
    np.testing.assert_array_equal(ids["question_token_ids"].numpy()[0, :3], [2, 3, 0])


def test_get_config_is_the_builder_arguments_and_from_config_rebuilds_the_model():
    model = _build(fusion="gated")
    config = model.get_config()
    assert config["towers"] == TOWERS and config["fusion"] == "gated" and config["vocabulary"] == VOCABULARY
    rebuilt = mmzoo.MultimodalClassifier.from_config(config)
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights]
    assert [layer.name for layer in rebuilt.backbone.layers] == [layer.name for layer in model.backbone.layers]


def test_per_input_options_override_the_shared_ones():
    towers = {"front": {"tower": "small_cnn", "image_size": 48}, "side": "small_cnn", "question": "gru"}
    model = mmzoo.build_classifier(towers=towers, fusion="concat", **tiny_overrides())
    assert model.input["front"].shape == (None, 48, 48, 3) and model.input["side"].shape == (None, 32, 32, 3)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['sequence_length'\] for the image input 'front'"):
        mmzoo.build_classifier(towers={"front": {"tower": "small_cnn", "sequence_length": 3}, "q": "gru"},
                               fusion="concat", **tiny_overrides())


@pytest.mark.parametrize(
    "towers, fusion, message",
    [
        ({"front": "vit", "q": "gru"}, "concat", r"Unknown tower 'vit'.*Received: towers\['front'\]='vit'"),
        ({"Front": "small_cnn", "q": "gru"}, "concat", r"lowercase identifiers.*Received: 'Front'"),
        ({}, "concat", r"non-empty dict"),
        ({"a": "small_cnn", "b": "small_cnn", "q": "gru"}, "film", r"'film' fusion takes at most 2 inputs"),
        ({"a": "small_cnn", "b": "small_cnn", "q": "gru"}, "glimpse", r"'glimpse' fusion takes at most 2 inputs"),
        ({"text": "gru", "token_ids": "small_cnn"}, "concat", r"same name \['token_ids'\]"),
    ],
)
def test_bad_towers_get_one_line_errors(towers, fusion, message):
    with pytest.raises(ValueError, match=message):
        mmzoo.build_classifier(towers=towers, fusion=fusion, **tiny_overrides())


def test_towers_and_the_shorthand_do_not_mix():
    with pytest.raises(ValueError, match="not both"):
        mmzoo.build_classifier(towers=TOWERS, image_tower="small_cnn", fusion="concat", **tiny_overrides())


@pytest.mark.parametrize("fusion", ["sum", "product", "gated", "tensor", "lowrank", "attention", "coattention"])
def test_every_n_input_fusion_builds_and_predicts(fusion):
    model = _build(fusion=fusion, fusion_options={"projection_dim": 3} if fusion == "tensor" else None)
    features, _ = _three_input_batch(4)
    logits = model(_tensors(features))
    assert logits.shape == (4, 3) and np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))


@pytest.mark.slow
def test_a_three_input_model_trains_saves_exports_and_serves(tmp_path):
    keras.utils.set_random_seed(0)
    model = _build()
    backbone = model.backbone
    mmzoo.compile_model(backbone, "adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in model.image_towers["side"].trainable_weights]
    history = backbone.fit(mmzoo.preprocessing.preprocess_dataset(model, _dataset()), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert any(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, model.image_towers["side"].trainable_weights))

    features, _ = _three_input_batch(4, seed=1)
    raw = _tensors(features)
    logits = keras.ops.convert_to_numpy(model(raw, training=False))
    model.save(tmp_path / "three.keras")
    reloaded = mmzoo.load_model(tmp_path / "three.keras")
    assert list(reloaded.modalities) == list(TOWERS)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(raw, training=False)), logits, atol=1e-5)

    served = mmzoo.load_exported(mmzoo.export_model(reloaded, tmp_path / "export"))
    probabilities = tf.nn.softmax(logits).numpy()
    outputs = served({"front": features["front"], "side": features["side"], "question": list(features["question"])})
    np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=1e-5)
    assert outputs["label"].tolist() == [CLASS_NAMES[i] for i in probabilities.argmax(-1)]
    by_bytes = served.predict_image_bytes({
        "front_bytes": [_png(image) for image in features["front"]],
        "side_bytes": [_png(image) for image in features["side"]],
        "question": list(features["question"]),
    })
    np.testing.assert_allclose(by_bytes["probabilities"], probabilities, atol=1e-5)


def test_a_tower_weights_file_is_not_kept_in_the_config(tmp_path):
    tower = mmzoo.towers.build_image_tower("small_cnn", image_size=32)
    weights = tmp_path / "tower.weights.h5"
    tower.get_layer("small_cnn_backbone").save_weights(weights)
    towers = {"front": {"tower": "small_cnn", "image_weights": str(weights)}, "side": "small_cnn", "question": "gru"}
    model = mmzoo.build_classifier(towers=towers, fusion="concat", **tiny_overrides())
    assert model.get_config()["towers"]["front"] == {"tower": "small_cnn"}
    model.save(tmp_path / "m.keras")
    weights.unlink()  # the saved model has its own copy of the tower's weights
    reloaded = mmzoo.load_model(tmp_path / "m.keras")
    for loaded, built, written in zip(reloaded.image_towers["front"].weights, model.image_towers["front"].weights,
                                      tower.weights):
        np.testing.assert_array_equal(loaded.numpy(), built.numpy())
        np.testing.assert_array_equal(built.numpy(), written.numpy())  # the file's weights reached the model
