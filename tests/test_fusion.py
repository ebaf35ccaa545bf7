"""Tests for mmzoo.fusion, parametrized over every registered fusion (FUSIONS)."""

import inspect

import numpy as np
import pytest

import keras
import tensorflow as tf

from mmzoo.fusion import FUSIONS, get_fusion

NAMES = sorted(FUSIONS)
TOKEN_NAMES = [n for n in NAMES if FUSIONS[n].requires_tokens]
POOLED_NAMES = [n for n in NAMES if not FUSIONS[n].requires_tokens]
ATTENTION_NAMES = [n for n in TOKEN_NAMES if "num_heads" in inspect.signature(FUSIONS[n]).parameters]

UNITS = 8
IMAGE_DIM, TEXT_DIM = 6, 5
IMAGE_STEPS, TEXT_STEPS = 4, 7
VOCAB = 20


def make(name, **overrides):
    kwargs = {"units": UNITS}
    if "num_heads" in inspect.signature(FUSIONS[name]).parameters:
        kwargs["num_heads"] = 2
    kwargs.update(overrides)
    return get_fusion(name, **kwargs)


def rng(seed=0):
    return np.random.default_rng(seed)


def token_features(batch=3, seed=0):
    r = rng(seed)
    image = r.normal(size=(batch, IMAGE_STEPS, IMAGE_DIM)).astype("float32")
    text = r.normal(size=(batch, TEXT_STEPS, TEXT_DIM)).astype("float32")
    lengths = np.array([3, TEXT_STEPS, 1, 5, 2][:batch])
    mask = np.arange(TEXT_STEPS)[None, :] < lengths[:, None]
    return image, text, mask, lengths


def token_ids(batch=3, seed=0):
    """Right-padded ids (0 = padding) and the lengths."""
    image, _, mask, lengths = token_features(batch, seed)
    ids = rng(seed + 1).integers(1, VOCAB, size=(batch, TEXT_STEPS)) * mask
    return image, ids.astype("int32"), lengths


def text_tower_model(fusion):
    """image tokens + Input(ids) -> Embedding(mask_zero) -> LSTM(return_sequences) -> fusion -> Dense."""
    image_in = keras.Input((IMAGE_STEPS, IMAGE_DIM), name="image")
    ids_in = keras.Input((None,), dtype="int32", name="text")
    x = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(ids_in)
    text = keras.layers.LSTM(TEXT_DIM, return_sequences=True)(x)
    fused = fusion([image_in, text])
    logits = keras.layers.Dense(3)(fused)
    return keras.Model([image_in, ids_in], logits), keras.Model([image_in, ids_in], text)


# === Contract ===


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_declares_contract(name):
    cls = FUSIONS[name]
    assert keras.saving.get_registered_name(cls) == f"mmzoo>{cls.__name__}"
    assert isinstance(cls.requires_tokens, bool)
    layer = make(name)
    assert isinstance(layer, keras.layers.Layer)
    assert layer.supports_masking
    assert layer.compute_mask(None, None) is None
    assert FUSIONS["attention"].requires_tokens and FUSIONS["coattention"].requires_tokens


# === Shapes ===


@pytest.mark.parametrize("name", POOLED_NAMES)
def test_output_shape_pooled(name):
    image, text, _, _ = token_features()
    layer = make(name)
    out = layer([image[:, 0], text[:, 0]])
    assert tuple(out.shape) == (3, UNITS)
    assert layer.compute_output_shape([(3, IMAGE_DIM), (3, TEXT_DIM)]) == (3, UNITS)
    # Mixed: pooled image, token text (and the other way round) in a new layer.
    assert tuple(make(name)([image[:, 0], text]).shape) == (3, UNITS)
    assert tuple(make(name)([image, text[:, 0]]).shape) == (3, UNITS)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_tokens(name):
    image, text, mask, _ = token_features()
    layer = make(name)
    assert tuple(layer([image, text]).shape) == (3, UNITS)
    assert tuple(layer((image, text), mask=(None, mask)).shape) == (3, UNITS)
    symbolic = make(name)([keras.Input((IMAGE_STEPS, IMAGE_DIM)), keras.Input((None, TEXT_DIM))])
    assert tuple(symbolic.shape) == (None, UNITS)


# === Masks ===


@pytest.mark.parametrize("name", NAMES)
def test_padding_content_never_matters(name):
    """Garbage at padded steps + an explicit mask == zeros there == the unpadded sequence alone."""
    image, text, mask, lengths = token_features()
    layer = make(name)
    clean = np.where(mask[..., None], text, 0.0).astype("float32")
    garbage = np.where(mask[..., None], text, 1e3 * rng(5).normal(size=text.shape)).astype("float32")
    out_clean = keras.ops.convert_to_numpy(layer([image, clean], mask=[None, mask]))
    out_garbage = keras.ops.convert_to_numpy(layer([image, garbage], mask=[None, mask]))
    np.testing.assert_allclose(out_garbage, out_clean, rtol=1e-5, atol=1e-5)
    for i, n in enumerate(lengths):
        alone = keras.ops.convert_to_numpy(layer([image[i : i + 1], text[i : i + 1, :n]]))
        np.testing.assert_allclose(out_clean[i : i + 1], alone, rtol=1e-4, atol=1e-5)
    # An image mask is honoured the same way.
    image_mask = np.array([[True, True, False, False]] * 3)
    image_garbage = np.where(image_mask[..., None], image, -1e3).astype("float32")
    a = layer([image, text], mask=[image_mask, mask])
    b = layer([image_garbage, text], mask=[image_mask, mask])
    c = layer([image[:, :2], text], mask=[None, mask])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(c), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_all_padding_row_is_finite_and_ignores_garbage(name):
    image, text, mask, _ = token_features()
    mask = mask.copy()
    mask[0] = False
    layer = make(name)
    out1 = keras.ops.convert_to_numpy(layer([image, text], mask=[None, mask]))
    out2 = keras.ops.convert_to_numpy(layer([image, text * 50.0 + 3.0], mask=[None, mask]))
    assert np.isfinite(out1).all()
    np.testing.assert_allclose(out1[0], out2[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_keras_mask_reaches_fusion_in_functional_graph(name):
    """Embedding(mask_zero) -> LSTM(return_sequences) carries a mask to the fusion with no wiring by hand."""
    image, ids, lengths = token_ids()
    model, text_model = text_tower_model(make(name))
    fusion = model.layers[-2]
    out = keras.ops.convert_to_numpy(model([image, ids]))
    # Extra padding changes nothing, nor does running each example unpadded.
    more_padding = np.concatenate([ids, np.zeros((3, 5), "int32")], axis=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model([image, more_padding])), out, rtol=1e-5, atol=1e-5)
    for i, n in enumerate(lengths):
        alone = keras.ops.convert_to_numpy(model([image[i : i + 1], ids[i : i + 1, :n]]))
        np.testing.assert_allclose(out[i : i + 1], alone, rtol=1e-4, atol=1e-5)
    # Same in graph mode (predict runs a tf.function).
    np.testing.assert_allclose(model.predict([image, ids], verbose=0), out, rtol=1e-5, atol=1e-5)
    # The mask is what the fusion used: passing it by hand agrees, leaving it out does not (the LSTM repeats its
    # last output at padded steps, so an unmasked mean/attention sees them).
    text = text_model([image, ids])
    head = model.layers[-1]
    by_hand = head(fusion([image, keras.ops.convert_to_numpy(text)], mask=[None, ids != 0]))
    unmasked = head(fusion([image, keras.ops.convert_to_numpy(text)]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(by_hand), out, rtol=1e-5, atol=1e-5)
    assert not np.allclose(keras.ops.convert_to_numpy(unmasked), out, rtol=1e-4, atol=1e-5)


# === Serialization ===


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name):
    extra = {"dropout": 0.25}
    layer = make(name, **extra)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    image, text, mask, _ = token_features()
    out = layer([image, text], mask=[None, mask])
    clone([image, text], mask=[None, mask])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone([image, text], mask=[None, mask])),
        keras.ops.convert_to_numpy(out),
        rtol=1e-6,
        atol=1e-6,
    )
    # And through the generic Keras (de)serializer, which resolves the registered name.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


@pytest.mark.parametrize("name", NAMES)
def test_keras_save_load_round_trip(name, tmp_path):
    image, ids, _ = token_ids()
    model, _ = text_tower_model(make(name))
    expected = keras.ops.convert_to_numpy(model([image, ids]))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[-2]) is FUSIONS[name]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded([image, ids])), expected, rtol=1e-6, atol=1e-6)


# === Training ===


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_trainable_weight(name):
    image, text, mask, _ = token_features()
    layer = make(name)
    layer([image, text], mask=[None, mask])
    target = rng(3).normal(size=(3, UNITS)).astype("float32")
    with tf.GradientTape() as tape:
        out = layer([image, text], mask=[None, mask], training=True)
        loss = keras.ops.sum(out * target)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert layer.trainable_variables
    for variable, grad in zip(layer.trainable_variables, grads):
        assert grad is not None, variable.path
        grad = keras.ops.convert_to_numpy(grad)
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, variable.path


@pytest.mark.parametrize("name", NAMES)
def test_dropout_is_active_only_in_training(name):
    image, text, mask, _ = token_features()
    layer = make(name, dropout=0.5)
    a = keras.ops.convert_to_numpy(layer([image, text], mask=[None, mask], training=False))
    b = keras.ops.convert_to_numpy(layer([image, text], mask=[None, mask], training=False))
    c = keras.ops.convert_to_numpy(layer([image, text], mask=[None, mask], training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("name", NAMES)
def test_mixed_float16_forward_is_finite(name, mixed_float16):
    image, ids, _ = token_ids()
    model, _ = text_tower_model(make(name))
    fusion = model.layers[-2]
    assert fusion.compute_dtype == "float16" and fusion.variable_dtype == "float32"
    logits = keras.ops.convert_to_numpy(model([image, ids]))
    assert np.isfinite(logits).all()
    _, text, mask, _ = token_features()
    masked = keras.ops.convert_to_numpy(fusion([image, text], mask=[None, mask]))
    assert masked.dtype == np.float16 and np.isfinite(masked).all()
    # The float32 reference agrees to float16 precision.
    reference = type(fusion).from_config({**fusion.get_config(), "dtype": "float32"})
    reference([image, text])
    reference.set_weights(fusion.get_weights())
    expected = keras.ops.convert_to_numpy(reference([image, text], mask=[None, mask]))
    np.testing.assert_allclose(masked.astype("float32"), expected, rtol=2e-2, atol=2e-2)


# === Registry and errors ===


def test_get_fusion_returns_new_instances():
    for name, cls in FUSIONS.items():
        a, b = make(name), make(name)
        assert type(a) is cls and a is not b and a.units == UNITS


def test_get_fusion_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        get_fusion("nope", units=4)
    message = str(info.value)
    assert "Unknown fusion 'nope'" in message and "Received: fusion='nope'" in message
    assert "Expected one of: " + ", ".join(FUSIONS) in message


@pytest.mark.parametrize(
    "name, kwargs, received",
    [(name, {"units": 0}, "units=0") for name in NAMES]
    + [(name, {"units": "8"}, "units='8'") for name in NAMES[:1]]
    + [(name, {"units": True}, "units=True") for name in NAMES[:1]]
    + [(name, {"units": 8, "dropout": 1.0}, "dropout=1.0") for name in NAMES]
    + [(name, {"units": 8, "dropout": -0.1}, "dropout=-0.1") for name in NAMES[:1]]
    + [(name, {"units": 8, "num_heads": 0}, "num_heads=0") for name in ATTENTION_NAMES]
    + [(name, {"units": 8, "key_dim": -2}, "key_dim=-2") for name in ATTENTION_NAMES]
    + [("film", {"units": 8, "num_blocks": 0}, "num_blocks=0"), ("film", {"units": 8, "kernel_size": 0}, "kernel_size=0")]
    + [("glimpse", {"units": 8, "num_glimpses": 0}, "num_glimpses=0"), ("glimpse", {"units": 8, "key_dim": 0}, "key_dim=0"),
       ("glimpse", {"units": 8, "max_text_steps": 0}, "max_text_steps=0")]
    + [("lowrank", {"units": 8, "rank": 0}, "rank=0")]
    + [("tensor", {"units": 8, "projection_dim": 0}, "projection_dim=0")]
    + [(name, {"units": 8, "activation": "nope"}, "activation='nope'") for name in
       ["concat", "sum", "product", "tensor", "coattention"]],
)
def test_argument_validation(name, kwargs, received):
    with pytest.raises(ValueError, match=f"Received: {received}"):
        FUSIONS[name](**kwargs)


@pytest.mark.parametrize("name", TOKEN_NAMES)
def test_attention_rejects_pooled_inputs(name):
    image, text, _, _ = token_features()
    for pair, bad in [((image[:, 0], text), "image_features"), ((image, text[:, 0]), "text_features")]:
        with pytest.raises(ValueError, match=f"requires token features.*Received: {bad} with shape"):
            make(name)(list(pair))
    with pytest.raises(ValueError, match="requires token features"):
        make(name)([keras.Input((IMAGE_DIM,)), keras.Input((None, TEXT_DIM))])


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_rejected(name):
    image, text, _, _ = token_features()
    expected = r"built for modalities \['image', 'text'\] and expects `inputs` to be a list or tuple of 2 tensors"
    with pytest.raises(ValueError, match=expected + ".*Received: inputs"):
        make(name)(image)
    with pytest.raises(ValueError, match=expected + ".*Received: inputs"):
        make(name)([image, text, text])
    with pytest.raises(ValueError, match="Received: image_features with shape"):
        make(name)([image[..., None], text])
    with pytest.raises(ValueError, match="Received: text_features with shape"):
        make(name)([image, text[:, 0, 0]])
    with pytest.raises(ValueError, match="`mask` to be None or a list or tuple of 2 masks"):
        layer = make(name)
        layer([image, text])
        layer([image, text], mask=np.ones((3, TEXT_STEPS), bool))


def _pointing_glimpse(side, dim=4, **options):
    """A GlimpseFusion whose every glimpse looks for feature 0 of the image tokens (hand-set weights)."""
    layer = make("glimpse", num_glimpses=2, key_dim=dim, **{"grid_positions": True, **options})
    layer.build([(None, side * side, dim), (None, 3, TEXT_DIM)])
    layer.keys.set_weights([np.eye(dim, dtype="float32"), np.zeros(dim, "float32")])
    query_bias = np.zeros(2 * dim, "float32")
    query_bias[0] = query_bias[dim] = 40.0
    layer.queries.set_weights([np.zeros((2 * TEXT_DIM, 2 * dim), "float32"), query_bias])
    return layer


def test_glimpse_finds_counts_and_locates_the_token_it_looks_for():
    side, dim = 4, 4
    layer = _pointing_glimpse(side, dim, gate_scores="raw")
    text = np.ones((2, 3, TEXT_DIM), "float32")
    image = np.zeros((2, side * side, dim), "float32")
    image[0, 1 * side + 2, 0] = 5.0  # row 1, column 2
    image[1, 3 * side + 0, 0] = 5.0  # row 3, column 0 ...
    image[1, 0 * side + 3, 0] = 5.0  # ... and row 0, column 3: two matches
    seen = {k: keras.ops.convert_to_numpy(v) for k, v in layer.look([image, text]).items()}
    line = np.linspace(-1.0, 1.0, side)
    np.testing.assert_allclose(seen["where"][0, 0], [line[2], line[1]], atol=1e-4)
    np.testing.assert_allclose(seen["where"][1, 1], [(line[0] + line[3]) / 2, (line[3] + line[0]) / 2], atol=1e-4)
    assert seen["attention"].shape == (2, 2, side * side) and seen["read"].shape == (2, 2, dim)
    np.testing.assert_allclose(seen["attention"].sum(-1), 1.0, rtol=1e-5)
    # Non-matching tokens score 0 (gate sigmoid(gate_bias) = sigmoid(-4), small); each match adds a gate of ~1:
    # the count tells one match from two.
    off = 1.0 / (1.0 + np.exp(4.0))
    np.testing.assert_allclose(seen["count"][:, 0], [1 + 15 * off, 2 + 14 * off], atol=1e-4)
    np.testing.assert_allclose(seen["peak"], 1.0, atol=1e-4)


def _count(layer, image, text):
    return keras.ops.convert_to_numpy(layer.look([image, text])["count"])


def test_glimpse_centered_gates_count_matches_whatever_all_tokens_score():
    side, dim = 4, 4
    text = np.ones((2, 3, TEXT_DIM), "float32")
    image = np.zeros((2, side * side, dim), "float32")
    image[0, 5, 0] = 5.0
    image[1, [3, 12], 0] = 5.0  # two matches
    centered, raw = _pointing_glimpse(side, dim), _pointing_glimpse(side, dim, gate_scores="raw")
    assert centered.gate_scores == "centered"  # the default
    # Scored against the image's mean token, the background sits below the gate bias: the count is the matches.
    np.testing.assert_allclose(_count(centered, image, text)[:, 0], [1.0, 2.0], atol=1e-3)
    # A key bias adds 10 to every token's score: softmax attention does not change, and neither do centered
    # gates, but raw gates then open on the background too.
    for layer in (centered, raw):
        layer.keys.set_weights([np.eye(dim, dtype="float32"), np.array([0.5, 0, 0, 0], "float32")])
    np.testing.assert_allclose(_count(centered, image, text)[:, 0], [1.0, 2.0], atol=1e-3)
    assert (_count(raw, image, text)[:, 0] > 10).all()
    # Masked image tokens neither count nor move the mean (a mask needs a glimpse without grid positions).
    masked = _pointing_glimpse(side, dim, grid_positions=False)
    mask = np.ones((2, side * side), bool)
    mask[:, 8:] = False
    image[:, 8:, 0] = 50.0
    counted = keras.ops.convert_to_numpy(masked.look([image, text], mask=[mask, None])["count"])
    np.testing.assert_allclose(counted[:, 0], [1.0, 1.0], atol=1e-3)


def test_glimpse_bilinear_relation_readout_is_every_offset_times_every_question_feature():
    layer = make("glimpse", grid_positions=True, relation_heads=2)
    assert layer.relation_readout == "bilinear" and not hasattr(layer, "relation_signs")
    relation = rng().normal(size=(3, 4)).astype("float32")  # (batch, heads x (column, row))
    question = rng(1).normal(size=(3, TEXT_DIM)).astype("float32")
    products = keras.ops.convert_to_numpy(layer._relation_by_question(relation, question))
    np.testing.assert_allclose(products, np.einsum("br,bq->brq", relation, question).reshape(3, -1), rtol=1e-6)
    image, text = rng().normal(size=(3, 9, IMAGE_DIM)).astype("float32"), rng(1).normal(size=(3, 5, TEXT_DIM)).astype("float32")
    assert layer([image, text]).shape == (3, UNITS)
    assert layer.output_projection.kernel.shape[0] == TEXT_DIM + 2 * (UNITS + 2 + 2) + 2 * 2 * (1 + TEXT_DIM)
    signed = make("glimpse", grid_positions=True, relation_heads=2, relation_readout="sign")
    assert signed([image, text]).shape == (3, UNITS) and signed.relation_signs.kernel.shape == (TEXT_DIM, 4)


def test_glimpse_configs_saved_before_a_default_changed_load_as_they_were_trained():
    glimpse = FUSIONS["glimpse"]
    recorded = glimpse.recorded_options({"relation_heads": 2})
    assert recorded == {"relation_heads": 2, "relation_readout": "bilinear", "gate_scores": "centered"}
    assert glimpse.recorded_options(None) == {"relation_readout": "bilinear", "gate_scores": "centered"}
    assert glimpse.saved_options(recorded) == recorded
    assert glimpse.saved_options({"relation_heads": 2}) == {"relation_heads": 2, "relation_readout": "sign",
                                                            "gate_scores": "raw"}
    old = {k: v for k, v in make("glimpse", grid_positions=True, relation_heads=1).get_config().items()
           if k not in ("relation_readout", "gate_scores")}
    restored = glimpse.from_config(old)
    assert (restored.relation_readout, restored.gate_scores) == ("sign", "raw")
    for kwargs, message in [(dict(relation_readout="tanh"), "relation_readout='tanh'"),
                            (dict(gate_scores="mean"), "gate_scores='mean'")]:
        with pytest.raises(ValueError, match=message):
            make("glimpse", **kwargs)


def test_glimpse_grid_positions_need_a_square_grid():
    image, text = rng().normal(size=(2, 3, IMAGE_DIM)).astype("float32"), rng(1).normal(size=(2, 5, TEXT_DIM)).astype("float32")
    layer = make("glimpse")
    assert layer([image, text]).shape == (2, UNITS) and "where" not in layer.look([image, text])
    with pytest.raises(ValueError, match="square grid .* Received: 3 image tokens"):
        make("glimpse", grid_positions=True)([image, text])
    with pytest.raises(ValueError, match="grid_positions=1"):
        make("glimpse", grid_positions=1)
    with pytest.raises(ValueError, match="raise `max_text_steps`. Received: text_features with 5 steps"):
        make("glimpse", max_text_steps=4)([image, text])


def _relation_glimpse(side, dim=4):
    """A GlimpseFusion with one relation head whose word t (one-hot text feature t) looks for image feature t."""
    layer = make("glimpse", num_glimpses=1, key_dim=dim, grid_positions=True, relation_heads=1)
    layer.build([(None, side * side, dim), (None, 3, TEXT_DIM)])
    layer.keys.set_weights([np.eye(dim, dtype="float32"), np.zeros(dim, "float32")])
    word_queries = np.zeros((TEXT_DIM, dim), "float32")
    word_queries[0, 0] = word_queries[1, 1] = 40.0
    layer.word_queries.set_weights([word_queries, np.zeros(dim, "float32")])
    layer.relation_words.set_weights([np.zeros((TEXT_DIM, 1), "float32"), np.zeros(1, "float32")])  # uniform beta
    return layer


def test_glimpse_relation_heads_compare_the_first_named_with_the_second():
    side, dim = 4, 4
    layer = _relation_glimpse(side, dim)
    image = np.zeros((1, side * side, dim), "float32")
    image[0, 1 * side + 0, 0] = 5.0  # object 0 at row 1, column 0
    image[0, 2 * side + 3, 1] = 5.0  # object 1 at row 2, column 3
    words = np.eye(TEXT_DIM, dtype="float32")
    first_0 = np.stack([words[0], words[1], words[4]])[None]  # "object 0 ... object 1 <pad>"
    first_1 = np.stack([words[1], words[0], words[4]])[None]  # "object 1 ... object 0 <pad>"
    mask = np.array([[True, True, False]])
    line = np.linspace(-1.0, 1.0, side)
    offset = np.array([line[0] - line[3], line[1] - line[2]])  # (column, row) of object 0 minus object 1
    relation = lambda text: keras.ops.convert_to_numpy(layer.look([image, text], mask=[None, mask])["relation"])
    # Two valid words of weight 1/2: the one pair's offset where_1 - where_2 (weighted mean over word pairs); the
    # padded third word counts for nothing.
    np.testing.assert_allclose(relation(first_0)[0, 0], offset, atol=1e-4)
    np.testing.assert_allclose(relation(first_1)[0, 0], -offset, atol=1e-4)
    assert layer([image, first_0], mask=[None, mask]).shape == (1, UNITS)


def test_glimpse_gate_bias_and_relation_heads_round_trip_and_are_checked():
    image, text = rng().normal(size=(2, 9, IMAGE_DIM)).astype("float32"), rng(1).normal(size=(2, 5, TEXT_DIM)).astype("float32")
    layer = make("glimpse", grid_positions=True, relation_heads=2, gate_bias=-2.5)
    expected = keras.ops.convert_to_numpy(layer([image, text]))
    config = layer.get_config()
    assert config["relation_heads"] == 2 and config["gate_bias"] == -2.5
    restored = type(layer).from_config(config)
    restored([image, text])
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored([image, text])), expected, atol=1e-6)
    assert float(keras.ops.convert_to_numpy(layer.gate_bias_weight)) == -2.5
    # A config saved before the gate bias existed loads without one (its weights then fit).
    old = {k: v for k, v in make("glimpse").get_config().items() if k not in ("gate_bias", "relation_heads")}
    assert type(layer).from_config(old).gate_bias is None
    for kwargs, message in [
        (dict(relation_heads=1), "need grid_positions=True"),
        (dict(grid_positions=True, relation_heads=-1), "relation_heads=-1"),
        (dict(gate_bias="low"), "gate_bias='low'"),
        (dict(gate_bias=float("nan")), "gate_bias=nan"),
    ]:
        with pytest.raises(ValueError, match=message):
            make("glimpse", **kwargs)
