"""Bad requests to an export: each signature checks ranks, channels and batch sizes in its graph, and
`load_exported` checks in NumPy first; neither may answer a wrong request silently or kill the process."""

import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

import mmzoo
from helpers import CLASS_NAMES, IMAGE_SIZE, TEXTS, tiny_overrides

pytestmark = pytest.mark.xdist_group("serving_checks")
EXPECTED_SHAPE = r"\[batch, height, width, 3\]"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    return mmzoo.export_model(model, tmp_path_factory.mktemp("checks") / "vqa" / "1")


@pytest.fixture(scope="module")
def signatures(exported):
    return tf.saved_model.load(exported).signatures


@pytest.fixture(scope="module")
def served(exported):
    return mmzoo.load_exported(exported)


def _pixels(*shape):
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def _texts(count):
    return np.array([TEXTS[i % len(TEXTS)] for i in range(count)], dtype=object)


# (image, text, what the error must say): shapes the signature declares but does not enforce.
BAD_REQUESTS = {
    "one channel": (_pixels(1, 32, 32, 1), _texts(1), r"Input '?image'?.*Received: shape \(1, 32, 32, 1\)"),
    "four channels": (_pixels(2, 32, 32, 4), _texts(2), r"Input '?image'?.*Received: shape \(2, 32, 32, 4\)"),
    "zero height": (_pixels(1, 0, 32, 3), _texts(1), r"Input '?image'?.*height and width.*\(1, 0, 32, 3\)"),
    "one image, three texts": (_pixels(1, 32, 32, 3), _texts(3), r"same batch size\. Received: .*image 1"),
    "three images, one text": (_pixels(3, 40, 40, 3), _texts(1), r"same batch size\. Received: .*text 1"),
    "text of rank 2": (_pixels(1, 32, 32, 3), _texts(1)[:, None], r"Input '?text'?.*\[batch\]\. Received: shape \(1, 1\)"),
    "text of rank 0": (_pixels(1, 32, 32, 3), np.array("what color", dtype=object), r"Input '?text'?.*shape \(\)"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_signature_refuses_in_its_graph(signatures, case):
    image, text, message = BAD_REQUESTS[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signatures["serving_default"](image=tf.constant(image), text=tf.constant(text.astype(str)))


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_load_exported_refuses_before_tensorflow(served, case):
    image, text, message = BAD_REQUESTS[case]
    with pytest.raises(ValueError, match=message):
        served({"image": image, "text": text})


def test_batch_sizes_error_names_every_input(signatures, served):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Received: image 1, text 3\]"):
        signatures["serving_default"](image=tf.constant(_pixels(1, 32, 32, 3)), text=tf.constant(list(_texts(3))))
    with pytest.raises(ValueError, match=r"Received: (image 1, text 3|text 3, image 1)$"):
        served({"image": _pixels(1, 32, 32, 3), "text": _texts(3)})


def test_one_image_without_batch_axis_is_an_error_not_an_abort(exported, tmp_path):
    """(H, W, 3) used to abort the process from a oneDNN shape check: run it in a child process, so that a
    regression fails this test instead of killing the pytest worker."""
    script = tmp_path / "unbatched.py"
    script.write_text(textwrap.dedent(f"""
        import numpy as np, tensorflow as tf, mmzoo
        path, image = {str(exported)!r}, np.zeros((32, 32, 3), np.uint8)
        try:
            tf.saved_model.load(path).signatures["serving_default"](image=tf.constant(image), text=tf.constant(["a"]))
        except tf.errors.InvalidArgumentError as error:
            print("SIGNATURE:", error.message.replace("\\n", " "))
        try:
            mmzoo.load_exported(path)({{"image": image, "text": ["a"]}})
        except ValueError as error:
            print("LOADER:", error)
    """))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0, f"exit {ran.returncode}: {ran.stderr[-2000:]}"
    expected = "must be uint8 pixels of shape [batch, height, width, 3]. Received: shape (32, 32, 3)"
    assert f"assertion failed: [Input image {expected}]" in ran.stdout, ran.stdout
    assert f"LOADER: Input 'image' {expected}" in ran.stdout, ran.stdout


def test_float_pixels_in_unit_range_are_refused(served):
    image = np.random.default_rng(1).random((2, 32, 32, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"Input 'image' holds float pixels in \[0, 1\]; pixels are 0\.\.255 uint8"):
        served({"image": image, "text": _texts(2)})
    with pytest.raises(ValueError, match=r"whole numbers in 0\.\.255\)\. Received: dtype float64, values from 0\.5"):
        served({"image": np.full((1, 32, 32, 3), 0.5) + np.eye(32)[None, :, :, None] * 99, "text": _texts(1)})
    with pytest.raises(ValueError, match=r"values from -1 to"):
        served({"image": np.full((1, 32, 32, 3), -1), "text": _texts(1)})
    whole = _pixels(2, 32, 32, 3)
    np.testing.assert_array_equal(served({"image": whole.astype("float64"), "text": _texts(2)})["probabilities"],
                                  served({"image": whole, "text": _texts(2)})["probabilities"])


def test_strings_may_be_str_or_bytes_and_must_be_strings(served):
    out = served({"image": _pixels(2, 32, 32, 3), "text": ["what color is the circle", b"how many circles"]})
    assert out["probabilities"].shape == (2, len(CLASS_NAMES))
    with pytest.raises(ValueError, match=r"Input 'text' must be strings \(str or bytes\).*Received: int64"):
        served({"image": _pixels(1, 32, 32, 3), "text": [3]})
    with pytest.raises(ValueError, match=r"one string: wrap it in a list"):
        served({"image": _pixels(1, 32, 32, 3), "text": "what color"})
    with pytest.raises(ValueError, match=r"Input 'image' must be one array of uint8 pixels"):
        served({"image": [_pixels(32, 32, 3), _pixels(16, 16, 3)], "text": _texts(2)})


def test_empty_batch_gives_empty_outputs(signatures, served):
    raw = signatures["serving_default"](image=tf.zeros([0, 32, 32, 3], tf.uint8), text=tf.constant([], tf.string))
    assert raw["probabilities"].shape == (0, len(CLASS_NAMES)) and raw["label"].shape == (0,)
    out = served({"image": np.zeros((0, 48, 48, 3), np.uint8), "text": []})
    assert out["probabilities"].shape == (0, len(CLASS_NAMES)) and out["probabilities"].dtype == np.float32
    assert out["label"].shape == (0,) and out["label"].dtype.kind == "U"
    from_bytes = served.predict_image_bytes({"image_bytes": [], "text": []})
    assert from_bytes["probabilities"].shape == (0, len(CLASS_NAMES))


def test_image_bytes_signature_checks_ranks_and_batch_sizes(signatures, served):
    png = tf.io.encode_png(_pixels(20, 24, 3)).numpy()
    signature = signatures["serving_image_bytes"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input image_bytes must be strings of shape \[batch\]"):
        signature(image_bytes=tf.constant([[png]]), text=tf.constant(["a"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Received: image_bytes 2, text 1\]"):
        signature(image_bytes=tf.constant([png, png]), text=tf.constant(["a"]))
    with pytest.raises(ValueError, match=r"Input 'image_bytes' must be strings of shape \[batch\]\. Received: shape \(\)"):
        served.predict_image_bytes({"image_bytes": png, "text": ["a"]})
    assert served.predict_image_bytes({"image_bytes": [png], "text": ["a"]})["probabilities"].shape == (1, 3)


def _encoders():
    pixels = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    image = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(pixels)))
    words = keras.Input((), dtype="string")
    ids = keras.layers.TextVectorization(output_sequence_length=4, vocabulary=["what", "color"])(words)
    text = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(8, 4)(ids)))
    return {"image": keras.Model(pixels, image), "text": keras.Model(words, text)}


def test_embedding_signatures_check_the_same(tmp_path):
    keras.utils.set_random_seed(2)
    served = mmzoo.load_exported(mmzoo.export_model(_encoders(), tmp_path / "retrieval"))
    embed = served.signatures["embed_image"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"Input image must be uint8 pixels of shape {EXPECTED_SHAPE}\. Received: shape \(32, 32, 3\)"):
        embed(image=tf.zeros([32, 32, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input image must have 3 channels"):
        embed(image=tf.zeros([2, 32, 32, 4], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Input text must be strings of shape \[batch\]"):
        served.signatures["embed_text"](text=tf.constant([["a"]]))
    with pytest.raises(ValueError, match=r"Input 'image' must be uint8 pixels.*Received: shape \(2, 32, 32, 1\)"):
        served.embed_images(np.zeros((2, 32, 32, 1), np.uint8))
    with pytest.raises(ValueError, match=r"float pixels in \[0, 1\]"):
        served.embed_images(np.full((1, 32, 32, 3), 0.25))
    assert served.embed_images(np.zeros((0, 40, 40, 3), np.uint8)).shape == (0, 4)
    assert served.embed_texts([]).shape == (0, 4) and served.embed_image_bytes([]).shape == (0, 4)
    assert served.embed_texts(["what color", b"color"]).shape == (2, 4)


def _saved_model_cli(*args):
    command = shutil.which("saved_model_cli")
    prefix = [command] if command else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(prefix + list(args), capture_output=True, text=True, env=env, timeout=300)


def test_saved_model_cli_prints_the_error(exported, tmp_path):
    np.save(tmp_path / "image.npy", _pixels(1, 32, 32, 3))
    np.save(tmp_path / "text.npy", np.array([b"what color", b"how many", b"is the"]))
    ran = _saved_model_cli("run", "--dir", str(exported), "--tag_set", "serve", "--signature_def", "serving_default",
                           "--inputs", f"image={tmp_path / 'image.npy'};text={tmp_path / 'text.npy'}")
    assert ran.returncode > 0, ran.returncode  # an error exit, not a signal
    assert "All inputs of a request must have the same batch size. Received: image 1, text 3" in ran.stderr


@settings(max_examples=15, deadline=None)
@given(batch_size=st.integers(0, 4), height=st.integers(1, 70), width=st.integers(1, 70),
       seed=st.integers(0, 2**31 - 1), texts=st.lists(st.text(max_size=30), min_size=4, max_size=4))
def test_valid_requests_of_any_size_answer_one_distribution_each(served, batch_size, height, width, seed, texts):
    image = np.random.default_rng(seed).integers(0, 256, (batch_size, height, width, 3), dtype=np.uint8)
    out = served({"image": image, "text": texts[:batch_size]})
    assert out["probabilities"].shape == (batch_size, len(CLASS_NAMES)) and out["label"].shape == (batch_size,)
    np.testing.assert_allclose(out["probabilities"].sum(axis=-1), 1.0, atol=1e-5)
    assert set(out["label"]) <= set(CLASS_NAMES)
