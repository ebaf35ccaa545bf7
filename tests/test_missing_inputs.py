"""Predicting with inputs missing: in Python (a model called without an input or with a flag off) and from the
export (`serving_presence`, and `ExportedModel` choosing it)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.export import SERVING_DEFAULT, SERVING_PRESENCE
from helpers import tiny_batch, tiny_overrides

# One worker builds and exports the shared model once (pytest -n 2 --dist loadgroup).
pytestmark = pytest.mark.xdist_group("missing_inputs")


def _probabilities(model, inputs):
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(inputs, training=False)))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(fusion="gated", modality_dropout=0.3))


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return mmzoo.load_exported(mmzoo.export_model(model, tmp_path_factory.mktemp("presence") / "m"))


def test_a_missing_input_is_an_absent_one(model):
    inputs, _ = tiny_batch()
    off = np.zeros(4, bool)
    np.testing.assert_allclose(_probabilities(model, {"text": inputs["text"]}),
                               _probabilities(model, {**inputs, "image_present": off}), atol=1e-6)
    np.testing.assert_allclose(_probabilities(model, {"image": inputs["image"]}),
                               _probabilities(model, {**inputs, "text_present": off}), atol=1e-6)
    # A flag left out means present; an absent input's content does not matter.
    np.testing.assert_allclose(_probabilities(model, {**inputs, "image_present": ~off}),
                               _probabilities(model, inputs), atol=1e-6)
    other = dict(inputs, image=255 - inputs["image"], image_present=off)
    np.testing.assert_allclose(_probabilities(model, other), _probabilities(model, {"text": inputs["text"]}),
                               atol=1e-6)
    assert not np.allclose(_probabilities(model, {"text": inputs["text"]}), _probabilities(model, inputs))
    with pytest.raises(ValueError, match="at least one of its inputs"):
        model({"image_present": off})


def test_predict_and_the_backbones_pipeline_take_flags(model):
    inputs, _ = tiny_batch()
    flags = np.array([True, False, True, False])
    direct = _probabilities(model, {**inputs, "image_present": flags})
    predicted = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(
        tf.data.Dataset.from_tensor_slices({**inputs, "image_present": flags}).batch(2), verbose=0)))
    np.testing.assert_allclose(predicted, direct, atol=1e-5)
    fed = model.preprocess_inputs({"image": tf.constant(inputs["image"]), "text": tf.constant(list(inputs["text"])),
                                   "image_present": tf.constant(flags)})
    assert set(fed) == {"image", "token_ids", "image_present", "text_present"}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(model.backbone(fed))), direct,
                               atol=1e-5)


def test_a_model_without_presence_needs_every_input():
    plain = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    inputs, _ = tiny_batch()
    with pytest.raises(ValueError, match="text"):
        plain({"image": inputs["image"]})


@pytest.fixture(scope="module", params=["gated", "late", "attention", "coattention"])
def served(request, model, exported, tmp_path_factory):
    """(model, its export) for each way a fusion leaves an input out: renormalised gates (the shared model), a
    mean of per-input heads, cross-attention's stand-in for an absent query, co-attention's masked directions.
    Tiny widths, one export per fusion."""
    if request.param == "gated":
        return model, exported
    keras.utils.set_random_seed(0)
    other = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(
        fusion=request.param, modality_dropout=0.3, embedding_dim=8, text_units=8, fusion_units=8,
        fusion_options={"num_heads": 2} if "attention" in request.param else None))
    return other, mmzoo.load_exported(mmzoo.export_model(other, tmp_path_factory.mktemp(request.param) / "m"))


# Every pattern with at least one input present (image, text).
@pytest.mark.parametrize("pattern", [(True, True), (True, False), (False, True)])
def test_export_equals_keras_for_every_presence_pattern(served, pattern):
    model, exported = served
    inputs, _ = tiny_batch(seed=2)
    flags = {"image_present": np.full(4, pattern[0]), "text_present": np.full(4, pattern[1])}
    served = exported.run(SERVING_PRESENCE, {**inputs, **flags})["probabilities"]
    np.testing.assert_allclose(served, _probabilities(model, {**inputs, **flags}), atol=1e-5)


def test_a_mixed_batch_equals_its_rows_served_one_by_one(served):
    model, exported = served
    inputs, _ = tiny_batch(seed=3)
    image_flags, text_flags = np.array([True, False, False, True]), np.array([True, True, True, False])
    batch = exported({**inputs, "image_present": image_flags, "text_present": text_flags})["probabilities"]
    for i in range(4):
        row = {"image": inputs["image"][i:i + 1], "text": inputs["text"][i:i + 1]}
        one = exported({key: value for key, value in row.items()
                        if (image_flags if key == "image" else text_flags)[i]})["probabilities"]
        np.testing.assert_allclose(batch[i:i + 1], one, atol=1e-5)
    expected = _probabilities(model, {**inputs, "image_present": image_flags, "text_present": text_flags})
    np.testing.assert_allclose(batch, expected, atol=1e-5)
    assert not np.allclose(batch, _probabilities(model, inputs), atol=1e-4)  # the flags did something


def test_serving_default_keeps_the_inputs_its_clients_send(model, exported):
    inputs, _ = tiny_batch(seed=4)
    signature = exported.signatures[SERVING_DEFAULT]
    assert set(signature.structured_input_signature[1]) == {"image", "text"}
    presence_inputs = exported.signatures[SERVING_PRESENCE].structured_input_signature[1]
    assert set(presence_inputs) == {"image", "text", "image_present", "text_present"}
    assert presence_inputs["image_present"].dtype == tf.bool
    np.testing.assert_allclose(exported(inputs)["probabilities"], _probabilities(model, inputs), atol=1e-5)
    # A client sends a 1 x 1 image for an absent one, as ExportedModel does.
    raw = exported.signatures[SERVING_PRESENCE](
        image=tf.zeros([4, 1, 1, 3], tf.uint8), text=tf.constant(list(inputs["text"])),
        image_present=tf.zeros([4], tf.bool), text_present=tf.ones([4], tf.bool))
    np.testing.assert_allclose(raw["probabilities"].numpy(), _probabilities(model, {"text": inputs["text"]}),
                               atol=1e-5)


def test_request_errors_name_the_input(exported):
    inputs, _ = tiny_batch()
    with pytest.raises(ValueError, match=r"Unknown input\(s\) \['photo'\]"):
        exported({"photo": inputs["image"], "text": inputs["text"]})
    with pytest.raises(ValueError, match="same batch size"):
        exported({**inputs, "image_present": np.ones(3, bool)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_present must be booleans of shape"):
        exported.signatures[SERVING_PRESENCE](image=tf.zeros([1, 2, 2, 3], tf.uint8), text=tf.constant(["a"]),
                                              image_present=tf.ones([1, 1], tf.bool),
                                              text_present=tf.ones([1], tf.bool))


def test_exports_of_models_without_presence_have_no_presence_signature(tmp_path):
    plain = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    served = mmzoo.load_exported(mmzoo.export_model(plain, tmp_path / "plain"))
    assert SERVING_PRESENCE not in served.signatures


def test_each_input_kind_says_what_stands_in_for_an_absent_input(model, exported, monkeypatch):
    import dataclasses

    from mmzoo.classifier import complete_inputs
    from mmzoo.export import _presence_request
    from mmzoo.towers import registry

    image, text = model.modalities["image"], model.modalities["text"]
    pixels = registry.get_input_kind("image").placeholder(image, 3).numpy()
    assert pixels.shape == (3, 32, 32, 3) and pixels.dtype == np.float32 and not pixels.any()
    assert list(registry.get_input_kind("text").placeholder(text, 2).numpy()) == [b"", b""]
    # An export's client sends the same stand-in, in the dtype its signature takes.
    specs = exported.signatures[SERVING_PRESENCE].structured_input_signature[1]
    request = _presence_request({"text": ["a", "b"]}, exported.input_names(), specs, exported.metadata)
    assert request["image"].shape == (2, 32, 32, 3) and request["image"].dtype == np.uint8
    assert not request["image"].any() and not request["image_present"].any()

    # A kind that does not say: a clear error, not another kind's stand-in.
    class AudioInput(registry.InputKind):
        name = "audio"

    monkeypatch.setitem(registry._KINDS, "audio", AudioInput())
    sound = dataclasses.replace(image, name="sound", kind="audio", backbone_key="sound")
    with pytest.raises(NotImplementedError, match="'audio' input kind defines no placeholder.*'sound' input"):
        complete_inputs({"image": image, "sound": sound}, {"image": np.zeros((2, 32, 32, 3), np.float32)})
