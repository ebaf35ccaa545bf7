"""mmzoo.robustness: seeded noises, MultiBench's summaries, evaluate_robustness and `mmzoo robustness`."""

import csv

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo import cli
from mmzoo.robustness import (IMAGE_NOISE, NOISE, TEXT_NOISE, effective_robustness, evaluate_robustness,
                              relative_robustness)
from mmzoo.robustness import noise
from helpers import CLASS_NAMES, TEXTS, tiny_batch, tiny_overrides


def _images(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


TEXTS_ARRAY = np.array(TEXTS[:3], dtype=object)


@pytest.mark.parametrize("name", sorted(IMAGE_NOISE))
def test_image_noise_level_0_is_identity_and_draws_are_seeded(name):
    images, function = _images(), IMAGE_NOISE[name]
    np.testing.assert_array_equal(function(images, 0.0, np.random.default_rng(0)), images)
    a, b = (function(images, 0.5, np.random.default_rng(5)) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == images.shape and not np.array_equal(a, images)


@pytest.mark.parametrize("name", sorted(TEXT_NOISE))
def test_text_noise_level_0_is_identity_and_draws_are_seeded(name):
    function = TEXT_NOISE[name]
    assert list(function(TEXTS_ARRAY, 0.0, np.random.default_rng(0))) == list(TEXTS_ARRAY)
    a, b = (list(function(TEXTS_ARRAY, 0.6, np.random.default_rng(3))) for _ in range(2))
    assert a == b and a != list(TEXTS_ARRAY)


def test_what_level_1_does():
    rng = np.random.default_rng(0)
    images = _images()
    assert (noise.occlusion(images, 1.0, rng) == 0).all()
    grey = noise.grey_scale(images, 1.0, rng).astype(int)
    assert (np.abs(grey[..., 0] - grey[..., 1]) <= 1).all() and (np.abs(grey[..., 1] - grey[..., 2]) <= 1).all()
    quarter = noise.occlusion(images, 0.25, rng)
    assert ((quarter == 0).all(axis=-1).sum(axis=(1, 2)) >= 16 * 16).all()
    blurred = noise.blur(images, 1.0, rng).astype(float)
    assert blurred.std() < images.astype(float).std() / 3
    assert list(noise.drop_words(TEXTS_ARRAY, 1.0, rng)) == ["", "", ""]
    replaced = noise.replace_words(TEXTS_ARRAY, 1.0, rng, vocabulary=["red", "blue"])
    assert all(set(text.split()) <= {"red", "blue"} for text in replaced)
    swapped = noise.swap_characters(np.array(["abcd"], dtype=object), 1.0, rng)[0]
    assert sorted(swapped) == list("abcd") and swapped != "abcd"
    assert set(NOISE) == {"image", "text"}


def test_bad_levels_and_inputs_are_named():
    with pytest.raises(ValueError, match="Received: level=1.5"):
        noise.blur(_images(), 1.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"Received: shape \(32, 32, 3\)"):
        noise.gaussian_noise(_images()[0], 0.1, np.random.default_rng(0))


def test_multibench_summaries():
    levels = [0.0, 0.5, 1.0]
    assert relative_robustness(levels, [0.8, 0.8, 0.8]) == pytest.approx(0.8)
    assert relative_robustness(levels, [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    # Same drop as the reference from another start: 0; one point less lost at each noisy level: +0.02.
    assert effective_robustness([0.9, 0.7, 0.5], [0.6, 0.4, 0.2]) == pytest.approx(0.0)
    assert effective_robustness([0.9, 0.71, 0.51], [0.6, 0.4, 0.2]) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="same levels"):
        effective_robustness([0.9, 0.7], [0.6, 0.4, 0.2])


@pytest.fixture(scope="module")
def late_model():
    keras.utils.set_random_seed(0)
    return mmzoo.build_model("small_cnn_lstm_late", **tiny_overrides())


def test_evaluate_robustness_report(late_model, tmp_path):
    inputs, labels = tiny_batch(12)
    keras.utils.set_random_seed(1)
    concat = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides())
    report = evaluate_robustness(concat, (inputs, labels), levels=(0.0, 1.0), reference=late_model,
                                 noises={"image": ["occlusion"], "text": ["drop_words"]}, seed=2)
    predicted = np.argmax(keras.ops.convert_to_numpy(concat(inputs)), axis=-1)
    assert report.all_present == pytest.approx(np.mean(predicted == labels))
    assert report.curves["image"]["occlusion"][0] == pytest.approx(report.all_present)
    black = np.argmax(keras.ops.convert_to_numpy(concat(dict(inputs, image=np.zeros_like(inputs["image"])))), -1)
    assert report.curves["image"]["occlusion"][1] == pytest.approx(np.mean(black == labels))
    assert report.absent["image"] == pytest.approx(np.mean(black == labels))  # no flags: a placeholder
    assert "placeholder" in report.absent_by and set(report.effective) == {"image", "text"}
    assert report.relative["image"] == pytest.approx(np.mean(report.mean_curves["image"]))
    table = report.table()
    assert "image absent" in table and "occlusion" in table and "Effective robustness" in table
    path = report.plot(tmp_path / "r.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_an_absent_input_goes_through_its_presence_flag(late_model):
    inputs, labels = tiny_batch(8)
    report = evaluate_robustness(late_model, (inputs, labels), levels=(0.0, 1.0),
                                 noises={"image": ["grey_scale"], "text": ["swap_characters"]})
    without = np.argmax(keras.ops.convert_to_numpy(late_model({"text": inputs["text"]})), axis=-1)
    assert report.absent["image"] == pytest.approx(np.mean(without == labels))
    assert report.absent_by == "presence flag" and report.effective == {}
    with pytest.raises(ValueError, match="Unknown image noise"):
        evaluate_robustness(late_model, (inputs, labels), noises={"image": ["rain"]})
    with pytest.raises(ValueError, match="levels"):
        evaluate_robustness(late_model, (inputs, labels), levels=(0.5,))


@pytest.mark.slow
def test_the_command_prints_the_table_and_writes_the_plot(late_model, tmp_path, capsys):
    from mmzoo.data import shapes

    rng = np.random.default_rng(0)
    with open(tmp_path / "data.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "text", "label"])
        for i in range(6):
            (tmp_path / f"{i}.png").write_bytes(shapes.encode_png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
            writer.writerow([f"{i}.png", TEXTS[i % 4], CLASS_NAMES[i % 3]])
    late_model.save(tmp_path / "late.keras")
    plot = tmp_path / "out.png"
    code = cli.main(["robustness", "--model", str(tmp_path / "late.keras"), "--dataset", str(tmp_path / "data.csv"),
                     "--levels", "2", "--plot", str(plot), "--batch-size", "4"])
    out = capsys.readouterr().out
    assert code == 0 and "image absent (presence flag)" in out and "Relative robustness" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["robustness", "--model", str(tmp_path / "late.keras"), "--levels", "1"]) == 2
    assert "--levels 1" in capsys.readouterr().err


def test_each_input_draws_its_own_noise_even_for_anagram_names():
    from mmzoo.robustness.evaluate import _rng

    front, fornt = (_rng(0, name, 0, 0.5).random(4) for name in ("front", "fornt"))
    assert not np.allclose(front, fornt)
    np.testing.assert_array_equal(_rng(0, "front", 0, 0.5).random(4), front)
