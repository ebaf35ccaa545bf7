"""build_model: overrides, a recipe that learns with graph-mode fit, and clear errors for bad arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
import mmzoo.recipes
from helpers import VOCABULARY, tiny_batch, tiny_overrides

pytestmark = pytest.mark.xdist_group("build_model")


def _yes_no_colour_task(n, seed):
    """'is it red' / 'is it blue' about a red or blue image: the answer needs both image and text."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 2, n)
    asks = rng.integers(0, 2, n)
    images = rng.integers(0, 40, (n, 32, 32, 3)).astype(np.uint8)
    images[colours == 0, 8:24, 8:24, 0] = 220
    images[colours == 1, 8:24, 8:24, 2] = 220
    texts = np.array(["is it red" if a == 0 else "is it blue" for a in asks], dtype=object)
    return {"image": images, "text": texts}, (colours == asks).astype(np.int64)


def test_small_recipe_learns_a_task_that_needs_both_modalities_with_fit():
    keras.utils.set_random_seed(0)
    x, y = _yes_no_colour_task(256, seed=0)
    model = mmzoo.build_model(
        "small_cnn_lstm_concat", class_names=["no", "yes"], texts=list(x["text"]), image_size=32, sequence_length=4
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(256, seed=0).batch(32)
    history = model.fit(dataset, epochs=12, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    x_test, y_test = _yes_no_colour_task(128, seed=1)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.9, history.history


def test_overrides_reach_the_model():
    model = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(sequence_length=5, fusion_units=12, dropout=0.0))
    assert model.input["image"].shape == (None, 32, 32, 3)
    assert mmzoo.get_vectorizer(model).get_config()["output_sequence_length"] == 5
    assert mmzoo.get_vectorizer(model).get_vocabulary()[2:] == VOCABULARY
    backbone = mmzoo.get_backbone(model)
    assert backbone.get_layer("head").logits.kernel.shape == (12, 3)
    assert set(backbone.input) == {"image", "token_ids"}


def test_num_classes_follows_class_names_and_describe():
    model = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(num_classes=None, class_names=["a", "b", "c", "d"]))
    assert model.output.shape == (None, 4)
    assert "CPU" in mmzoo.describe_recipe("small_cnn_lstm_concat")


def test_register_recipe_adds_a_buildable_recipe():
    @mmzoo.register_recipe
    def tiny_test_gru_sum():
        """Small CNN + GRU summed; registered by a test."""
        return dict(image_tower="small_cnn", text_tower="gru", fusion="sum")

    try:
        assert "tiny_test_gru_sum" in mmzoo.list_models()
        assert mmzoo.build_model("tiny_test_gru_sum", **tiny_overrides()).output.shape == (None, 3)
        with pytest.raises(ValueError, match="already registered"):
            mmzoo.register_recipe(tiny_test_gru_sum)
    finally:
        mmzoo.recipes._RECIPES.pop("tiny_test_gru_sum")


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("nope", {}, r"Unknown recipe 'nope'. Expected one of: .*resnet50_lstm_concat"),
        ("small_cnn_lstm_concat", {"colour": 1}, r"Unknown argument\(s\) \['colour'\].*Accepted: towers, image_tower"),
        ("small_cnn_lstm_concat", {"num_classes": 1, "class_names": None}, "num_classes=1"),
        ("small_cnn_lstm_concat", {"num_classes": None, "class_names": None}, "Give `num_classes` or `class_names`"),
        ("small_cnn_lstm_concat", {"class_names": ["a", "b"]}, "one name per class"),
        ("resnet50_lstm_concat", {"image_size": 16}, r"image_size` must be an integer >= 32.*image_size=16"),
        ("small_cnn_lstm_concat", {"vocabulary": []}, "at least one token"),
        ("small_cnn_lstm_concat", {"vocabulary": None}, "Give `vocabulary`"),
        ("small_cnn_lstm_concat", {"texts": ["a b"]}, "either `vocabulary` or `texts`"),
        ("small_cnn_lstm_concat", {"fusion": "bilinear"}, r"Unknown fusion 'bilinear'. Expected one of: attention, coattention"),
        ("small_cnn_lstm_concat", {"image_tower": "vit"}, r"Unknown image tower 'vit'. Expected one of: coord_cnn, mobilenet_v3_small"),
        ("small_cnn_lstm_concat", {"text_tower": "rnn"}, r"Unknown text tower 'rnn'. Expected one of: bilstm, gru, lstm"),
        ("small_cnn_lstm_concat", {"dropout": 1.5}, "dropout=1.5"),
        ("small_cnn_lstm_concat", {"sequence_length": 0}, "sequence_length=0"),
        ("small_cnn_lstm_concat", {"fusion_units": 0}, "units=0"),
    ],
)
def test_bad_arguments_raise_clear_errors(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        mmzoo.build_model(name, **tiny_overrides(**overrides))


@pytest.mark.parametrize("name", ["small_cnn_bilstm_attention", "resnet50_lstm_lowrank"])
def test_mixed_float16_recipe_trains_with_float32_logits(name):
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = mmzoo.build_model(name, **tiny_overrides())
        model.compile(
            optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True
        )
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        x, y = _yes_no_colour_task(8, seed=2)
        logits = model(x, training=False)
        assert logits.dtype == "float32" and np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))
        assert np.isfinite(model.train_on_batch(x, y))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_single_tower_classifiers_take_only_their_input():
    options = tiny_overrides(dropout=0.0)
    text_only = mmzoo.build_classifier(image_tower=None, text_tower="gru", fusion=None, **options)
    image_only = mmzoo.build_classifier(image_tower="small_cnn", text_tower=None, fusion=None, **options)
    assert set(text_only.input) == {"text"} and set(image_only.input) == {"image"}
    assert mmzoo.get_vectorizer(image_only) is None
    x, _ = tiny_batch(batch_size=3)
    assert text_only({"text": tf.constant(list(x["text"]))}).shape == (3, 3)
    assert image_only({"image": tf.constant(x["image"], tf.float32)}).shape == (3, 3)
    # Every classifier has a joint embedding of width fusion_units in front of its head.
    assert mmzoo.get_backbone(image_only).get_layer("fusion").units == options["fusion_units"]


@pytest.mark.parametrize(
    "towers, message",
    [
        (dict(image_tower=None, text_tower=None, fusion=None), r"Give an `image_tower`, a `text_tower` or both"),
        (dict(image_tower=None, text_tower="gru", fusion="concat"), r"single-tower classifier has nothing to fuse"),
        (dict(image_tower="small_cnn", text_tower="gru", fusion=None), r"Unknown fusion 'None'"),
    ],
)
def test_tower_and_fusion_combinations_are_checked(towers, message):
    with pytest.raises(ValueError, match=message):
        mmzoo.build_classifier(**towers, **tiny_overrides())


def test_feature_model_shares_the_backbone_after_its_image_tower():
    model = mmzoo.build_model("coord_cnn_gru_glimpse", **tiny_overrides(dropout=0.0))
    backbone, tower = mmzoo.get_backbone(model), mmzoo.get_image_tower(model)
    features = mmzoo.get_feature_model(model)
    x, labels = tiny_batch(batch_size=4)
    token_ids = mmzoo.get_vectorizer(model)(tf.constant(list(x["text"])))
    image = tf.constant(x["image"], tf.float32)
    tokens = tower(image)

    def both():
        return (keras.ops.convert_to_numpy(backbone({"image": image, "token_ids": token_ids})),
                keras.ops.convert_to_numpy(features({"image": tokens, "token_ids": token_ids})))

    np.testing.assert_allclose(*both(), atol=1e-5)
    assert not {id(w) for w in tower.weights} & {id(w) for w in features.weights}
    # Fitting the feature model trains the backbone's own layers: the two still agree, and the backbone moved.
    before = both()[0]
    features.compile(optimizer=keras.optimizers.Adam(0.05),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    features.fit({"image": tokens, "token_ids": token_ids}, labels, epochs=2, verbose=0)
    after_backbone, after_features = both()
    np.testing.assert_allclose(after_backbone, after_features, atol=1e-5)
    assert np.abs(after_backbone - before).max() > 1e-3
    text_only = mmzoo.build_classifier(image_tower=None, text_tower="gru", fusion=None, **tiny_overrides())
    with pytest.raises(ValueError, match="needs a classifier with an image tower"):
        mmzoo.get_feature_model(text_only)


def test_text_token_embeddings_need_a_token_fusion():
    model = mmzoo.build_model("coord_cnn_gru_glimpse", **tiny_overrides())
    text_tokens = mmzoo.get_backbone(model).get_layer("fusion").input[1]
    assert text_tokens.shape[-1] == 16 + 16  # embedding_dim + text_units
    with pytest.raises(ValueError, match="text_token_embeddings=True` needs a fusion that attends over text tokens"):
        mmzoo.build_model("small_cnn_lstm_concat", text_token_embeddings=True, **tiny_overrides())
