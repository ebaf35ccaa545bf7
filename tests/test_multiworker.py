"""`mmzoo.train(..., strategy="multiworker")` (what `mmzoo train --strategy multiworker` runs): two worker processes
on 127.0.0.1 train together and end identical; TF_CONFIG problems are one-line errors."""

import csv
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from mmzoo.data import shapes

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "multiworker_train.py")
IMAGE_SIZE = 32


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _write_csv(folder, split, count):
    """A tiny own-data CSV of mmzoo_shapes vqa examples (PNG files beside it): no TFDS generation needed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{split}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "text", "label"])
        for i in range(count):
            example = shapes.generate_example("vqa", split, i, image_size=IMAGE_SIZE)
            (folder / f"{split}_{i}.png").write_bytes(shapes.encode_png(example["image"]))
            writer.writerow([f"{split}_{i}.png", example["text"], shapes.ANSWERS[example["label"]]
                             if not isinstance(example["label"], str) else example["label"]])
    return path


@pytest.mark.slow
def test_two_workers_train_one_epoch_and_end_with_the_same_weights(tmp_path):
    train_csv = _write_csv(tmp_path / "data", "train", 96)
    val_csv = _write_csv(tmp_path / "data", "validation", 32)
    output_dir, export_dir = tmp_path / "run", tmp_path / "saved_models" / "mw"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    arguments = [str(train_csv), str(val_csv), str(output_dir), str(export_dir), str(IMAGE_SIZE)]
    processes, logs = [], []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        logs.append(open(tmp_path / f"worker{index}.log", "w"))
        processes.append(subprocess.Popen(
            [sys.executable, SCRIPT, str(tmp_path / f"weights{index}.npz"), *arguments],
            stdout=logs[-1], stderr=subprocess.STDOUT, env=env))
    try:
        deadline = time.monotonic() + 240
        for process in processes:
            process.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for log in logs:
            log.close()
    outputs = [(tmp_path / f"worker{index}.log").read_text() for index in range(2)]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]

    chief, worker = (np.load(tmp_path / f"weights{index}.npz") for index in range(2))
    assert len(chief.files) == len(worker.files) > 0
    max_abs_diff = max(float(np.abs(chief[key] - worker[key]).max()) for key in chief.files)
    assert max_abs_diff <= 1e-6, max_abs_diff
    # Trained, not left at their (broadcast, identical) initial values: the backup of neither is left either.
    assert "Test accuracy: " in outputs[0] and "worker 0 of a 2-worker cluster" in outputs[0]
    # Only the chief (worker 0) wrote the outputs; worker 1 removed its temporary directory.
    assert (output_dir / "model.keras").is_file()
    assert (output_dir / "training_curves.png").is_file()
    assert (export_dir / "1" / "saved_model.pb").is_file()
    assert sorted(os.listdir(export_dir)) == ["1"]
    assert not (output_dir / "workertemp_1").exists()
    assert not (output_dir / "backup").exists()
    assert "Test accuracy: " not in outputs[1]


def test_multiworker_without_tf_config_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from mmzoo import cli

    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = cli.main(["train", "--strategy", "multiworker", "--output-dir", str(tmp_path), "--no-export"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mmzoo train: error: --strategy multiworker: ")
    assert "TF_CONFIG environment variable, which is not set" in err
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}')
    assert cli.main(["train", "--strategy", "multiworker", "--output-dir", str(tmp_path), "--no-export"]) == 2
    assert "TF_CONFIG must be JSON" in capsys.readouterr().err


def test_the_library_names_the_strategy_argument(monkeypatch):
    import mmzoo

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"^strategy='multiworker': .*TF_CONFIG") as error:
        mmzoo.train("small_cnn_lstm_concat", "mmzoo_shapes/vqa", strategy="multiworker", export_dir=None)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"^strategy='tpu': expected one of default, mirrored, multiworker"):
        mmzoo.train("small_cnn_lstm_concat", "mmzoo_shapes/vqa", strategy="tpu")
