"""Image and text towers: output modes, preprocessing, freezing, weights files, and their argument errors."""

import keras
import numpy as np
import pytest

from mmzoo.towers import (
    ResNetPreprocessing,
    adapt_vocabulary,
    apply_text_tower,
    build_image_tower,
    build_text_vectorizer,
    list_towers,
)


@pytest.mark.parametrize("tower", list_towers("image"))
def test_image_tower_output_modes(tower):
    pooled = build_image_tower(tower, image_size=64, output="pooled")
    tokens = build_image_tower(tower, image_size=64, output="tokens")
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)).astype("float32")
    vector, grid = pooled(pixels), tokens(pixels)
    assert vector.shape[0] == 2 and len(vector.shape) == 2
    assert grid.shape[0] == 2 and len(grid.shape) == 3 and grid.shape[-1] == vector.shape[-1]


def test_resnet50_token_grid_is_the_final_feature_map():
    tokens = build_image_tower("resnet50", image_size=64, output="tokens")
    assert tokens.output.shape == (None, 4, 2048)  # 64 px / 32 = a 2x2 grid; 224 px gives 7x7 = 49


def test_resnet_preprocessing_matches_keras_applications():
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.resnet50.preprocess_input(pixels.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ResNetPreprocessing()(pixels)), expected, atol=1e-4)


def test_resnet50_partial_freezing_trains_only_the_last_stages():
    tower = build_image_tower("resnet50", image_size=32, trainable_stages=1)
    resnet = tower.get_layer("resnet50")
    trainable = {layer.name for layer in resnet.layers if layer.trainable_weights}
    assert trainable and all(name.startswith("conv5_") for name in trainable)
    assert any(layer.name.startswith("conv5_") for layer in resnet.layers if layer.trainable_weights)
    assert not resnet.get_layer("conv4_block6_out").trainable_weights
    frozen = build_image_tower("resnet50", image_size=32, trainable_stages=0)
    assert frozen.trainable_weights == []
    everything = build_image_tower("resnet50", image_size=32)
    assert len(everything.trainable_weights) > len(tower.trainable_weights)


def test_image_weights_from_a_local_file(tmp_path):
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "resnet50_notop.weights.h5"
    source.save_weights(path)
    tower = build_image_tower("resnet50", image_size=32, weights=path)
    loaded = tower.get_layer("resnet50").weights
    for expected, got in zip(source.weights, loaded):
        np.testing.assert_array_equal(expected.numpy(), got.numpy())


def test_small_cnn_weights_round_trip(tmp_path):
    first = build_image_tower("small_cnn", image_size=32)
    path = tmp_path / "small_cnn.weights.h5"
    first.get_layer("small_cnn_backbone").save_weights(path)
    second = build_image_tower("small_cnn", image_size=32, weights=path, output="tokens")
    pixels = np.full((1, 32, 32, 3), 100.0, "float32")
    np.testing.assert_allclose(
        first.get_layer("small_cnn_backbone")(pixels), second.get_layer("small_cnn_backbone")(pixels), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(tower="nope"), "Unknown image tower 'nope'. Expected one of: coord_cnn, mobilenet_v3_small, resnet50, small_cnn"),
        (dict(tower="resnet50", image_size=16), "image_size=16"),
        (dict(tower="resnet50", image_size=32, output="grid"), "output='grid'"),
        (dict(tower="resnet50", image_size=32, trainable_stages=6), "trainable_stages=6"),
        (dict(tower="resnet50", image_size=32, weights="/no/such/file.h5"), "/no/such/file.h5"),
        (dict(tower="small_cnn", image_size=32, weights="imagenet"), "no ImageNet weights"),
    ],
)
def test_image_tower_errors_name_the_argument(kwargs, message):
    tower = kwargs.pop("tower")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_image_tower(tower, **kwargs)


@pytest.mark.parametrize("kind, width", [("lstm", 8), ("gru", 8), ("bilstm", 16)])
def test_text_tower_pooled_and_tokens_carry_the_mask(kind, width):
    vectorizer = build_text_vectorizer(["a", "red", "circle"], sequence_length=6)
    size = vectorizer.vocabulary_size()
    ids = keras.Input((None,), dtype="int64")
    pooled = apply_text_tower(ids, kind=kind, vocabulary_size=size, embedding_dim=4, units=8)
    tokens = apply_text_tower(ids, kind=kind, vocabulary_size=size, embedding_dim=4, units=8, output="tokens", name="t2")
    assert pooled.shape == (None, width)
    assert tokens.shape == (None, None, width)
    assert getattr(tokens, "_keras_mask", None) is not None
    token_ids = keras.ops.convert_to_numpy(vectorizer(np.array(["a red circle"], dtype=object)))
    np.testing.assert_array_equal(token_ids, [[2, 3, 4, 0, 0, 0]])
    # Padding is masked: the padded sequence encodes exactly like the unpadded one.
    model = keras.Model(ids, pooled)
    np.testing.assert_allclose(model(token_ids), model(token_ids[:, :3]), atol=1e-6)


def test_text_tower_tokens_with_embeddings_keep_the_mask():
    ids = keras.Input((None,), dtype="int64")
    tokens = apply_text_tower(ids, kind="gru", vocabulary_size=6, embedding_dim=4, units=8, output="tokens",
                              token_embeddings=True)
    assert tokens.shape == (None, None, 4 + 8) and getattr(tokens, "_keras_mask", None) is not None
    model = keras.Model(ids, tokens)
    values = keras.ops.convert_to_numpy(model(np.array([[2, 3, 0]])))
    embedding = keras.ops.convert_to_numpy(model.get_layer("text_embedding")(np.array([[2, 3, 0]])))
    np.testing.assert_allclose(values[..., :4], embedding, atol=1e-6)  # [embedding; state] per word
    with pytest.raises(ValueError, match="needs token features"):
        apply_text_tower(ids, kind="gru", vocabulary_size=6, token_embeddings=True)
    with pytest.raises(ValueError, match="token_embeddings='yes'"):
        apply_text_tower(ids, kind="gru", vocabulary_size=6, output="tokens", token_embeddings="yes")


def test_vectorizer_keeps_its_vocabulary_and_unknown_words_map_to_oov():
    vectorizer = build_text_vectorizer(["", "[UNK]", "red", "circle"], sequence_length=4)
    assert vectorizer.get_vocabulary() == ["", "[UNK]", "red", "circle"]
    ids = vectorizer(np.array(["Red, CIRCLE! purple"], dtype=object))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ids), [[2, 3, 1, 0]])
    assert keras.layers.TextVectorization.from_config(vectorizer.get_config()).get_vocabulary() == vectorizer.get_vocabulary()


def test_adapt_vocabulary_orders_by_frequency():
    assert adapt_vocabulary(["red circle", "red square", "red"])[:1] == ["red"]
    assert set(adapt_vocabulary(["red circle", "red square"])) == {"red", "circle", "square"}


@pytest.mark.parametrize(
    "vocabulary, message",
    [([], "at least one token"), (["", "[UNK]"], "at least one token"), ("red circle", "list of token strings"), (["a", "a"], "must not repeat")],
)
def test_bad_vocabulary(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        build_text_vectorizer(vocabulary, sequence_length=4)


def test_bad_sequence_length_and_text_tower():
    with pytest.raises(ValueError, match="sequence_length=0"):
        build_text_vectorizer(["a"], sequence_length=0)
    ids = keras.Input((4,), dtype="int64")
    with pytest.raises(ValueError, match="Unknown text tower 'transformer'. Expected one of: bilstm, gru, lstm"):
        apply_text_tower(ids, kind="transformer", vocabulary_size=5)
