"""Audio recipes train on the bundled spoken data with no other option, and `mmzoo predict --audio` answers with a
.keras model and with its export (docs/audio.md, "Recipes and results" and the command line)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import cli
from mmzoo.cli.train import predict_example
from helpers import AUDIO_SAMPLE_RATE, CLASS_NAMES, IMAGE_SIZE, tiny_audio_overrides, tiny_waveforms

SPOKEN_VQA = "mmzoo_shapes/vqa_spoken"
QUESTION = "what color is the circle"


def _one_line_error(capsys, code, *expected):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def _write_wav(path, waveform, sample_rate=AUDIO_SAMPLE_RATE):
    """A 16-bit PCM WAV file of `waveform` (mono, or (samples, channels))."""
    samples = waveform if waveform.ndim == 2 else waveform[:, None]
    path.write_bytes(tf.audio.encode_wav(samples.astype(np.float32), sample_rate).numpy())
    return path


def _printed(capsys):
    label, probability = capsys.readouterr().out.strip().split("\t")
    return label, float(probability)


# === Training on the bundled spoken data ===


@pytest.mark.parametrize("recipe, inputs", [
    ("coord_cnn_mel_crnn_coattention", {"image": "image", "audio": "audio"}),
    pytest.param("coord_cnn_mel_crnn_gru_coattention", {"image": "image", "audio": "audio", "text": "text"},
                 marks=pytest.mark.slow),
    pytest.param("mel_crnn_classifier", {"audio": "audio"}, marks=pytest.mark.slow),
])
def test_recipe_trains_on_spoken_vqa_with_no_other_option(recipe, inputs, tmp_path):
    """The recipe's inputs are the names mmzoo.data gives the spoken VQA's features; the audio's rate and clip
    length come from the data (8 kHz, 5 s), as `mmzoo train --recipe R --dataset mmzoo_shapes/vqa_spoken` does."""
    result = mmzoo.train(recipe, SPOKEN_VQA, train_split="train[:48]", validation_split="validation[:16]",
                         test_split="test[:16]", epochs=1, batch_size=16, output_dir=tmp_path / "run", quiet=True,
                         verbose=0)
    model = result.model
    assert {name: m.kind for name, m in model.modalities.items()} == inputs
    audio = model.modalities["audio"].options
    assert (audio["sample_rate"], audio["num_samples"]) == (8000, 40000)
    assert audio["frame_step_ms"] == 20.0 and audio["mel_bins"] == 32  # the recipe's CPU-sized tower
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0 and np.isfinite(result.test_metrics["loss"])
    assert os.path.isfile(result.paths["keras_model"])


def test_cli_train_prints_a_predict_command_with_audio(tmp_path, capsys):
    model = mmzoo.build_model("coord_cnn_mel_crnn_gru_coattention", **tiny_audio_overrides())
    assert predict_example(model, QUESTION) == f'--image IMAGE.png --audio AUDIO.wav --text "{QUESTION}"'
    towers = {"front": "small_cnn", "speech": {"tower": "mel_cnn"}}
    other = mmzoo.build_classifier(towers=towers, fusion="concat", **tiny_audio_overrides())
    assert predict_example(other, QUESTION) == "--input front=FRONT.png --input speech=SPEECH.wav"


# === mmzoo evaluate on the spoken VQA ===


def test_mmzoo_evaluate_reads_a_tfds_datasets_audio(tmp_path, capsys):
    """The spoken VQA's clips, cropped or padded to the model's length, reach its audio input; a dataset without
    audio, or audio at another rate, is refused in one line."""
    keras.utils.set_random_seed(0)
    model = mmzoo.build_model("mel_crnn_classifier", **tiny_audio_overrides())  # 8 kHz, 4000 samples
    model.save(tmp_path / "m.keras")
    data = mmzoo.data.load(SPOKEN_VQA, "test[:24]", batch_size=8, num_samples=4000)
    correct = sum(int(np.sum(np.argmax(model({"audio": x["audio"]}), -1) == y.numpy())) for x, y in data)
    argv = ["evaluate", "--model", str(tmp_path / "m.keras"), "--split", "test[:24]", "--batch-size", "8"]
    assert cli.main([*argv, "--dataset", SPOKEN_VQA]) == 0
    assert capsys.readouterr().out.startswith(f"Accuracy: {correct / 24:.4f} on {SPOKEN_VQA} test[:24]")
    _one_line_error(capsys, cli.main([*argv, "--dataset", "mmzoo_shapes/vqa"]), "the model takes audio; the dataset "
                    "has no Audio feature (inputs: image, text)")
    fast = dict(tiny_audio_overrides(), sample_rate=16000)
    mmzoo.build_model("mel_crnn_classifier", **fast).save(tmp_path / "f.keras")
    argv[2] = str(tmp_path / "f.keras")
    _one_line_error(capsys, cli.main([*argv, "--dataset", SPOKEN_VQA]), "its audio is sampled at 8000 Hz; the model "
                    "takes 16000 Hz audio")


# === mmzoo predict --audio ===


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """A tiny image + audio model (.keras and export) and an audio-only one, with a PNG, a WAV at the models'
    rate, one at 16 kHz and a file that is not a WAV file."""
    root = tmp_path_factory.mktemp("spoken")
    keras.utils.set_random_seed(0)
    fused = mmzoo.build_model("coord_cnn_mel_crnn_coattention", **tiny_audio_overrides())
    fused.save(root / "fused.keras")
    alone = mmzoo.build_model("mel_crnn_classifier", **tiny_audio_overrides())
    alone.save(root / "alone.keras")
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    (root / "scene.png").write_bytes(tf.io.encode_png(pixels).numpy())
    clip = tiny_waveforms(1, seed=5)[0][:3000]  # shorter than the models' 4000 samples: zero-padded
    (root / "not.wav").write_text("hello")
    return dict(
        root=root, fused=fused, pixels=pixels, clip=clip,
        fused_export=mmzoo.export_model(fused, root / "fused_export"),
        alone_export=mmzoo.export_model(alone, root / "alone_export"),
        png=root / "scene.png", wav=_write_wav(root / "q.wav", clip),
        wav16k=_write_wav(root / "q16k.wav", tiny_waveforms(1, seed=5, num_samples=6000)[0], 16000),
    )


def _expected(model, pixels, waveform):
    """The label and probability of the Keras model on the example as the data pipeline would give it."""
    logits = model({"image": pixels[None].astype(np.float32), "audio": waveform[None]}, training=False)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))[0]
    return CLASS_NAMES[int(probabilities.argmax())], float(probabilities.max())


def test_predict_audio_and_image_on_keras_file_and_export(spoken, capsys):
    # The WAV file holds int16 samples: the model hears the clip quantised (as TensorFlow decodes it), zero-padded
    # to its 4000 samples.
    heard = np.zeros(4000, np.float32)
    heard[:3000] = tf.audio.decode_wav(spoken["wav"].read_bytes()).audio.numpy()[:, 0]
    label, probability = _expected(spoken["fused"], spoken["pixels"], heard)
    # Independent of mmzoo predict's reading: the export decodes the same WAV bytes in its graph.
    served = mmzoo.load_exported(spoken["fused_export"]).predict_wav_bytes(
        {"image": spoken["pixels"][None], "audio_wav": [spoken["wav"].read_bytes()]})
    assert served["label"][0] == label
    assert float(served["probabilities"][0].max()) == pytest.approx(probability, abs=1e-5)
    capsys.readouterr()
    for model in (spoken["root"] / "fused.keras", spoken["fused_export"]):
        argv = ["predict", "--model", str(model), "--image", str(spoken["png"]), "--audio", str(spoken["wav"])]
        assert cli.main(argv) == 0
        printed = _printed(capsys)
        assert printed[0] == label and printed[1] == pytest.approx(probability, abs=1e-4)
    # --input audio=FILE is the same input.
    argv = ["predict", "--model", str(spoken["fused_export"]), "--input", f"image={spoken['png']}",
            "--input", f"audio={spoken['wav']}"]
    assert cli.main(argv) == 0
    assert _printed(capsys)[0] == label


def test_predict_audio_alone(spoken, capsys):
    for model in (spoken["root"] / "alone.keras", spoken["alone_export"]):
        assert cli.main(["predict", "--model", str(model), "--audio", str(spoken["wav"])]) == 0
        label, probability = _printed(capsys)
        assert label in CLASS_NAMES and 1 / len(CLASS_NAMES) <= probability <= 1


def test_predict_audio_errors_are_one_line(spoken, capsys):
    export, wav, png = str(spoken["fused_export"]), str(spoken["wav"]), str(spoken["png"])
    takes = "the model takes image (an image file), audio (a WAV file)"
    _one_line_error(capsys, cli.main(["predict", "--model", export, "--image", png, "--audio", str(spoken["wav16k"])]),
                    f"--audio {spoken['wav16k']}: a WAV file sampled at 16000 Hz; the model takes 8000 Hz audio",
                    "--resample")
    missing = spoken["root"] / "nope.wav"
    _one_line_error(capsys, cli.main(["predict", "--model", export, "--image", png, "--audio", str(missing)]),
                    f"--audio {missing}: audio file not found", takes)
    _one_line_error(capsys, cli.main(["predict", "--model", export, "--image", png,
                                      "--audio", str(spoken["root"] / "not.wav")]),
                    "not.wav: is not a WAV file")
    _one_line_error(capsys, cli.main(["predict", "--model", export, "--image", png]),
                    "no value for input(s) audio", takes, "--image/--audio")
    _one_line_error(capsys, cli.main(["predict", "--model", export, "--image", png, "--audio", wav,
                                      "--input", f"audio={wav}"]), "input 'audio' is given twice")
    written = os.path.join(os.path.dirname(__file__), "fixtures", "v0_1_0", "concat_export")  # image + text
    _one_line_error(capsys, cli.main(["predict", "--model", written, "--image", png,
                                      "--text", QUESTION, "--audio", wav]),
                    f"--audio {wav}: the model has no audio input; the model takes image (an image file), "
                    "text (a text)")


def test_predict_resamples_on_request_and_says_when_a_clip_is_cropped(spoken, capsys):
    argv = ["predict", "--model", str(spoken["alone_export"]), "--audio", str(spoken["wav16k"]), "--resample"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    # 6000 samples at 16 kHz are 3000 at 8 kHz: within the model's 4000, nothing cropped.
    assert captured.out.strip().split("\t")[0] in CLASS_NAMES and captured.err == ""
    long_clip = _write_wav(spoken["root"] / "long.wav", tiny_waveforms(1, seed=6, num_samples=12000)[0])
    assert cli.main(["predict", "--model", str(spoken["alone_export"]), "--audio", str(long_clip)]) == 0
    assert "is 1.50 s long; the model hears its first 0.50 s" in capsys.readouterr().err
