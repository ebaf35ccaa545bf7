"""SavedModel export: signatures, serving parity, the TF Serving layout, atomic writes, and CLI/TFSMLayer reloads."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import export as export_module
from helpers import CLASS_NAMES, tiny_batch, tiny_overrides

pytestmark = pytest.mark.xdist_group("export")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return mmzoo.export_model(model, tmp_path_factory.mktemp("exports") / "vqa" / "1")


def _probabilities(model, inputs):
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(inputs, training=False)))


def test_signatures_and_their_specs(exported):
    loaded = tf.saved_model.load(exported)
    assert set(loaded.signatures) == {"serving_default", "serving_image_bytes"}
    pixels = loaded.signatures["serving_default"]
    inputs = pixels.structured_input_signature[1]
    # Pixels of any size: the signature resizes them to the model's as training data is resized.
    assert inputs["image"].dtype == tf.uint8 and inputs["image"].shape.as_list() == [None, None, None, 3]
    assert inputs["text"].dtype == tf.string and inputs["text"].shape.as_list() == [None]
    assert set(pixels.structured_outputs) == {"probabilities", "label"}
    assert set(loaded.signatures["serving_image_bytes"].structured_input_signature[1]) == {"image_bytes", "text"}
    served = mmzoo.load_exported(exported)
    assert served.image_sizes() == {"image": (32, 32)} and served.class_names() == CLASS_NAMES


def test_served_probabilities_and_labels_match_the_model(model, exported):
    inputs, _ = tiny_batch(batch_size=5, seed=3)
    served = mmzoo.load_exported(exported)(inputs)
    expected = _probabilities(model, inputs)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(served["probabilities"].sum(axis=-1), 1.0, atol=1e-5)
    assert list(served["label"]) == [CLASS_NAMES[i] for i in expected.argmax(-1)]


def test_float_pixels_are_accepted_by_the_loader(model, exported):
    inputs, _ = tiny_batch(seed=4)
    as_float = dict(inputs, image=inputs["image"].astype("float32"))
    served = mmzoo.load_exported(exported)
    np.testing.assert_allclose(served(as_float)["probabilities"], served(inputs)["probabilities"], atol=1e-6)


def test_png_bytes_signature_equals_pixels(model, exported):
    inputs, _ = tiny_batch(seed=5)
    png = [tf.io.encode_png(image).numpy() for image in inputs["image"]]
    served = mmzoo.load_exported(exported)
    from_bytes = served.predict_image_bytes({"image_bytes": png, "text": inputs["text"]})
    np.testing.assert_allclose(from_bytes["probabilities"], served(inputs)["probabilities"], atol=1e-5)


def test_jpeg_bytes_of_another_size_are_decoded_and_resized(exported):
    image = np.zeros((48, 40, 3), np.uint8)
    image[:, :20] = (255, 0, 0)
    jpeg = tf.io.encode_jpeg(image).numpy()
    out = mmzoo.load_exported(exported).predict_image_bytes({"image_bytes": [jpeg], "text": ["what color is the circle"]})
    assert out["probabilities"].shape == (1, len(CLASS_NAMES))
    assert out["label"][0] in CLASS_NAMES


def test_tfsmlayer_reload(model, exported):
    inputs, _ = tiny_batch(seed=6)
    layer = keras.layers.TFSMLayer(exported, call_endpoint="serving_default")
    out = layer({"image": tf.constant(inputs["image"]), "text": tf.constant(list(inputs["text"]))})
    np.testing.assert_allclose(out["probabilities"].numpy(), _probabilities(model, inputs), atol=1e-5)


def _saved_model_cli(*args):
    command = shutil.which("saved_model_cli")
    prefix = [command] if command else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(prefix + list(args), capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_saved_model_cli_show_and_run(exported, tmp_path):
    shown = _saved_model_cli("show", "--all", "--dir", str(exported))
    assert shown.returncode == 0, shown.stderr
    assert "signature_def['serving_default']" in shown.stdout
    assert "signature_def['serving_image_bytes']" in shown.stdout
    assert "DT_UINT8" in shown.stdout and "probabilities" in shown.stdout
    np.save(tmp_path / "image.npy", np.full((2, 32, 32, 3), 128, np.uint8))
    np.save(tmp_path / "text.npy", np.array([b"what color is the circle", b"how many"]))
    ran = _saved_model_cli(
        "run", "--dir", str(exported), "--tag_set", "serve", "--signature_def", "serving_default",
        "--inputs", f"image={tmp_path / 'image.npy'};text={tmp_path / 'text.npy'}",
    )
    assert ran.returncode == 0, ran.stderr
    assert "probabilities" in ran.stdout and "label" in ran.stdout


def test_tf_serving_layout_versions(model, tmp_path):
    root = tmp_path / "vqa"
    first = mmzoo.export_model(model, root)
    second = mmzoo.export_model(model, root)
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert sorted(os.listdir(root)) == ["1", "2"]  # nothing temporary left beside the versions
    assert mmzoo.load_exported(root).path == second  # a model directory loads its highest version


def test_existing_version_is_kept_unless_overwrite(model, tmp_path):
    target = tmp_path / "vqa" / "1"
    mmzoo.export_model(model, target)
    marker = target / "assets" / "user-note.txt"
    marker.write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        mmzoo.export_model(model, target)
    assert marker.read_text() == "keep me"
    mmzoo.export_model(model, target, overwrite=True)
    assert not marker.exists() and (target / "saved_model.pb").exists()
    assert sorted(os.listdir(tmp_path / "vqa")) == ["1"]


def test_failed_export_leaves_nothing_and_keeps_the_old_version(model, tmp_path, monkeypatch):
    target = tmp_path / "vqa" / "1"
    mmzoo.export_model(model, target)
    before = sorted(p.name for p in target.rglob("*"))

    class HalfWrittenArchive:
        def write_out(self, filepath, **kwargs):
            os.makedirs(filepath)
            open(os.path.join(filepath, "saved_model.pb"), "wb").write(b"partial")
            raise OSError("disk full")

    monkeypatch.setattr(export_module, "_build_archive", lambda model, specs: HalfWrittenArchive())
    with pytest.raises(OSError, match="disk full"):
        mmzoo.export_model(model, target, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        mmzoo.export_model(model, tmp_path / "vqa" / "2")
    assert sorted(os.listdir(tmp_path / "vqa")) == ["1"]
    assert sorted(p.name for p in target.rglob("*")) == before
    monkeypatch.undo()
    mmzoo.load_exported(target)


def test_recurrent_layers_are_traced_without_cudnn_and_restored(model):
    rnns = [layer for layer in model._flatten_layers(recursive=True) if hasattr(layer, "use_cudnn")]
    assert rnns and all(layer.use_cudnn == "auto" for layer in rnns)
    with export_module._portable_recurrent_layers(model):
        assert all(layer.use_cudnn is False for layer in rnns)
    assert all(layer.use_cudnn == "auto" for layer in rnns)


def test_exported_graph_has_no_cudnn_ops(exported):
    loaded = tf.saved_model.load(exported)
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    assert not any(op.startswith("Cudnn") for op in ops)
    assert "While" in ops or "StatelessWhile" in ops  # the generic recurrent loop


def test_export_errors(model, tmp_path):
    with pytest.raises(ValueError, match="must be a keras.Model"):
        mmzoo.export_model("not a model", tmp_path / "x")
    with pytest.raises(ValueError, match="positive integer"):
        mmzoo.export_model(model, tmp_path / "vqa" / "0")
    numeric = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="dict of images"):
        mmzoo.export_model(numeric, tmp_path / "numeric")
    with pytest.raises(ValueError, match="not a directory"):
        mmzoo.load_exported(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no numbered version"):
        mmzoo.load_exported(tmp_path / "empty")
    served = mmzoo.load_exported(mmzoo.export_model(model, tmp_path / "ok"))
    with pytest.raises(ValueError, match=r"Expected a dict with keys \['image', 'text'\]"):
        served({"image": np.zeros((1, 32, 32, 3), np.uint8)})


def _three_input_model():
    """Two image inputs of different sizes and a text input, as a plain functional model (no `modalities`)."""
    front, side = keras.Input((32, 32, 3), name="front"), keras.Input((24, 24, 3), name="side")
    question = keras.Input((), dtype="string", name="question")
    vectorizer = keras.layers.TextVectorization(output_sequence_length=4, vocabulary=["what", "color", "is"])
    words = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(8, 4)(vectorizer(question)))
    pooled = [keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(image)) for image in (front, side)]
    logits = keras.layers.Dense(3)(keras.layers.Concatenate()([*pooled, words]))
    return keras.Model({"front": front, "side": side, "question": question}, logits)


def test_two_image_inputs_and_a_text_input_export_and_serve(tmp_path):
    keras.utils.set_random_seed(1)
    model = _three_input_model()
    served = mmzoo.load_exported(mmzoo.export_model(model, tmp_path / "views"))
    rng = np.random.default_rng(0)
    front = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    side = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    question = ["what color is it", "is it"]
    expected = _probabilities(model, {"front": tf.constant(front, tf.float32), "side": tf.constant(side, tf.float32),
                                      "question": tf.constant(question)})
    from_pixels = served({"front": front, "side": side, "question": question})
    np.testing.assert_allclose(from_pixels["probabilities"], expected, atol=1e-5)
    encoded = {f"{name}_bytes": [tf.io.encode_png(image).numpy() for image in images]
               for name, images in (("front", front), ("side", side))}
    from_bytes = served.predict_image_bytes({**encoded, "question": question})
    np.testing.assert_allclose(from_bytes["probabilities"], expected, atol=1e-5)
    assert "label" not in from_pixels  # no class names to serve
    assert served.image_sizes() == {"front": (32, 32), "side": (24, 24)} and served.class_names() is None
    assert served.input_names() == ("front", "question", "side")
