"""Fusion layers over N > 2 named modalities (and what N = 2 must keep), parametrized over FUSIONS."""

import inspect

import numpy as np
import pytest

import keras
import tensorflow as tf

from mmzoo.fusion import FUSIONS, get_fusion

ANY_N = sorted(n for n, cls in FUSIONS.items() if cls.max_inputs is None)
TWO_ONLY = sorted(n for n, cls in FUSIONS.items() if cls.max_inputs is not None)
MODALITIES = ["front", "side", "question"]
UNITS = 8
BATCH = 3
DIMS = {"front": 6, "side": 3, "question": 5}
STEPS = {"front": 4, "side": 5, "question": 7}


def make(name, modalities=MODALITIES, **overrides):
    kwargs = {"units": UNITS, "modalities": modalities}
    if "num_heads" in inspect.signature(FUSIONS[name]).parameters:
        kwargs["num_heads"] = 2
    kwargs.update(overrides)
    return get_fusion(name, **kwargs)


def three_inputs(name, seed=0):
    """[front, side, question] features and masks. Token families get tokens everywhere; the others a pooled
    `front` beside two token inputs. `side` and `question` are right-padded (their masks have False steps)."""
    r = np.random.default_rng(seed)
    pooled = {"front"} if not FUSIONS[name].requires_tokens else set()
    features, masks = [], []
    lengths = {"front": [4, 2, 3], "side": [2, 5, 1], "question": [3, 7, 1]}
    for m in MODALITIES:
        if m in pooled:
            features.append(r.normal(size=(BATCH, DIMS[m])).astype("float32"))
            masks.append(None)
            continue
        features.append(r.normal(size=(BATCH, STEPS[m], DIMS[m])).astype("float32"))
        valid = np.arange(STEPS[m])[None, :] < np.array(lengths[m])[:, None]
        masks.append(None if m == "front" else valid)
    return features, masks


def numpy(x):
    return keras.ops.convert_to_numpy(x)


# === Contract ===


def test_families_declare_how_many_inputs_they_take():
    for name, cls in FUSIONS.items():
        assert cls.max_inputs is None or cls.max_inputs == 2, name
    assert TWO_ONLY == ["film", "glimpse"]
    for name in FUSIONS:
        assert make(name, modalities=("image", "text")).get_config()["modalities"] == ["image", "text"]


@pytest.mark.parametrize("name", ANY_N)
def test_three_inputs_output_shape(name):
    features, masks = three_inputs(name)
    layer = make(name)
    assert tuple(layer(features, mask=masks).shape) == (BATCH, UNITS)
    assert tuple(layer(features).shape) == (BATCH, UNITS)
    assert layer.compute_output_shape([x.shape for x in features]) == (BATCH, UNITS)
    symbolic = [keras.Input((None,) + x.shape[2:] if x.ndim == 3 else x.shape[1:]) for x in features]
    assert tuple(make(name)(symbolic).shape) == (None, UNITS)


@pytest.mark.parametrize("name", ANY_N)
def test_three_inputs_config_round_trip(name):
    features, masks = three_inputs(name)
    layer = make(name, dropout=0.25)
    config = layer.get_config()
    assert config["modalities"] == MODALITIES
    clone = type(layer).from_config(config)
    assert clone.get_config() == config and clone.modalities == tuple(MODALITIES)
    expected = numpy(layer(features, mask=masks))
    clone(features, mask=masks)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(numpy(clone(features, mask=masks)), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_a_config_without_modalities_means_image_and_text(name):
    config = make(name, modalities=("image", "text")).get_config()
    del config["modalities"]  # as written by mmzoo 0.1.0
    assert FUSIONS[name].from_config(config).modalities == ("image", "text")


# === Masks ===


@pytest.mark.parametrize("name", ANY_N)
def test_three_inputs_padding_is_ignored(name):
    features, masks = three_inputs(name)
    layer = make(name)
    expected = numpy(layer(features, mask=masks))
    for i, mask in enumerate(masks):
        if mask is None:
            continue
        garbage = list(features)
        noise = 1e3 * np.random.default_rng(i).normal(size=features[i].shape)
        garbage[i] = np.where(mask[..., None], features[i], noise).astype("float32")
        np.testing.assert_allclose(numpy(layer(garbage, mask=masks)), expected, rtol=1e-5, atol=1e-5)
        # ... while the same change unmasked does change the output: the mask is what protected it.
        unmasked = list(masks)
        unmasked[i] = None
        assert not np.allclose(numpy(layer(garbage, mask=unmasked)), expected, rtol=1e-4, atol=1e-4)
    # A missing mask means every step is valid.
    all_valid = [None if m is None else np.ones_like(m) for m in masks]
    np.testing.assert_allclose(numpy(layer(features, mask=all_valid)), numpy(layer(features)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ANY_N)
def test_three_inputs_every_modality_matters(name):
    features, masks = three_inputs(name)
    layer = make(name)
    expected = numpy(layer(features, mask=masks))
    for i in range(len(features)):
        changed = list(features)
        changed[i] = features[i] + 1.0
        assert not np.allclose(numpy(layer(changed, mask=masks)), expected, rtol=1e-4, atol=1e-4), MODALITIES[i]


@pytest.mark.parametrize("name", ANY_N)
def test_keras_masks_of_several_inputs_reach_the_fusion(name):
    """Two id inputs with Embedding(mask_zero): the functional graph hands both masks to the fusion."""
    front, _ = three_inputs(name)
    front = front[0]
    ids = [keras.Input((None,), dtype="int32", name=m) for m in ("side", "question")]
    front_in = keras.Input(front.shape[1:], name="front")
    embedded = [keras.layers.Embedding(20, DIMS[m], mask_zero=True)(x) for m, x in zip(("side", "question"), ids)]
    model = keras.Model([front_in] + ids, make(name)([front_in] + embedded))
    r = np.random.default_rng(4)
    side = r.integers(1, 20, size=(BATCH, 3)) * (np.arange(3) < np.array([[1], [3], [2]]))
    question = r.integers(1, 20, size=(BATCH, 5)) * (np.arange(5) < np.array([[5], [2], [1]]))
    expected = numpy(model([front, side, question]))
    pad = lambda x: np.concatenate([x, np.zeros((BATCH, 4), x.dtype)], axis=1)
    np.testing.assert_allclose(numpy(model([front, pad(side), pad(question)])), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ANY_N)
def test_three_inputs_gradients_reach_every_trainable_weight(name):
    features, masks = three_inputs(name)
    layer = make(name)
    layer(features, mask=masks)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(layer(features, mask=masks, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    for variable, grad in zip(layer.trainable_variables, grads):
        assert grad is not None and np.abs(numpy(grad)).sum() > 0, variable.path


@pytest.mark.parametrize("name", ANY_N)
def test_three_inputs_under_mixed_float16(name):
    features, masks = three_inputs(name)
    layer = make(name, dtype="mixed_float16")
    out = numpy(layer(features, mask=masks))
    assert out.dtype == np.float16 and np.isfinite(out).all()
    reference = type(layer).from_config({**layer.get_config(), "dtype": "float32"})
    reference(features)
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(out.astype("float32"), numpy(reference(features, mask=masks)), rtol=2e-2, atol=2e-2)


# === Saving ===


@pytest.mark.parametrize("name", ANY_N)
def test_three_input_model_keras_round_trip(name, tmp_path):
    features, _ = three_inputs(name)
    inputs = [keras.Input(x.shape[1:], name=m) for m, x in zip(MODALITIES, features)]
    fusion = make(name)
    model = keras.Model(inputs, keras.layers.Dense(2)(fusion(inputs)))
    expected = numpy(model(features))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[-2]) is FUSIONS[name] and loaded.layers[-2].modalities == tuple(MODALITIES)
    np.testing.assert_allclose(numpy(loaded(features)), expected, rtol=1e-6, atol=1e-6)


def test_per_modality_sublayers_are_named_after_the_modalities():
    features, _ = three_inputs("attention")
    names = {}
    for family in ("sum", "gated", "tensor", "lowrank", "attention", "coattention"):
        layer = make(family)
        layer(features)
        names[family] = [v.path.split("/", 1)[1] for v in layer.weights]
    assert [p for p in names["gated"] if p.endswith("kernel")] == [
        "front_dense/kernel", "side_dense/kernel", "question_dense/kernel", "gate_dense/kernel"
    ]
    assert names["lowrank"] == ["front_factor", "side_factor", "question_factor", "rank_weights", "bias"]
    assert "question_to_others_attention/query/kernel" in names["attention"]
    assert not any("front_to" in p or "side_to" in p for p in names["attention"])
    for m in MODALITIES:
        assert f"{m}_to_others_norm/gamma" in names["coattention"]
    # With two (renamed) modalities a direction names the other one, as `text_to_image` does by default.
    two = make("coattention", modalities=["photo", "question"])
    two([features[0], features[2]])
    assert {v.path.split("/")[1] for v in two.weights} >= {"question_to_photo_attention", "photo_to_question_norm"}


# === Families ===


def test_gated_two_inputs_is_the_sigmoid_gmu():
    r = np.random.default_rng(1)
    x_i, x_t = r.normal(size=(4, 6)).astype("float32"), r.normal(size=(4, 5)).astype("float32")
    layer = make("gated", modalities=("image", "text"))
    out = numpy(layer([x_i, x_t]))
    dense = (layer.image_dense, layer.text_dense, layer.gate_dense)
    (w_i, b_i), (w_t, b_t), (w_z, b_z) = [d.get_weights() for d in dense]
    assert w_z.shape == (11, UNITS)
    z = 1.0 / (1.0 + np.exp(-(np.concatenate([x_i, x_t], -1) @ w_z + b_z)))
    expected = z * np.tanh(x_i @ w_i + b_i) + (1.0 - z) * np.tanh(x_t @ w_t + b_t)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_gated_three_inputs_is_a_softmax_over_modalities():
    r = np.random.default_rng(2)
    xs = [r.normal(size=(4, DIMS[m])).astype("float32") for m in MODALITIES]
    layer = make("gated")
    out = numpy(layer(xs))
    weights = [getattr(layer, f"{m}_dense").get_weights() for m in MODALITIES]
    hidden = np.stack([np.tanh(x @ w + b) for x, (w, b) in zip(xs, weights)], 1)
    w_z, b_z = layer.gate_dense.get_weights()
    assert w_z.shape == (sum(DIMS.values()), 2 * UNITS)
    logits = (np.concatenate(xs, -1) @ w_z + b_z).reshape(4, 2, UNITS)
    logits = np.concatenate([logits, np.zeros((4, 1, UNITS))], 1)
    gates = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(out, (gates * hidden).sum(1), rtol=1e-5, atol=1e-6)


def test_tensor_fusion_forms_the_n_way_outer_product_up_to_a_limit():
    features, _ = three_inputs("tensor")
    layer = make("tensor", projection_dim=3)
    layer(features)
    assert layer.dense.kernel.shape == (4**3, UNITS)
    with pytest.raises(ValueError, match=r"\(127 \+ 1\) \*\* 3 = 2097152 features.*Received: projection_dim=127"):
        make("tensor", projection_dim=127)
    make("tensor", projection_dim=127, modalities=["a", "b"])  # 128 ** 2 is fine


@pytest.mark.parametrize("name", ["attention", "coattention"])
def test_attention_return_tokens_gives_the_last_modality(name):
    features, masks = three_inputs(name)
    tokens = make(name)(features, mask=masks, return_tokens=True)
    assert tuple(tokens.shape) == (BATCH, STEPS["question"], UNITS)


@pytest.mark.parametrize("name", TWO_ONLY)
def test_two_input_families_refuse_three(name):
    received = r"Received: modalities=\['front', 'side', 'question'\]"
    with pytest.raises(ValueError, match=r"takes exactly 2 inputs.*" + received):
        make(name)
    features, _ = three_inputs(name)
    with pytest.raises(ValueError, match=r"list or tuple of 2 tensors.*takes exactly 2 inputs.*Received: inputs"):
        make(name, modalities=("image", "text"))(features)
    # Two inputs under other names work, with the same sublayers.
    renamed = make(name, modalities=["photo", "question"])
    assert tuple(renamed([features[0], features[2]]).shape) == (BATCH, UNITS)
    default = make(name, modalities=("image", "text"))
    default([features[0], features[2]])
    assert [v.path.split("/", 1)[1] for v in renamed.weights] == [v.path.split("/", 1)[1] for v in default.weights]


# === Errors ===


@pytest.mark.parametrize("name", ANY_N)
def test_wrong_number_of_inputs_or_masks(name):
    features, masks = three_inputs(name)
    layer = make(name)
    built_for = rf"{type(layer).__name__} was built for modalities \['front', 'side', 'question'\]"
    message = built_for + ".*3 tensors.*Received: inputs"
    with pytest.raises(ValueError, match=message):
        layer(features[:2])
    with pytest.raises(ValueError, match=message):
        layer(features + features[:1])
    layer(features)
    with pytest.raises(ValueError, match=r"`mask` to be None or a list or tuple of 3 masks.*Received: mask="):
        layer(features, mask=masks[:2])


@pytest.mark.parametrize(
    "modalities",
    [["image"], "image", ["image", "image"], ["Image", "text"], ["image", "2d"], ["image", "te xt"], ["image", 3]],
)
def test_modalities_are_checked(modalities):
    for name in ("concat", "film"):
        with pytest.raises(ValueError, match=r"`modalities` to be a list of two or more distinct lowercase names.*"
                                             r"Received: modalities="):
            make(name, modalities=modalities)


@pytest.mark.parametrize(
    "name, modalities, attribute",
    [("gated", ["gate", "text"], "gate_dense"), ("coattention", ["a", "a_to_a"], "a_to_a_to_a_attention")],
)
def test_a_modality_name_cannot_shadow_another_attribute(name, modalities, attribute):
    with pytest.raises(ValueError, match=f"`{attribute}` would collide.*Received: modalities="):
        make(name, modalities=modalities)
