"""Masked modelling: BERT masking, region masking, training, transfer, distribution, mixed precision, export."""

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
from helpers import tiny_batch, tiny_dataset, tiny_overrides
from mmzoo.classifier import get_backbone
from mmzoo.trainers import MaskedPretrainer
from mmzoo.trainers.masked import mask_regions, mask_tokens

pytestmark = pytest.mark.xdist_group("trainer_masked")
HARNESS = pathlib.Path(__file__).parent / "scripts" / "trainer_replicas.py"


def tiny_pretrainer(**options):
    model = mmzoo.build_model("small_cnn_bilstm_attention", **tiny_overrides(dropout=0.0))
    return MaskedPretrainer(model, **{"mask_rate": 0.3, "seed": 1, **options})


def test_mask_tokens_follows_bert_recipe():
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 50, size=(4000, 16))
    ids[:, 12:] = 0  # padding
    ids = tf.constant(ids, tf.int64)
    masked, chosen = mask_tokens(ids, rate=0.15, mask_token_id=1, vocabulary_size=50, seed=tf.constant([3, 4], tf.int64))
    masked, chosen, ids = masked.numpy(), chosen.numpy(), ids.numpy()
    assert not chosen[:, 12:].any() and (masked[:, 12:] == 0).all()
    assert abs(chosen[:, :12].mean() - 0.15) < 0.01
    np.testing.assert_array_equal(masked[~chosen], ids[~chosen])
    as_mask = (masked[chosen] == 1).mean()
    unchanged = (masked[chosen] == ids[chosen]).mean()
    assert abs(as_mask - 0.8) < 0.02
    assert abs(unchanged - (0.1 + 0.1 / 48)) < 0.02  # kept, plus random draws that hit the same word
    assert ((masked[chosen] >= 2) | (masked[chosen] == 1)).all()
    again, _ = mask_tokens(tf.constant(ids), rate=0.15, mask_token_id=1, vocabulary_size=50, seed=tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(again.numpy(), masked)


def test_mask_regions_blanks_chosen_cells_and_returns_their_colours():
    image = tf.constant(np.random.default_rng(1).uniform(0, 255, size=(3, 8, 8, 3)), tf.float32)
    masked, chosen, colors = mask_regions(image, rate=0.5, grid=2, cell=4, seed=tf.constant([0, 1], tf.int64))
    masked, chosen, colors, image = masked.numpy(), chosen.numpy(), colors.numpy(), image.numpy()
    assert chosen.shape == (3, 4) and colors.shape == (3, 4, 3)
    assert 0 < chosen.sum() < chosen.size
    for b in range(3):
        for cell in range(4):
            rows, cols = slice(4 * (cell // 2), 4 * (cell // 2) + 4), slice(4 * (cell % 2), 4 * (cell % 2) + 4)
            np.testing.assert_allclose(colors[b, cell], image[b, rows, cols].mean(axis=(0, 1)) / 255, rtol=1e-5)
            expected = 0.0 if chosen[b, cell] else image[b, rows, cols]
            np.testing.assert_allclose(masked[b, rows, cols], expected)


def test_pretrainer_trains_towers_in_place_and_initializes_another_classifier():
    keras.utils.set_random_seed(0)
    pretrainer = tiny_pretrainer(image_mask_rate=0.25)
    fusion_before = [w.numpy() for w in get_backbone(pretrainer.classifier).get_layer("fusion").weights]
    pretrainer.compile(optimizer=keras.optimizers.Adam(0.01))
    before = pretrainer.evaluate(tiny_dataset(), verbose=0, return_dict=True)
    history = pretrainer.fit(tiny_dataset(), epochs=8, verbose=0).history
    after = pretrainer.evaluate(tiny_dataset(), verbose=0, return_dict=True)
    assert set(history) == {"loss", "token_loss", "region_loss", "token_accuracy"}
    assert after["token_loss"] < 0.8 * before["token_loss"] and np.isfinite(after["region_loss"])
    assert np.isclose(history["loss"][-1], history["token_loss"][-1] + history["region_loss"][-1], rtol=1e-4)
    fusion_after = get_backbone(pretrainer.classifier).get_layer("fusion").weights
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(fusion_before, fusion_after))

    other = mmzoo.build_model("small_cnn_bilstm_attention", **tiny_overrides(num_classes=5, class_names=None))
    copied = pretrainer.initialize(other)
    assert "fusion" in copied and "small_cnn_tower" in copied and "head" not in copied
    for name in copied:
        for a, b in zip(get_backbone(other).get_layer(name).weights, get_backbone(pretrainer.classifier).get_layer(name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert get_backbone(other).get_layer("head").logits.kernel.shape[-1] == 5


def test_the_image_changes_the_predicted_tokens():
    keras.utils.set_random_seed(0)
    pretrainer = tiny_pretrainer()
    x, _ = tiny_batch(batch_size=4)
    token_ids = pretrainer.vectorizer(tf.constant(list(x["text"])))
    with_image = pretrainer({"image": tf.constant(x["image"], tf.float32), "token_ids": token_ids})
    blank = pretrainer({"image": tf.zeros_like(tf.constant(x["image"], tf.float32)), "token_ids": token_ids})
    assert with_image.shape == (4, token_ids.shape[1], pretrainer.vocabulary_size)
    assert float(tf.reduce_max(tf.abs(with_image - blank))) > 1e-4


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mask_rate": 0.0}, r"`mask_rate` must be a number in \(0, 1\). Received: mask_rate=0.0"),
        ({"mask_rate": 1.0}, r"`mask_rate` must be a number in \(0, 1\)"),
        ({"mask_rate": -0.2}, r"`mask_rate` must be a number in \(0, 1\)"),
        ({"mask_rate": "0.15"}, r"`mask_rate` must be a number"),
        ({"image_mask_rate": 1.0}, r"`image_mask_rate` must be a number in \[0, 1\)"),
        ({"mask_token_id": 0}, r"`mask_token_id` must be an id in \[1, "),
        ({"seed": "x"}, r"`seed` must be None or an integer"),
    ],
)
def test_invalid_settings_raise_before_training(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_pretrainer(**options)


def test_classifiers_without_token_fusion_are_refused():
    pooled = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    with pytest.raises(ValueError, match=r"token-level fusion \(attention, coattention\).*Received: a classifier with fusion ConcatFusion"):
        MaskedPretrainer(pooled)
    with pytest.raises(ValueError, match=r"must be an mmzoo classifier \(mmzoo.build_model\)"):
        MaskedPretrainer(keras.Sequential([keras.layers.Dense(2)]))


def test_the_masked_text_must_be_the_fusions_last_input_and_regions_need_one_image():
    options = tiny_overrides(dropout=0.0)
    options.pop("num_classes")
    text_first = mmzoo.build_classifier(towers={"text": "bilstm", "image": "small_cnn"}, fusion="attention", **options)
    with pytest.raises(ValueError, match=r"fusion's last input, which must be text. Received: inputs \[\('text', 'text'\)"):
        MaskedPretrainer(text_first)
    views = mmzoo.build_classifier(towers={"front": "small_cnn", "side": "small_cnn", "question": "bilstm"},
                                   fusion="attention", **options)
    pretrainer = MaskedPretrainer(views, mask_rate=0.3, seed=1)
    assert pretrainer.text_key == "question_token_ids"
    x, y = tiny_batch(batch_size=4)
    data = tf.data.Dataset.from_tensor_slices(
        ({"front": x["image"], "side": x["image"][::-1], "question": list(x["text"])}, y)).batch(4)
    pretrainer.compile(optimizer="adam")
    assert np.isfinite(pretrainer.fit(data, epochs=1, verbose=0).history["token_loss"]).all()
    with pytest.raises(ValueError, match="exactly one image input. Received: image_mask_rate=0.25"):
        MaskedPretrainer(views, image_mask_rate=0.25)


def test_initialize_refuses_another_vocabulary_or_recipe():
    pretrainer = tiny_pretrainer()
    other_words = mmzoo.build_model("small_cnn_bilstm_attention", **tiny_overrides(vocabulary=["a", "b", "c"]))
    with pytest.raises(ValueError, match="must use the pretraining vocabulary"):
        pretrainer.initialize(other_words)
    other_recipe = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    with pytest.raises(ValueError, match="has no layer 'bilstm_tower_embedding'"):
        pretrainer.initialize(other_recipe)


def test_fit_needs_a_dataset():
    pretrainer = tiny_pretrainer()
    pretrainer.compile(optimizer="adam")
    x, y = tiny_batch()
    with pytest.raises(ValueError, match=r"batched tf.data.Dataset.*Received: x=dict"):
        pretrainer.fit(x, epochs=1, verbose=0)


def test_export_serves_the_classifier_never_the_trainer(tmp_path):
    pretrainer = tiny_pretrainer()
    pretrainer.compile(optimizer="adam")
    pretrainer.fit(tiny_dataset(batches=1), epochs=1, verbose=0)
    target = mmzoo.export_model(pretrainer, tmp_path / "masked")
    served = mmzoo.load_exported(target)
    x, _ = tiny_batch(batch_size=2)
    outputs = served({"image": x["image"], "text": list(x["text"])})
    expected = tf.nn.softmax(pretrainer.classifier({"image": tf.constant(x["image"], tf.float32), "text": tf.constant(list(x["text"]))}))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    with pytest.raises(ValueError, match="training wrapper and is never exported"):
        pretrainer.export(str(tmp_path / "raw"))


def one_sgd_step_change(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        pretrainer = tiny_pretrainer()
        pretrainer.compile(optimizer=keras.optimizers.SGD(0.1))
        kernel = get_backbone(pretrainer.classifier).get_layer("fusion").text_projection.kernel
        before = kernel.numpy().astype(np.float32)
        pretrainer.fit(tiny_dataset(batches=1), epochs=1, verbose=0)
        return pretrainer, np.abs(kernel.numpy().astype(np.float32) - before).max()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_scales_the_loss_and_trains():
    _, full = one_sgd_step_change("float32")
    pretrainer, mixed = one_sgd_step_change("mixed_float16")
    assert isinstance(pretrainer.optimizer, keras.optimizers.LossScaleOptimizer)
    # Without scale_loss the step would be 32768x too small; with it, float16 rounding only.
    assert 0.5 < mixed / full < 2.0
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        pretrainer = tiny_pretrainer()
        pretrainer.compile(optimizer=keras.optimizers.Adam(0.01))
        before = pretrainer.evaluate(tiny_dataset(), verbose=0, return_dict=True)["token_loss"]
        losses = pretrainer.fit(tiny_dataset(), epochs=8, verbose=0).history["token_loss"]
        after = pretrainer.evaluate(tiny_dataset(), verbose=0, return_dict=True)["token_loss"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # Evaluation masks are the same every time, so before/after compare like with like.
    assert np.isfinite(losses).all() and after < 0.8 * before


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, str(HARNESS), "masked"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_step"] > 1e-3
    assert result["max_abs_diff"] <= 1e-5
