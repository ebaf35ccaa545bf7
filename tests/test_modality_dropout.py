"""Modality dropout and presence-aware fusion (mmzoo/fusion/presence.py and the fusions' `presence=`)."""

import inspect

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo.fusion import FUSIONS, ModalityDropout, get_fusion
from helpers import tiny_batch, tiny_overrides

PRESENCE_FUSIONS = sorted(name for name, cls in FUSIONS.items() if cls.supports_presence)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _flags(layer, presence, training):
    return np.stack([_numpy(f) for f in layer(presence, training=training)], axis=1)


def test_every_fusion_but_film_and_glimpse_takes_presence():
    assert PRESENCE_FUSIONS == ["attention", "coattention", "concat", "gated", "late", "lowrank", "product",
                                "sum", "tensor"]


def test_drops_at_the_rates_never_everything_and_only_in_training():
    layer = ModalityDropout({"image": 0.3, "text": 0.3}, ["image", "text"], seed=3)
    n = 20000
    present = [np.ones(n, bool), np.ones(n, bool)]
    assert _flags(layer, present, training=False).all()
    flags = _flags(layer, present, training=True)
    assert flags.any(axis=1).all()  # never both gone
    # Each is drawn at 0.3; where both were drawn one is kept, chosen at random: 0.3 - 0.09 / 2 = 0.255.
    np.testing.assert_allclose(1 - flags.mean(axis=0), [0.255, 0.255], atol=0.012)
    # An input already absent stays absent, and a row with a single input keeps it.
    text_only = [np.zeros(n, bool), np.ones(n, bool)]
    np.testing.assert_array_equal(_flags(layer, text_only, training=True), np.stack(text_only, axis=1))


def test_seeded_and_serializable():
    make = lambda: ModalityDropout([0.5, 0.2], ["front", "question"], seed=7)  # noqa: E731
    present = [np.ones(64, bool), np.ones(64, bool)]
    np.testing.assert_array_equal(_flags(make(), present, True), _flags(make(), present, True))
    layer = make()
    config = layer.get_config()
    assert config["rates"] == [0.5, 0.2] and config["seed"] == 7 and config["modalities"] == ["front", "question"]
    np.testing.assert_array_equal(_flags(ModalityDropout.from_config(config), present, True),
                                  _flags(make(), present, True))
    assert keras.saving.get_registered_name(ModalityDropout) == "mmzoo>ModalityDropout"


@pytest.mark.parametrize("kwargs, received", [
    (dict(rates=1.0, modalities=["image", "text"]), "rates=1.0"),
    (dict(rates={"photo": 0.2}, modalities=["image", "text"]), "rates={'photo': 0.2}"),
    (dict(rates=0.2, modalities=["image"]), "modalities=['image']"),
    (dict(rates=0.2, modalities=["image", "text"], seed="1"), "seed='1'"),
])
def test_bad_arguments_are_named(kwargs, received):
    with pytest.raises(ValueError, match=f"Received: {received}".replace("[", r"\[").replace("(", r"\(")):
        ModalityDropout(**kwargs)


def _make(name):
    kwargs = {"units": 8}
    if "num_heads" in inspect.signature(FUSIONS[name]).parameters:
        kwargs["num_heads"] = 2
    return get_fusion(name, modalities=["front", "side", "question"], **kwargs)


def _tokens(seed, batch=4):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, steps, dim)).astype("float32") for steps, dim in ((4, 6), (3, 5), (7, 4))]


@pytest.mark.parametrize("name", PRESENCE_FUSIONS)
def test_an_absent_input_contributes_nothing(name):
    """Whatever an absent input holds, the output is the same; rows are independent of each other."""
    layer = _make(name)
    clean, other = _tokens(0), _tokens(1)
    flags = [np.array([True, True, False, True]), np.array([False, True, True, True]),
             np.array([True, False, True, False])]
    # Same present features; the absent ones replaced by something else entirely.
    swapped = [np.where(f[:, None, None], c, 100 * o) for c, o, f in zip(clean, other, flags)]
    out = _numpy(layer(clean, presence=flags))
    np.testing.assert_allclose(_numpy(layer(swapped, presence=flags)), out, rtol=1e-4, atol=1e-5)
    assert np.isfinite(out).all()
    for i in range(4):
        alone = _numpy(layer([x[i:i + 1] for x in clean], presence=[f[i:i + 1] for f in flags]))
        np.testing.assert_allclose(alone, out[i:i + 1], rtol=1e-4, atol=1e-5)
    # All present through flags is the layer without flags.
    np.testing.assert_allclose(_numpy(layer(clean, presence=[np.ones(4, bool)] * 3)), _numpy(layer(clean)),
                               rtol=1e-5, atol=1e-6)


def test_gate_is_renormalised_over_the_inputs_present():
    layer = get_fusion("gated", units=8)
    image, text = (np.random.default_rng(s).normal(size=(3, d)).astype("float32") for s, d in ((0, 6), (1, 5)))
    layer([image, text])
    out = _numpy(layer([image, text], presence=[np.zeros(3, bool), np.ones(3, bool)]))
    np.testing.assert_allclose(out, _numpy(layer.text_dense(text)), rtol=1e-5, atol=1e-6)


def test_concat_leaves_an_absent_input_out_of_the_projection():
    layer = get_fusion("concat", units=8)
    image, text = (np.random.default_rng(s).normal(size=(3, d)).astype("float32") for s, d in ((0, 6), (1, 5)))
    out = _numpy(layer([image, text], presence=[np.ones(3, bool), np.zeros(3, bool)]))
    kernel, bias = (_numpy(w) for w in layer.dense.weights)
    np.testing.assert_allclose(out, np.maximum(image @ kernel[:6] + bias, 0), rtol=1e-5, atol=1e-5)


def test_a_classifier_trains_with_modality_dropout_and_keeps_it_when_saved(tmp_path):
    keras.utils.set_random_seed(0)
    model = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(
        fusion="gated", dropout=0.0, modality_dropout={"image": 0.99}, modality_dropout_seed=4))
    assert model.takes_presence
    dropout = model.backbone.get_layer("modality_dropout")
    assert dropout.rates == (0.99, 0.0) and dropout.seed == 4
    inputs, labels = tiny_batch(8)
    text_only = _numpy(model({"text": inputs["text"]}))
    # What only the dropout does: in training the image is dropped from every example (at 0.99, with this seed),
    # so each example's output is the text's alone; at inference the image counts.
    np.testing.assert_allclose(_numpy(model(inputs, training=True)), text_only, rtol=1e-4, atol=1e-5)
    assert not np.allclose(_numpy(model(inputs)), text_only, atol=1e-3)
    # Inside fit too: the dropped image tower gets no gradient, the text tower does.
    image_kernels = [_numpy(w).copy() for w in model.image_towers["image"].trainable_weights]
    text_kernel = _numpy(model.backbone.get_layer("lstm_tower_lstm").weights[0]).copy()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert np.isfinite(model.fit(inputs, labels, epochs=1, batch_size=4, verbose=0).history["loss"][0])
    for before, after in zip(image_kernels, model.image_towers["image"].trainable_weights):
        np.testing.assert_array_equal(_numpy(after), before)
    assert not np.allclose(_numpy(model.backbone.get_layer("lstm_tower_lstm").weights[0]), text_kernel)
    # Inference ignores the dropout: two calls agree.
    np.testing.assert_array_equal(_numpy(model(inputs)), _numpy(model(inputs)))
    model.save(tmp_path / "m.keras")
    reloaded = mmzoo.load_model(tmp_path / "m.keras")
    assert reloaded.get_config()["modality_dropout"] == {"image": 0.99}
    assert reloaded.get_config()["modality_dropout_seed"] == 4
    np.testing.assert_allclose(_numpy(reloaded(inputs)), _numpy(model(inputs)), atol=1e-6)


@pytest.mark.parametrize("fusion", ["film", "glimpse"])
def test_fusions_that_cannot_leave_an_input_out_refuse_modality_dropout(fusion):
    with pytest.raises(ValueError, match=f"Received: fusion='{fusion}', modality_dropout=0.2"):
        mmzoo.build_model("coord_cnn_gru_film", **tiny_overrides(fusion=fusion, modality_dropout=0.2))


def test_models_without_modality_dropout_are_as_before():
    model = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    assert not model.takes_presence and set(model.input) == {"image", "text"}
    assert "modality_dropout" not in model.get_config()
    with pytest.raises(ValueError, match="single input"):
        mmzoo.build_classifier(text_tower="gru", modality_dropout=0.1, **tiny_overrides())
    with pytest.raises(ValueError, match=r"Received: modality_dropout=\{'photo': 0.1\}"):
        mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(modality_dropout={"photo": 0.1}))


# === Attention without flags: what 0.1.0 computed, empty questions included ===


def _masked_mean(x, mask):
    weights = mask[..., None].astype("float32")
    return (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def _attention_as_in_0_1_0(layer, features, masks):
    """The attention fusions' output as mmzoo 0.1.0 wrote it, from the layer's own sublayers: no presence, and a
    row whose keys are all padding attends to the (masked) keys all the same."""
    masks = [np.ones(x.shape[:2], bool) if m is None else m for x, m in zip(features, masks)]
    tokens = {name: _numpy(getattr(layer, f"{name}_projection")(x * m[..., None]))
              for name, x, m in zip(layer.modalities, features, masks)}
    masks = dict(zip(layer.modalities, masks))

    def attend(query):
        others = [m for m in layer.modalities if m != query]
        keys = np.concatenate([tokens[o] for o in others], axis=1)
        key_mask = np.concatenate([masks[o] for o in others], axis=1)
        attention, norm = layer._direction_layers(query)
        every_query = np.ones(tokens[query].shape[:2] + (1,), bool)
        attended = attention(tokens[query], keys, keys, attention_mask=every_query & key_mask[:, None, :])
        return _masked_mean(_numpy(norm(tokens[query] + attended)), masks[query])

    last = layer.modalities[-1]
    if type(layer).__name__ == "CrossAttentionFusion":
        return attend(last)
    pooled = [attend(last)] + [attend(m) for m in layer.modalities[:-1]]
    return _numpy(layer.combine(np.concatenate(pooled, axis=-1)))


@pytest.mark.parametrize("name", ["attention", "coattention"])
def test_attention_without_flags_computes_what_0_1_0_did_for_an_empty_question(name):
    layer = get_fusion(name, units=8, num_heads=2)
    rng = np.random.default_rng(0)
    image, text = rng.normal(size=(3, 4, 6)).astype("float32"), rng.normal(size=(3, 5, 4)).astype("float32")
    # Row 1 is an empty question: every text step is padding.
    text_mask = np.array([[True, True, True, False, False], [False] * 5, [True] * 5])
    out = _numpy(layer([image, text], mask=[None, text_mask]))
    np.testing.assert_allclose(out, _attention_as_in_0_1_0(layer, [image, text], [None, text_mask]),
                               rtol=1e-4, atol=1e-5)
    # Flags all on change nothing, the empty question included.
    flags = [np.ones(3, bool), np.ones(3, bool)]
    np.testing.assert_allclose(_numpy(layer([image, text], mask=[None, text_mask], presence=flags)), out,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["attention", "coattention"])
def test_a_0_1_0_attention_model_answers_an_empty_question_as_before(name):
    """The 0.1.0 fixture models, given an empty question, through the whole classifier."""
    import os

    model = mmzoo.load_model(os.path.join(os.path.dirname(__file__), "fixtures", "v0_1_0", f"{name}.keras"))
    inputs, _ = tiny_batch(2)
    feed = {"image": inputs["image"], "text": np.array(["what color is the circle", ""], dtype=object)}
    fed = model.preprocess_inputs({"image": keras.ops.convert_to_tensor(feed["image"]),
                                   "text": keras.ops.convert_to_tensor(list(feed["text"]))})
    features = [_numpy(f) for f in keras.Model(model.backbone.inputs, list(model.fusion_features))(fed)]
    text_mask = _numpy(fed["token_ids"]) != 0
    assert not text_mask[1].any()
    fused = _attention_as_in_0_1_0(model.fusion, features, [None, text_mask])
    np.testing.assert_allclose(_numpy(model(feed)), _numpy(model.head(fused)), rtol=1e-4, atol=1e-5)
