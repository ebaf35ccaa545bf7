"""A captioner's SavedModel: captions, token ids and log-probabilities as `generate` gives them, from pixels of any
size or encoded bytes, checked requests and the encode endpoint. saved_model_cli and `mmzoo caption` on an export:
tests/test_captioning_training.py (on the export `mmzoo train --task caption` writes)."""

import json
import os

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo.captioning.model import build_captioner
from mmzoo.data.shapes import encode_png

pytestmark = pytest.mark.xdist_group("captioning_export")

WORDS = ["a", "red", "blue", "circle", "square", "small", "large"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_captioner(decoder="gru", vocabulary=WORDS, max_length=6, image_size=32, units=16, embedding_dim=8)
    root = tmp_path_factory.mktemp("export")
    version = mmzoo.export_model(model, root / "captioner")
    return model, version


def _images(n=3, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_export_serves_what_generate_gives(exported):
    model, version = exported
    assert os.path.basename(version) == "1"
    served = mmzoo.load_exported(version)
    assert {"serving_default", "serving_image_bytes", "encode"} <= set(served.signatures)
    images = _images()
    expected = model.generate(images)
    out = served({"image": images})
    assert [c.decode() for c in out["caption"]] == list(expected["caption"])
    np.testing.assert_array_equal(out["token_ids"], expected["token_ids"])
    np.testing.assert_allclose(out["log_probability"], expected["log_probability"], atol=1e-5)
    from_bytes = served.predict_image_bytes({"image_bytes": [encode_png(image) for image in images]})
    np.testing.assert_array_equal(from_bytes["token_ids"], expected["token_ids"])
    assert served.run("encode", {"image": images})["image_tokens"].shape == (3, 16, 16)
    metadata = json.load(open(os.path.join(version, "assets.extra", "mmzoo.json")))
    assert metadata["task"] == "caption" and metadata["max_length"] == 6 and metadata["strategy"] == "greedy"
    assert metadata["vocabulary"][:4] == ["", "[UNK]", "[start]", "[end]"]
    graph = open(os.path.join(version, "saved_model.pb"), "rb").read()
    assert b"CudnnRNN" not in graph and b"While" in graph  # portable recurrent cells; decoding is an in-graph loop


def test_export_resizes_checks_and_answers_empty_batches(exported):
    model, version = exported
    served = mmzoo.load_exported(version)
    large = np.repeat(np.repeat(_images(seed=1), 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(served({"image": large})["token_ids"], model.generate(large)["token_ids"])
    empty = served({"image": np.zeros((0, 32, 32, 3), np.uint8)})
    assert empty["caption"].shape == (0,) and empty["token_ids"].shape == (0, 6)
    with pytest.raises(ValueError, match=r"Input 'image' must be uint8 pixels of shape \[batch, height, width, 3\]"):
        served({"image": np.zeros((32, 32, 3), np.uint8)})
