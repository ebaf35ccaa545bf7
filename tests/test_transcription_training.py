"""Training transcribers: `train_transcriber` on a CSV of WAV files (model.keras, CSV log, export, WER/CER),
`mmzoo train --task transcribe`, what it refuses, one step on 1 and on 2 replicas (a subprocess), and the
bundled spoken captions fit the default recipe's time steps."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import cli
from mmzoo.transcription.training import auto_epochs, train_transcriber

pytestmark = pytest.mark.xdist_group("transcription_training")

RATE = 8000
WORDS = ["red", "blue", "circle", "square"]
SCRIPT = pathlib.Path(__file__).parent / "scripts" / "mirrored_transcriber.py"
TINY_OPTIONS = {"mel_bins": 16, "audio_widths": (8, 16), "audio_units": 12}


def _tone_words(text, rng):
    """A clip for `text`: one tone per word (its own pitch), short gaps; float32 in [-1, 1]."""
    pieces = []
    for word in text.split():
        t = np.arange(int(0.12 * RATE)) / RATE
        pieces += [0.5 * np.sin(2 * np.pi * (300 + 150 * WORDS.index(word)) * t), np.zeros(int(0.03 * RATE))]
    clip = np.concatenate(pieces).astype(np.float32)
    return clip + rng.uniform(-0.01, 0.01, clip.shape).astype(np.float32)


def write_csv(folder, name, rows, seed=0):
    """A CSV of `rows` transcripts, each with a WAV file of its own (16-bit PCM at 8 kHz)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["audio", "text"])
        for index, text in enumerate(rows):
            path = folder / f"{name}_{index}.wav"
            path.write_bytes(tf.audio.encode_wav(tf.constant(_tone_words(text, rng)[:, None]), RATE).numpy())
            writer.writerow([path.name, text.capitalize() + "."])
    return folder / name


def _texts(count, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 3))) for _ in range(count)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    return write_csv(folder, "train.csv", _texts(24, 0), seed=0), write_csv(folder, "val.csv", _texts(8, 1), seed=1)


@pytest.mark.slow
def test_train_transcriber_on_csv_files_writes_model_log_and_export(files, tmp_path):
    train, val = files
    result = train_transcriber("mel_crnn_ctc", str(train), validation_data=str(val), epochs=2, batch_size=8,
                               model_options=TINY_OPTIONS, output_dir=str(tmp_path / "run"),
                               export_dir=str(tmp_path / "export"), verbose=0)
    model = result.model
    # The characters of the normalised transcripts; the files' rate; the longest clip (two words: 0.3 s).
    assert model.vocabulary == sorted(set("".join(_texts(24, 0))))
    assert model.sample_rate == RATE and model.num_samples == int(2 * 0.15 * RATE)
    assert set(result.test_metrics) == {"wer", "cer", "exact_match", "examples"}
    assert result.test_metrics["examples"] == 8 and result.test_metrics["cer"] >= 0.0
    assert result.data_report["examples"] == 24 and result.data_report["too_long"] == 0
    assert len(result.history["loss"]) == 2 and "val_loss" in result.history
    assert os.path.isfile(result.paths["model"]) and os.path.isfile(result.paths["log"])
    assert os.path.isdir(tmp_path / "run" / "logs")
    served = mmzoo.load_exported(result.paths["export"])
    waves = np.zeros((1, model.num_samples), np.float32)
    waves[0, :1000] = 0.1
    assert served({"audio": waves})["transcript"][0].decode() == model.transcribe(waves)["transcript"][0]
    # A built transcriber: the files are read at its rate and length.
    again = train_transcriber(model, str(train), epochs=1, batch_size=8, verbose=0)
    assert again.model is model and again.test_metrics == {}


def test_train_transcriber_refuses_what_it_cannot_train(files):
    train, _ = files
    with pytest.raises(ValueError, match="is a classify recipe; expected a transcription recipe, one of mel_crnn_ctc"):
        train_transcriber("small_cnn_lstm_concat", str(train))
    with pytest.raises(ValueError, match="must be a transcription recipe name or a SpeechTranscriber"):
        train_transcriber(object(), str(train))
    model = mmzoo.build_model("mel_crnn_ctc", vocabulary=list("ab"), sample_rate=16000, num_samples=32000,
                              **TINY_OPTIONS)
    with pytest.raises(ValueError, match="the transcriber takes 16000 Hz"):
        train_transcriber(model, "mmzoo_shapes/spoken_captions", train_split="train[:8]", epochs=1)
    assert auto_epochs(3000) == 4 and auto_epochs(100) == 60 and auto_epochs(10**6) == 3 and auto_epochs(None) == 3


def test_mmzoo_train_task_transcribe(files, tmp_path, capsys):
    train, val = files
    argv = ["train", "--task", "transcribe", "--dataset", str(train), "--val-data", str(val), "--epochs", "1",
            "--batch-size", "8", "--output-dir", str(tmp_path / "run"), "--export", str(tmp_path / "export"),
            "--verbose", "0"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "test wer" in out and "test cer" in out and f"mmzoo transcribe --model {tmp_path / 'export'}/1" in out
    assert os.path.isfile(tmp_path / "run" / "model.keras")
    assert json.load(open(tmp_path / "export" / "1" / "assets.extra" / "mmzoo.json"))["task"] == "transcribe"
    assert cli.main(["train", "--task", "transcribe", "--dataset", str(train), "--towers", "audio=mel_cnn"]) == 2
    assert "--towers does not apply to --task transcribe" in capsys.readouterr().err
    assert cli.main(["train", "--task", "transcribe", "--dataset", str(train), "--recipe", "small_cnn_lstm_concat",
                     "--output-dir", str(tmp_path / "x"), "--no-export"]) == 2
    assert "expected a transcription recipe" in capsys.readouterr().err


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica():
    # A subprocess: logical CPU devices must be configured before TensorFlow initialises.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_step"] > 1e-3 and result["max_abs_diff"] <= 1e-5
    assert result["loss_1"] == pytest.approx(result["loss_2"], rel=1e-5)


@pytest.mark.slow
def test_bundled_spoken_captions_fit_the_default_recipe():
    from mmzoo.transcription.data import fit_report, transcription_dataset

    test, info = transcription_dataset("mmzoo_shapes/spoken_captions", "test", batch_size=100, with_info=True)
    model = mmzoo.build_model("mel_crnn_ctc", vocabulary=list("abcdefghijklmnopqrstuvwxyz '"),
                              sample_rate=info.sample_rate, num_samples=info.num_samples, **TINY_OPTIONS)
    report = fit_report(model, test)
    # 50 tokens a second; the fastest caption is under 21 characters a second: every one fits, with room.
    assert report["examples"] == 500 and report["too_long"] == 0 and report["max_required_fraction"] < 0.5


def test_mmzoo_train_task_defaults(monkeypatch, capsys):
    """--task transcribe: mel_crnn_ctc on the bundled spoken captions, batches of 16, epochs 'auto'; the
    classifier keeps its batches of 64."""
    import mmzoo.training
    import mmzoo.transcription.training as transcription_training

    calls = {}

    def fake(name):
        def run(model, data, **kwargs):
            calls[name] = dict(kwargs, model=model, data=data)
            raise ValueError("stop here")
        return run

    monkeypatch.setattr(transcription_training, "train_transcriber", fake("transcribe"))
    monkeypatch.setattr(mmzoo.training, "train", fake("classify"))
    assert cli.main(["train", "--task", "transcribe"]) == 2 and cli.main(["train"]) == 2
    assert "stop here" in capsys.readouterr().err
    transcribe, classify = calls["transcribe"], calls["classify"]
    assert (transcribe["model"], transcribe["data"]) == ("mel_crnn_ctc", "mmzoo_shapes/spoken_captions")
    assert transcribe["batch_size"] == 16 and transcribe["epochs"] == "auto" and transcribe["learning_rate"] == 3e-3
    assert transcribe["output_dir"] == os.path.join("runs", "mel_crnn_ctc_mmzoo_shapes_spoken_captions")
    assert classify["batch_size"] == 64
    assert cli.main(["train", "--task", "transcribe", "--batch-size", "64"]) == 2
    assert calls["transcribe"]["batch_size"] == 64
