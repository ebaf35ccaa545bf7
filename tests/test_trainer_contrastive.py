"""Contrastive dual encoder: trains with fit, recall@k is right, same step on 2 replicas as on 1, mixed
precision, argument checks, and an export serving both encoders."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
import mmzoo.data
from helpers import IMAGE_SIZE, TEXTS, VOCABULARY, tiny_batch
from mmzoo.images import resize_image
from mmzoo.trainers.contrastive import (
    DualEncoder,
    LogitScale,
    build_dual_encoder,
    evaluate_retrieval,
    retrieval_recall,
    same_text_positives,
)

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "trainer_replicas.py"
SEQUENCE_LENGTH = 40  # the longest bundled caption (four objects) has 36 tokens
TINY = dict(
    text_tower="gru", image_size=IMAGE_SIZE, sequence_length=SEQUENCE_LENGTH, projection_dim=16, embedding_dim=16,
    text_units=16,
)
RECALL_METRICS = [f"{d}_recall_at_{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)]


def _captions(split, batch_size=16):
    config = mmzoo.data.shapes_config("captions", image_size=IMAGE_SIZE, num_train=64, num_validation=32, num_test=32)
    return mmzoo.data.load("mmzoo_shapes", split, batch_size=batch_size, config=config, seed=0, with_info=True)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    train, info = _captions("train")
    validation, _ = _captions("validation")
    dual = build_dual_encoder(vocabulary=info.vocabulary, **TINY)
    dual.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = dual.fit(train, validation_data=validation, epochs=4, verbose=0)
    return dual, history.history, validation


@pytest.mark.xdist_group("contrastive")
def test_fit_on_captions_lowers_the_loss_and_reports_every_metric(trained):
    dual, history, validation = trained
    assert history["loss"][-1] < history["loss"][0]
    for name in ["loss", "i2t_loss", "t2i_loss", "temperature"] + RECALL_METRICS:
        assert name in history and f"val_{name}" in history, name
        assert np.all(np.isfinite(history[name]))
    for name in RECALL_METRICS:
        assert all(0.0 <= value <= 1.0 for value in history[name] + history[f"val_{name}"]), name
    # The total is the mean of the two directions; the temperature was learned and stayed in CLIP's range.
    np.testing.assert_allclose(history["loss"], np.add(history["i2t_loss"], history["t2i_loss"]) / 2, rtol=1e-5)
    assert history["temperature"][-1] != pytest.approx(0.07, abs=1e-6)
    assert 0.01 <= float(dual.temperature) <= 1.0
    evaluated = dual.evaluate(validation, verbose=0, return_dict=True)
    assert set(RECALL_METRICS) <= set(evaluated)


@pytest.mark.xdist_group("contrastive")
def test_whole_split_recall_of_the_trained_model(trained):
    dual, _, validation = trained
    result = evaluate_retrieval(dual, validation)
    assert result["num_examples"] == 32
    for k in (1, 5, 10):
        for direction in ("i2t", "t2i"):
            assert 0.0 <= result[f"{direction}_recall_at_{k}"] <= 1.0
            assert result[f"{direction}_chance_at_{k}"] == pytest.approx(k / 32, abs=0.05)


def test_recall_at_k_on_hand_made_embeddings():
    # Rank of the right text for image 0..3: 0, 1 (text 2 first), 3 (last), 0.
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.6, -0.8]])
    texts = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.6, -0.8]])
    result = retrieval_recall(images, texts, ks=(1, 2, 4))
    assert result["i2t_recall_at_1"] == pytest.approx(2 / 4)  # images 0 and 3
    assert result["i2t_recall_at_2"] == pytest.approx(3 / 4)  # + image 1
    assert result["i2t_recall_at_4"] == 1.0
    # Rank of the right image for text 0..3: 0, 0, 3 (image 2 is the farthest from text 2), 0.
    assert result["t2i_recall_at_1"] == pytest.approx(3 / 4)
    assert result["i2t_chance_at_1"] == pytest.approx(1 / 4) and result["t2i_chance_at_2"] == pytest.approx(2 / 4)
    # Embeddings need not be normalised: cosine similarity.
    assert retrieval_recall(images * 7.0, texts * [[1.0], [3.0], [0.5], [2.0]], ks=(1, 2, 4)) == result


def test_ties_count_against_the_query_and_identical_texts_can_count_as_matches():
    collapsed = np.ones((5, 3))
    assert retrieval_recall(collapsed, collapsed, ks=(1, 4))["i2t_recall_at_1"] == 0.0
    assert retrieval_recall(collapsed, collapsed, ks=(1, 5))["i2t_recall_at_5"] == 1.0
    # Images 0 and 1 have the same caption: either caption answers either image.
    positives = same_text_positives(["a red circle", "a red circle", "a blue square"])
    assert positives.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    images = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    texts = np.array([[1.0, 0.1], [1.0, 0.0], [0.0, 1.0]])  # the two red-circle texts swapped
    assert retrieval_recall(images, texts, ks=(1,))["i2t_recall_at_1"] == pytest.approx(1 / 3)
    matched = retrieval_recall(images, texts, ks=(1,), positives=positives)
    assert matched["i2t_recall_at_1"] == 1.0 and matched["t2i_recall_at_1"] == 1.0
    assert matched["i2t_chance_at_1"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)


def test_in_batch_recall_metrics_agree_with_the_split_function():
    dual = build_dual_encoder(vocabulary=VOCABULARY, **TINY)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(12, 16)).astype("float32")
    texts = (images + rng.normal(scale=1.0, size=(12, 16))).astype("float32")
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    dual.update_extra_metrics(None, None, {"image": tf.constant(images), "text": tf.constant(texts)})
    expected = retrieval_recall(images, texts)
    assert 0.0 < expected["i2t_recall_at_1"] < 1.0
    for metric in dual.recall_trackers:
        assert float(metric.result()) == pytest.approx(expected[metric.name]), metric.name


def test_temperature_is_clamped_like_clip():
    layer = LogitScale(temperature=0.07)
    layer.build()
    assert float(layer.log_scale) == pytest.approx(np.log(1 / 0.07), rel=1e-6)
    layer.log_scale.assign(10.0)  # beyond log(100): the forward pass clamps, the optimizer's constraint too
    similarities = layer(tf.constant([[1.0, 0.0]]), tf.constant([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(similarities.numpy(), [[100.0, 0.0]], rtol=1e-5)
    keras.optimizers.SGD(0.1).apply([tf.constant(0.0)], [layer.log_scale])
    assert float(layer.log_scale) == pytest.approx(np.log(100.0), rel=1e-6)
    fixed = build_dual_encoder(vocabulary=VOCABULARY, learn_temperature=False, **TINY)
    assert not fixed.logit_scale.trainable_weights
    assert "logit_scale/log_scale" not in [variable.path for variable in fixed.trainable_variables]


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica():
    # In-batch negatives come from the global batch: embeddings are gathered across replicas.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "contrastive"], capture_output=True, text=True, env=env, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_abs_diff"] <= 1e-5, result
    assert result["max_step"] > 0, result
    assert result["loss_1"] == pytest.approx(result["loss_2"], rel=1e-5)


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_trains_under_mixed_float16(mixed_precision):
    keras.utils.set_random_seed(1)
    x, _ = tiny_batch(batch_size=16, seed=2)
    images = x["image"][:, ::2, ::2]  # 16 px
    texts = [" ".join(VOCABULARY[i % 12 : i % 12 + 3] + [VOCABULARY[i // 12]]) for i in range(16)]
    dataset = tf.data.Dataset.from_tensor_slices({"image": images, "text": texts}).batch(8)
    dual = build_dual_encoder(vocabulary=VOCABULARY, **dict(TINY, image_size=16, sequence_length=4))
    dual.compile(optimizer=keras.optimizers.Adam(3e-3))
    assert isinstance(dual.optimizer, keras.optimizers.LossScaleOptimizer)
    assert dual.image_encoder.get_layer("image_projection").compute_dtype == "float16"
    history = dual.fit(dataset, epochs=5, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    embeddings = dual({"image": images[:2], "token_ids": dual.vectorizer(tf.constant(texts[:2]))})
    assert embeddings["image"].dtype == "float32" and embeddings["text"].dtype == "float32"
    assert dual.logit_scale(embeddings["image"], embeddings["text"]).dtype == "float32"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"projection_dim": 0}, r"`projection_dim` must be a positive integer. Received: projection_dim=0"),
        ({"projection_dim": 8.5}, r"Received: projection_dim=8.5"),
        ({"temperature": 0.0}, r"`temperature` must be a positive number. Received: temperature=0.0"),
        ({"temperature": -0.1}, r"Received: temperature=-0.1"),
        ({"temperature": 2.0}, r"\[0.01, 1.0\]. Received: temperature=2.0"),
        ({"min_temperature": 0.5, "max_temperature": 0.1}, r"Received: min_temperature=0.5, max_temperature=0.1"),
        ({"max_temperature": float("inf")}, r"Received: max_temperature=inf"),
        ({"recall_at": [0, 5]}, r"Received: recall_at=\[0, 5\]"),
        ({"recall_at": 5}, r"Received: recall_at=5"),
        ({"dropout": 1.0}, r"Received: dropout=1.0"),
        ({"image_pooling": "max"}, r"Received: image_pooling='max'"),
        ({"image_tower": "vgg"}, r"Received: image_tower='vgg'"),
        ({"text_tower": "transformer"}, r"Received: text_tower='transformer'"),
        ({"sequence_length": 0}, r"Received: sequence_length=0"),
        ({"vocabulary": None}, r"Received: vocabulary=None, texts=None"),
    ],
)
def test_invalid_settings_raise_before_training(overrides, message):
    settings = dict(TINY, vocabulary=VOCABULARY)
    settings.update(overrides)
    with pytest.raises(ValueError, match=message):
        build_dual_encoder(**settings)


def test_dual_encoder_checks_its_encoders():
    dual = build_dual_encoder(vocabulary=VOCABULARY, **TINY)
    pixels = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    narrow = keras.Model(pixels, keras.layers.Dense(8)(keras.layers.Flatten()(pixels)))
    with pytest.raises(ValueError, match="same space"):
        DualEncoder(narrow, dual.text_encoder)
    with pytest.raises(ValueError, match="TextVectorization"):
        DualEncoder(dual.image_encoder, dual.text_backbone)
    with pytest.raises(ValueError, match="Received: learn_temperature='yes'"):
        DualEncoder(dual.image_encoder, dual.text_encoder, learn_temperature="yes")
    assert {name: m.kind for name, m in dual.modalities.items()} == {"image": "image", "text": "text"}
    assert dual.modalities["text"].sequence_length == TINY["sequence_length"]
    with pytest.raises(ValueError, match=r"needs input\(s\) \['text'\]"):
        dual.preprocess({"image": np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3))})
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        dual.compile(optimizer="adam")
        dual.fit({"image": np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3)), "text": np.array(["a", "b"])})


@pytest.mark.xdist_group("contrastive")
def test_export_serves_both_encoders(trained, tmp_path):
    dual, _, validation = trained
    with pytest.raises(ValueError, match="never exported"):
        dual.export(tmp_path / "wrapper")
    version = mmzoo.export_model(dual, tmp_path / "retrieval")
    assert version == str(tmp_path / "retrieval" / "1") and sorted(os.listdir(tmp_path / "retrieval")) == ["1"]
    served = mmzoo.load_exported(tmp_path / "retrieval")
    assert set(served.signatures) == {"embed_image", "embed_image_bytes", "embed_text", "serving_default"}
    image_spec = served.signatures["embed_image"].structured_input_signature[1]["image"]
    assert image_spec.dtype == tf.uint8 and image_spec.shape.as_list() == [None, None, None, 3]
    assert served.image_sizes() == {"image": (IMAGE_SIZE, IMAGE_SIZE)}

    batch, _ = next(iter(validation))
    images, texts = batch["image"].numpy(), [t.decode() for t in batch["text"].numpy()]
    expected_images = dual.image_encoder(images.astype("float32"), training=False).numpy()
    expected_texts = dual.text_encoder(tf.constant(texts), training=False).numpy()
    np.testing.assert_allclose(served.embed_images(images), expected_images, atol=1e-5)
    np.testing.assert_allclose(served.embed_texts(texts), expected_texts, atol=1e-5)
    np.testing.assert_allclose(served.embed_texts(TEXTS), dual.text_encoder(tf.constant(TEXTS)).numpy(), atol=1e-5)
    png = [tf.io.encode_png(image).numpy() for image in images]
    np.testing.assert_allclose(served.embed_image_bytes(png), expected_images, atol=1e-5)
    # Larger pixels are resized inside the signature as the data pipeline resizes them.
    large = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    resized = resize_image(large, IMAGE_SIZE).numpy().astype("float32")
    np.testing.assert_allclose(served.embed_images(large), dual.image_encoder(resized, training=False).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served.embed_images(images), axis=1), 1.0, atol=1e-5)
    # What a vector index would do with the served embeddings is what evaluate_retrieval measures.
    ours = retrieval_recall(expected_images, expected_texts)
    assert retrieval_recall(served.embed_images(images), served.embed_texts(texts)) == ours
    with pytest.raises(ValueError, match="has no signature 'embed_audio'"):
        served.embed("audio", images)


def test_config_round_trip():
    dual = build_dual_encoder(vocabulary=VOCABULARY, temperature=0.05, recall_at=(1, 3), **TINY)
    clone = DualEncoder.from_config(dual.get_config())
    assert clone.recall_at == (1, 3) and clone.logit_scale.temperature == 0.05
    assert [m.name for m in clone.metrics] == [m.name for m in dual.metrics]
    clone.set_weights(dual.get_weights())
    images, _ = tiny_batch(batch_size=3)
    np.testing.assert_allclose(
        clone.image_encoder(images["image"].astype("float32")), dual.image_encoder(images["image"].astype("float32")), atol=1e-6
    )
    np.testing.assert_allclose(clone.text_encoder(tf.constant(TEXTS)), dual.text_encoder(tf.constant(TEXTS)), atol=1e-6)
