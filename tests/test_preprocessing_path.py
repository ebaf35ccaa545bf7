"""One preprocessing path: the data pipeline and both export signatures decode and resize an image file the same
way (`mmzoo.images`), so a photo gives the same probabilities however it reaches the model."""

import csv
import io

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
import mmzoo.data
from mmzoo.images import decode_image, resize_image
from helpers import IMAGE_SIZE, tiny_overrides

pytestmark = pytest.mark.xdist_group("export")

QUESTION = "what color is the circle"


def _photo(size=2 * IMAGE_SIZE, seed=0):
    """Fine detail (2-pixel stripes plus noise): halving it with or without antialiasing gives clearly different
    pixels, so a signature that resized another way would not give the same probabilities."""
    rng = np.random.default_rng(seed)
    stripes = np.where(np.arange(size) % 4 < 2, 255, 0)[None, :, None] * np.ones((size, 1, 3))
    noise = rng.integers(0, 64, size=(size, size, 3))
    return np.clip(stripes * 0.75 + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    return mmzoo.load_exported(mmzoo.export_model(model, tmp_path_factory.mktemp("path") / "model" / "1"))


def test_the_photo_tells_resize_methods_apart():
    photo = _photo()
    ours = resize_image(photo, IMAGE_SIZE).numpy().astype(np.float32)
    plain = tf.image.resize(photo.astype(np.float32), (IMAGE_SIZE, IMAGE_SIZE)).numpy()
    assert np.abs(ours - plain).mean() > 20


def test_a_large_png_gives_the_same_probabilities_through_every_path(model, served, tmp_path):
    photo = _photo()
    (tmp_path / "photo.png").write_bytes(tf.io.encode_png(photo).numpy())
    with open(tmp_path / "data.csv", "w", newline="") as f:
        csv.writer(f).writerows([("image", "text", "label"), ("photo.png", QUESTION, "red")])
    (features, _), = mmzoo.data.from_csv(tmp_path / "data.csv", image_size=IMAGE_SIZE, batch_size=1)
    trained_on = features["image"].numpy()
    assert trained_on.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and trained_on.dtype == np.uint8

    from_bytes = served.predict_image_bytes({"image_bytes": [(tmp_path / "photo.png").read_bytes()], "text": [QUESTION]})
    from_data = served({"image": trained_on, "text": [QUESTION]})
    from_large_pixels = served({"image": photo[None], "text": [QUESTION]})
    in_keras = keras.ops.convert_to_numpy(
        keras.ops.softmax(model({"image": tf.constant(trained_on, tf.float32), "text": tf.constant([QUESTION])})))
    for probabilities in (from_data["probabilities"], from_large_pixels["probabilities"], in_keras):
        np.testing.assert_allclose(from_bytes["probabilities"], probabilities, atol=1e-5)
    assert from_bytes["label"][0] == from_data["label"][0] == from_large_pixels["label"][0]


def test_pixels_of_the_models_size_pass_unchanged():
    pixels = _photo(IMAGE_SIZE)
    np.testing.assert_array_equal(resize_image(pixels, IMAGE_SIZE).numpy(), pixels)
    dynamic = tf.function(lambda images: resize_image(images, IMAGE_SIZE),
                          input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    np.testing.assert_array_equal(dynamic(pixels[None]).numpy()[0], pixels)
    assert dynamic(_photo()[None]).shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)


def test_decode_gives_rgb_uint8_from_grey_rgba_and_16_bit_pngs():
    rgb = _photo(8)
    grey = rgb[..., :1]
    decoded = decode_image(tf.io.encode_png(grey)).numpy()
    assert decoded.dtype == np.uint8 and decoded.shape == (8, 8, 3)
    np.testing.assert_array_equal(decoded, np.repeat(grey, 3, axis=-1))

    rgba = np.concatenate([rgb, np.full((8, 8, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(decode_image(tf.io.encode_png(rgba)).numpy(), rgb)

    deep = rgb.astype(np.uint16) * 257  # the same picture with 16 bits per channel
    decoded = decode_image(tf.io.encode_png(deep)).numpy()
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, rgb)


def test_decode_takes_the_first_frame_of_a_gif():
    image_module = pytest.importorskip("PIL.Image")
    frames = [image_module.new("RGB", (6, 4), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(tf.constant(buffer.getvalue())).numpy()
    assert decoded.shape == (4, 6, 3) and decoded.dtype == np.uint8
    assert (decoded[..., 0] > 200).all() and (decoded[..., 2] < 50).all()


def test_resize_refuses_bad_sizes():
    with pytest.raises(ValueError, match=r"`size` must be a positive int or a \(height, width\) pair. Received: size=0"):
        resize_image(_photo(4), 0)
    with pytest.raises(ValueError, match="Received: images with shape"):
        resize_image(np.zeros((4, 4), np.uint8), 2)


def test_from_csv_with_two_image_columns_and_a_text_column(tmp_path):
    front, side = _photo(IMAGE_SIZE, seed=1), _photo(2 * IMAGE_SIZE, seed=2)
    (tmp_path / "front.png").write_bytes(tf.io.encode_png(front).numpy())
    (tmp_path / "side.png").write_bytes(tf.io.encode_png(side).numpy())
    rows = [("front", "side", "question", "answer"), ("front.png", "side.png", "is it red?", "yes"),
            ("side.png", "front.png", "is it blue?", "no")]
    with open(tmp_path / "views.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    ds, info = mmzoo.data.from_csv(tmp_path / "views.csv", image_column=["front", "side"], text_column="question",
                                   label_column="answer", image_size=IMAGE_SIZE, batch_size=2, with_info=True)
    features, labels = next(iter(ds))
    assert sorted(features) == ["front", "question", "side"]
    assert features["front"].shape == features["side"].shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert features["front"].dtype == tf.uint8
    small = resize_image(side, IMAGE_SIZE).numpy()
    np.testing.assert_array_equal(features["front"][0], front)
    np.testing.assert_array_equal(features["side"][0], small)
    np.testing.assert_array_equal(features["front"][1], small)
    assert features["question"].numpy().tolist() == [b"is it red?", b"is it blue?"]
    assert [info.class_names[i] for i in labels.numpy()] == ["yes", "no"]
    assert dict(info.input_kinds) == {"front": "image", "side": "image", "question": "text"}
    assert dict(info.feature_keys) == {"front": "front", "side": "side", "question": "question", "label": "answer"}
    assert info.image_size == (IMAGE_SIZE, IMAGE_SIZE) and set(info.vocabulary) == {"is", "it", "red", "blue"}
    assert info.model_kwargs()["image_size"] == IMAGE_SIZE


def test_two_views_and_a_question_from_csv_train_export_and_serve(tmp_path):
    """Rows with two image columns and a text column feed a three-input model; its export serves both views as
    pixels (of any size) and as bytes, each giving what the Keras model gives on the pipeline's pixels."""
    from mmzoo.preprocessing import preprocess_dataset

    rows = [("front", "side", "question", "answer")]
    for i in range(4):
        for view, size in (("front", IMAGE_SIZE), ("side", 2 * IMAGE_SIZE)):
            (tmp_path / f"{view}{i}.png").write_bytes(tf.io.encode_png(_photo(size, seed=10 * i + size)).numpy())
        rows.append((f"front{i}.png", f"side{i}.png", QUESTION, ("red", "blue")[i % 2]))
    with open(tmp_path / "views.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    ds, info = mmzoo.data.from_csv(tmp_path / "views.csv", image_column=["front", "side"], text_column="question",
                                   label_column="answer", image_size=IMAGE_SIZE, batch_size=4, with_info=True)
    options = {**tiny_overrides(), **info.model_kwargs()}
    keras.utils.set_random_seed(0)
    model = mmzoo.build_classifier(
        towers={key: "small_cnn" if kind == "image" else "lstm" for key, kind in info.input_kinds.items()},
        fusion="concat", **options)
    model.backbone.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.backbone.fit(preprocess_dataset(model, ds), epochs=1, verbose=0)

    served = mmzoo.load_exported(mmzoo.export_model(model, tmp_path / "views_model"))
    assert served.image_sizes() == {"front": (IMAGE_SIZE, IMAGE_SIZE), "side": (IMAGE_SIZE, IMAGE_SIZE)}
    features, _ = next(iter(ds))
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(
        {key: tf.cast(value, tf.float32) if value.dtype == tf.uint8 else value for key, value in features.items()})))
    large_side = np.stack([_photo(2 * IMAGE_SIZE, seed=10 * i + 2 * IMAGE_SIZE) for i in range(4)])
    from_pixels = served({"front": features["front"].numpy(), "side": large_side, "question": [QUESTION] * 4})
    from_bytes = served.predict_image_bytes({
        "front_bytes": [(tmp_path / f"front{i}.png").read_bytes() for i in range(4)],
        "side_bytes": [(tmp_path / f"side{i}.png").read_bytes() for i in range(4)],
        "question": [QUESTION] * 4,
    })
    np.testing.assert_allclose(from_pixels["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(from_bytes["probabilities"], expected, atol=1e-5)
    assert set(from_bytes["label"]) <= set(info.class_names) and served.class_names() == list(info.class_names)
