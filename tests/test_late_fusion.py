"""Late fusion: a head per input, logits averaged over the inputs present (mmzoo/fusion/late.py)."""

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo.fusion import FUSIONS, LateFusion
from helpers import CLASS_NAMES, tiny_batch, tiny_overrides


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _features(seed=0, batch=5):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, 6)).astype("float32"), rng.normal(size=(batch, 4)).astype("float32")]


def test_registered_as_a_fusion_that_takes_presence():
    assert FUSIONS["late"] is LateFusion and LateFusion.supports_presence and not LateFusion.requires_tokens
    assert {"resnet50_lstm_late", "small_cnn_lstm_late"} <= set(mmzoo.list_models())
    assert mmzoo.get_recipe("resnet50_lstm_late")["fusion"] == "late"


def test_mean_over_the_inputs_present():
    layer = LateFusion(units=3)
    image, text = _features()
    z_image, z_text = (_numpy(z) for z in layer.modality_outputs([image, text]))
    both = _numpy(layer([image, text]))
    np.testing.assert_allclose(both, (z_image + z_text) / 2, rtol=1e-5, atol=1e-6)
    flags = [np.array([True, False, True, True, False]), np.array([True, True, False, True, True])]
    mixed = _numpy(layer([image, text], presence=flags))
    expected = np.where(~flags[0][:, None], z_text, np.where(~flags[1][:, None], z_image, (z_image + z_text) / 2))
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-6)


def _fit_one_step(layer, image, text):
    """One SGD step of `layer` alone on a regression target; returns the layer's modality weights after it."""
    inputs = [keras.Input((6,)), keras.Input((4,))]
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    target = np.random.default_rng(9).normal(size=(len(image), 3)).astype("float32")
    model.fit([image, text], target, batch_size=len(image), epochs=1, verbose=0)
    return _numpy(layer.modality_weights)


def test_learned_weights_train_and_stay_a_weighted_mean():
    image, text = _features()
    layer = LateFusion(units=3, weighting="learned")
    layer.build([image.shape, text.shape])
    layer.modality_weights.assign([np.log(3.0), 0.0])  # softmax -> 0.75 image, 0.25 text
    z_image, z_text = (_numpy(z) for z in layer.modality_outputs([image, text]))
    np.testing.assert_allclose(_numpy(layer([image, text])), 0.75 * z_image + 0.25 * z_text, rtol=1e-5, atol=1e-6)
    # A fit step moves the weights; the output is still the softmax-weighted mean of the (moved) heads.
    learned = _fit_one_step(layer, image, text)
    assert not np.allclose(learned, [np.log(3.0), 0.0])
    a = np.exp(learned) / np.exp(learned).sum()
    z_image, z_text = (_numpy(z) for z in layer.modality_outputs([image, text]))
    np.testing.assert_allclose(_numpy(layer([image, text])), a[0] * z_image + a[1] * z_text, rtol=1e-5, atol=1e-6)
    # With the text absent the image's weight becomes 1.
    alone = _numpy(layer([image, text], presence=[None, np.zeros(5, bool)]))
    np.testing.assert_allclose(alone, z_image, rtol=1e-5, atol=1e-6)
    # weighting="mean": the same step leaves the weights at 0 (an unweighted mean).
    fixed = LateFusion(units=3)
    np.testing.assert_array_equal(_fit_one_step(fixed, image, text), [0.0, 0.0])
    assert "modality_weights" not in [w.name for w in fixed.trainable_weights]


def test_classifier_logits_are_the_mean_of_each_inputs_own_logits():
    keras.utils.set_random_seed(0)
    model = mmzoo.build_model("small_cnn_lstm_late", **tiny_overrides(dropout=0.0))
    inputs, _ = tiny_batch()
    fed = model.preprocess_inputs({k: keras.ops.convert_to_tensor(v) if k == "image" else np.array(v, dtype=str)
                                   for k, v in inputs.items()})
    features = keras.Model(model.backbone.inputs, list(model.fusion_features))(fed)
    own = [_numpy(model.head(z)) for z in model.fusion.modality_outputs(features)]
    np.testing.assert_allclose(_numpy(model(inputs)), (own[0] + own[1]) / 2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_numpy(model({"text": inputs["text"]})), own[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_numpy(model({"image": inputs["image"]})), own[0], rtol=1e-4, atol=1e-5)


def test_keras_round_trip_with_learned_weights_and_any_number_of_inputs(tmp_path):
    keras.utils.set_random_seed(1)
    model = mmzoo.build_classifier(
        towers={"front": "small_cnn", "side": "small_cnn", "question": "gru"}, fusion="late",
        fusion_options={"weighting": "learned"}, **{k: v for k, v in tiny_overrides().items()})
    model.fusion.modality_weights.assign([0.5, -0.2, 0.1])
    inputs, _ = tiny_batch()
    feed = {"front": inputs["image"], "side": inputs["image"][::-1], "question": inputs["text"],
            "side_present": np.array([True, False, True, False])}
    path = tmp_path / "late.keras"
    model.save(path)
    reloaded = mmzoo.load_model(path)
    assert reloaded.takes_presence and reloaded.class_names == CLASS_NAMES
    np.testing.assert_allclose(_numpy(reloaded(feed)), _numpy(model(feed)), atol=1e-6)
    np.testing.assert_allclose(_numpy(reloaded.fusion.modality_weights), [0.5, -0.2, 0.1])


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="Received: weighting='max'"):
        LateFusion(units=4, weighting="max")
    with pytest.raises(ValueError, match="Received: fusion='late', head_hidden_units=8"):
        mmzoo.build_model("small_cnn_lstm_late", **tiny_overrides(head_hidden_units=8))
    with pytest.raises(ValueError, match="expects `presence` to be None or a list of 2"):
        LateFusion(units=4)(_features(), presence=[np.ones(5, bool)])


def test_per_input_auxiliary_losses_train_the_classifier_itself():
    import tensorflow as tf

    from mmzoo.classifier import get_modality_logits_model
    from mmzoo.preprocessing import preprocess_dataset

    keras.utils.set_random_seed(2)
    model = mmzoo.build_model("small_cnn_lstm_late", **tiny_overrides(dropout=0.0, modality_dropout=0.3))
    auxiliary = get_modality_logits_model(model)
    assert set(auxiliary.output) == {"logits", "image_logits", "text_logits"}
    inputs, labels = tiny_batch(8)
    raw = tf.data.Dataset.from_tensor_slices(({"image": inputs["image"], "text": tf.constant(list(inputs["text"]))},
                                              labels)).batch(4)
    data = preprocess_dataset(model, raw).map(lambda x, y: (x, {k: y for k in auxiliary.output}))
    fed = next(iter(data))[0]
    outputs = {k: _numpy(v) for k, v in auxiliary(fed).items()}
    np.testing.assert_allclose(outputs["logits"], (outputs["image_logits"] + outputs["text_logits"]) / 2,
                               rtol=1e-4, atol=1e-5)
    kernel = _numpy(model.fusion.image_hidden.kernel).copy()
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    auxiliary.compile(optimizer="adam", loss={k: ce for k in auxiliary.output},
                      loss_weights={"logits": 1.0, "image_logits": 0.3, "text_logits": 0.3})
    auxiliary.fit(data, epochs=1, verbose=0)
    assert not np.allclose(_numpy(model.fusion.image_hidden.kernel), kernel)  # the classifier's own weights
    with pytest.raises(ValueError, match="late-fusion classifier"):
        get_modality_logits_model(mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides()))
