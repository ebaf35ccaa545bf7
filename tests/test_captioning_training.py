"""Training captioners with plain fit: they learn, 1 and 2 replicas take the same step, mixed_float16, own CSV data
with several captions per image (`mmzoo train --task caption`, which runs `train_captioner`, then its export through
saved_model_cli and `mmzoo caption`), and the image tower from a masked pretrainer."""

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
from mmzoo.captioning.data import caption_dataset, group_by_image, longest_caption
from mmzoo.captioning.loss import CaptionLoss
from mmzoo.captioning.model import build_captioner
from mmzoo.captioning.packing import pack_dataset
from mmzoo.captioning.training import initialize_image_tower
from mmzoo.data.shapes import encode_png

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "mirrored_captioner.py"
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}
SHAPE_OF = {"red": "circle", "blue": "square", "green": "square"}


def _scene(colour, size=32, seed=0):
    image = np.random.default_rng(seed).integers(0, 30, (size, size, 3)).astype(np.uint8)
    image[8:24, 8:24] = COLOURS[colour]
    return image


def _colour_data(n=48):
    colours = [list(COLOURS)[i % 3] for i in range(n)]
    images = np.stack([_scene(c, seed=i) for i, c in enumerate(colours)])
    return images, [f"a {c} {SHAPE_OF[c]}" for c in colours]


def test_loss_is_the_mean_over_real_tokens():
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5)), tf.float32)
    targets = tf.constant([[4, 3, 0], [3, 0, 0]])
    per_token = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True).numpy()
    expected = (per_token[0, 0] + per_token[0, 1] + per_token[1, 0]) / 3
    assert float(CaptionLoss()(targets, logits)) == pytest.approx(expected, rel=1e-6)
    weights = tf.constant([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert float(CaptionLoss()(targets, logits, weights)) == pytest.approx((per_token[0, 0] + per_token[1, 0]) / 2,
                                                                           rel=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        CaptionLoss(label_smoothing=1.0)


def test_fit_learns_to_caption_the_colour():
    keras.utils.set_random_seed(0)
    images, captions = _colour_data()
    model = build_captioner(decoder="gru", texts=captions, max_length=5, image_size=32, units=32, embedding_dim=16,
                            dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = tf.data.Dataset.from_tensor_slices({"image": images, "text": captions}).shuffle(48, seed=0).batch(16)
    history = model.fit(pack_dataset(model, data), epochs=12, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    test = np.stack([_scene(c, seed=100 + i) for i, c in enumerate(COLOURS)])
    for strategy in ("greedy", "beam"):
        assert list(model.generate(test, strategy=strategy)["caption"]) == ["a red circle", "a blue square",
                                                                            "a green square"]


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica():
    # One decoder: the global-batch token average is the loss's, the same for every decoder.
    decoder = "gru"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, str(SCRIPT), decoder], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])[decoder]
    assert result["max_step"] > 1e-3  # the step moved the weights
    assert result["max_abs_diff"] <= 1e-5, result


def test_mixed_float16_trains_and_generates():
    images, captions = _colour_data(8)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        # One decoder: the Transformer, whose attention softmax is where float16 would overflow.
        model = build_captioner(decoder="transformer", texts=captions, max_length=5, image_size=32, units=16,
                                embedding_dim=8, num_heads=2)
        model.compile(optimizer="adam")
        data = tf.data.Dataset.from_tensor_slices({"image": images, "text": captions}).batch(4)
        history = model.fit(pack_dataset(model, data), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert model.output.dtype == "float32"  # logits in float32 for the softmax and the loss
        out = model.generate(images[:2], strategy="beam", num_beams=2)
        assert out["token_ids"].shape == (2, 5) and np.all(np.isfinite(out["log_probability"]))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _write_caption_csv(directory):
    """4 images, 2 captions each (8 rows) in captions.csv beside an img/ folder."""
    (directory / "img").mkdir()
    rows = ["image,caption"]
    for i, colour in enumerate(["red", "blue", "green", "red"]):
        (directory / "img" / f"{i}.png").write_bytes(encode_png(_scene(colour, seed=i)))
        rows += [f"img/{i}.png,a {colour} {SHAPE_OF[colour]}", f'img/{i}.png,"there is a {colour} {SHAPE_OF[colour]}."']
    (directory / "captions.csv").write_text("\n".join(rows) + "\n")
    return directory / "captions.csv"


def test_own_csv_with_several_captions_per_image(tmp_path):
    path = _write_caption_csv(tmp_path)
    data, info = caption_dataset(path, batch_size=4, with_info=True)
    assert info.image_size == (32, 32) and info.num_examples == 8
    assert {"a", "red", "there", "is"} <= set(info.vocabulary)
    images, references = group_by_image(data)
    assert images.shape == (4, 32, 32, 3)
    assert references[1] == ["a blue square", "there is a blue square."]
    assert longest_caption(path) == 5  # "there is a blue square", counted from the captions alone
    assert len(group_by_image(data, limit=2)[1]) == 2
    with pytest.raises(mmzoo.data.DataError, match=r"has no column 'text'. Its columns are \['image', 'caption'\]"):
        caption_dataset(path, caption_column="text")


@pytest.mark.slow
def test_train_command_export_saved_model_cli_and_caption_command(tmp_path, capsys):
    path = _write_caption_csv(tmp_path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")

    def run(*command):
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)

    trained = run(sys.executable, "-m", "mmzoo.cli", "train", "--task", "caption", "--dataset", str(path),
                  "--val-data", str(path), "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--verbose",
                  "0", "--output-dir", str(tmp_path / "run"), "--export", str(tmp_path / "served"))
    assert trained.returncode == 0, trained.stderr[-3000:]
    version = tmp_path / "served" / "1"
    assert "test cider_d" in trained.stdout and f"mmzoo caption --model {version}" in trained.stdout
    served = mmzoo.load_exported(tmp_path / "served")
    assert served.metadata["task"] == "caption" and served.image_sizes() == {"image": (32, 32)}
    assert served.metadata["max_length"] == 6  # the longest caption, "there is a blue square", and the end token
    assert (tmp_path / "run" / "model.keras").is_file()

    image = _scene("blue", seed=7)
    np.save(tmp_path / "images.npy", image[None])
    cli = run("saved_model_cli", "run", "--dir", str(version), "--tag_set", "serve", "--signature_def",
              "serving_default", "--inputs", f"image={tmp_path / 'images.npy'}")
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "caption" in cli.stdout and "log_probability" in cli.stdout and "token_ids" in cli.stdout

    (tmp_path / "x.png").write_bytes(encode_png(image))
    captioned = run(sys.executable, "-m", "mmzoo.cli", "caption", "--model", str(version), "--image", "x.png")
    assert captioned.returncode == 0, captioned.stderr[-2000:]
    caption, log_probability = captioned.stdout.strip().splitlines()[-1].split("\t")
    assert caption == served({"image": image[None]})["caption"][0].decode() and float(log_probability) < 0
    from mmzoo.cli import main  # in-process: a second interpreter costs seconds for a one-line error

    assert main(["caption", "--model", str(version), "--image", str(tmp_path / "missing.png")]) == 2
    assert "image file not found" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--strategy", "mirrored"], ["--patience", "3"], ["--val-fraction", "0.2"],
                                   ["--towers", "image=small_cnn"], ["--fusion", "concat"], ["--object-epochs", "1"],
                                   ["--train-image-tower"]])
def test_train_command_refuses_classifier_flags(flags, capsys):
    from mmzoo.cli import main

    assert main(["train", "--task", "caption", *flags]) == 2
    error = capsys.readouterr().err
    assert f"{flags[0]} does not apply to --task caption" in error and len(error.strip().splitlines()) == 1


def test_train_command_keeps_an_explicit_recipe_and_checks_its_task(capsys, tmp_path):
    from mmzoo.cli import DEFAULT_RECIPE, main

    # The classifier default given explicitly is not swapped for the caption default: it is refused by name.
    assert main(["train", "--task", "caption", "--recipe", DEFAULT_RECIPE, "--dataset", "none.csv"]) == 2
    assert f"'{DEFAULT_RECIPE}' is a classifier recipe; expected a captioning recipe" in capsys.readouterr().err
    # And a captioning recipe without --task caption: one line before any data is read (no image is there).
    (tmp_path / "own.csv").write_text("image,text,label\nmissing.png,a red circle,red\n")
    with pytest.raises(mmzoo.training.OptionError, match="small_cnn_gru_captioner.*task caption"):
        mmzoo.train("small_cnn_gru_captioner", tmp_path / "own.csv", output_dir=tmp_path / "run")


def test_train_command_says_when_it_measured_nothing(monkeypatch, capsys, tmp_path):
    import mmzoo.captioning.training as training
    from mmzoo.cli import CAPTION_AUTO_EPOCHS, DEFAULT_CAPTION_RECIPE, main

    seen = {}

    def fake(model, data, **options):
        seen.update(options, model=model, data=data)
        return training.CaptionTrainResult(None, {}, {}, {"model": "m.keras", "export": None})

    monkeypatch.setattr(training, "train_captioner", fake)
    assert main(["train", "--task", "caption", "--dataset", "own.csv", "--no-export",
                 "--output-dir", str(tmp_path)]) == 0
    assert seen["model"] == DEFAULT_CAPTION_RECIPE and seen["epochs"] == CAPTION_AUTO_EPOCHS
    assert "no validation/test data: no caption metrics measured; give --val-data/--test-data" in capsys.readouterr().out


def test_image_tower_from_a_masked_pretrainer():
    from mmzoo.trainers import MaskedPretrainer

    classifier = mmzoo.build_model("small_cnn_bilstm_attention", num_classes=2, vocabulary=["a", "red"],
                                   image_size=32, sequence_length=4, embedding_dim=8, text_units=8, fusion_units=8)
    pretrainer = MaskedPretrainer(classifier, head_units=8)
    captioner = build_captioner(vocabulary=["a", "red"], image_size=32, units=8, embedding_dim=4)
    assert initialize_image_tower(captioner, pretrainer) == len(captioner.image_tower.weights)
    for mine, theirs in zip(captioner.image_tower.weights, classifier.image_towers["image"].weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    other = build_captioner(vocabulary=["a"], image_size=48, units=8, image_tower="coord_cnn")
    with pytest.raises(ValueError, match="does not match the captioner's"):
        initialize_image_tower(other, pretrainer)
