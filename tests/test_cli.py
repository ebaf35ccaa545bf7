"""The `mmzoo` command line: list, train (export, plot, logs, resume after kill -9), predict, evaluate, export,
and one-line errors with exit status 2."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mmzoo
from mmzoo import cli, run_files
from mmzoo.cli import quiet, run_names
from mmzoo.data import bundled

pytestmark = pytest.mark.xdist_group("cli")

IMAGE_SIZE = 32
# Small slices keep a training run to seconds; the bundled data is generated on first use (~30 s).
TINY = ["--train-split", "train[:3%]", "--val-split", "validation[:10%]", "--test-split", "test[:10%]",
        "--image-size", str(IMAGE_SIZE), "--batch-size", "32", "--verbose", "2"]


def _csv_epochs(path):
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `mmzoo train` run, shared by the tests that need a trained model or export."""
    root = tmp_path_factory.mktemp("cli_train")
    output_dir, export_dir = root / "run", root / "saved_models" / "tiny"
    code = cli.main(["train", *TINY, "--epochs", "1", "--output-dir", str(output_dir), "--export", str(export_dir)])
    assert code == 0
    return output_dir, export_dir


@pytest.fixture(scope="module")
def test_example():
    """The first test example at IMAGE_SIZE px: (uint8 image, question)."""
    import mmzoo.data

    features, _ = next(iter(mmzoo.data.load("mmzoo_shapes/vqa", "test[:1]", batch_size=1, image_size=IMAGE_SIZE)))
    return features["image"].numpy()[0], features["text"].numpy()[0].decode()


def _one_line_error(capsys, code, *expected):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "error:" in err and "Traceback" not in err
    for text in expected:
        assert text in err, err
    return err


def test_list_shows_every_recipe_with_towers_fusion_and_parameters(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the tower counts' cache starts empty
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["recipe", "image"] and "params" in lines[0]
    rows = lines[1 : 1 + len(mmzoo.list_models())]
    for name, line in zip(mmzoo.list_models(), rows):
        recipe = mmzoo.get_recipe(name)
        if "towers" not in recipe:  # the two-input shorthand: no audio tower
            assert line.split()[:5] == [name, recipe["image_tower"], recipe["text_tower"], "-", recipe["fusion"]]
        assert mmzoo.describe_recipe(name) in line
    # Recipes given by `towers`: one column per input kind, '-' for none.
    shown = {line.split()[0]: line.split()[1:5] for line in rows}
    assert shown["coord_cnn_mel_crnn_coattention"] == ["coord_cnn", "-", "mel_crnn", "coattention"]
    assert shown["coord_cnn_mel_crnn_gru_coattention"] == ["coord_cnn", "gru", "mel_crnn", "coattention"]
    assert shown["mel_crnn_classifier"] == ["-", "-", "mel_crnn", "-"]
    # The count is the real model's, for the bundled data's 14 classes and 36 words.
    vocabulary = [f"w{i}" for i in range(bundled.VQA_VOCABULARY_SIZE)]
    for name in ("small_cnn_lstm_concat", cli.DEFAULT_RECIPE, "coord_cnn_mel_crnn_coattention"):
        model = mmzoo.build_model(name, num_classes=bundled.VQA_NUM_CLASSES, vocabulary=vocabulary, image_size=32)
        row = next(line for line in rows if line.startswith(name + " "))
        assert row.split()[5] == f"{model.count_params():,}"
    assert (tmp_path / "mmzoo" / "tower_parameters.json").is_file()
    assert cli.main(["list"]) == 0  # from the cache: the same table
    assert capsys.readouterr().out == out
    assert cli.main(["list", "--no-params"]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert "params" not in plain[0] and len(plain) == len(mmzoo.list_models()) + 1


def test_train_writes_model_export_plot_and_logs(trained, capsys):
    output_dir, export_dir = trained
    assert (output_dir / "model.keras").is_file()
    assert (export_dir / "1" / "saved_model.pb").is_file()
    assert (output_dir / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _csv_epochs(output_dir / "training_log.csv") == [0]
    # The default recipe on the bundled data pretrains its image tower on the object annotations first.
    assert (output_dir / run_files.OBJECT_WEIGHTS).is_file()
    pytest.importorskip("tensorboard")
    events = [f for _, _, files in os.walk(output_dir / "logs") for f in files if f.startswith("events.out")]
    assert events
    assert not (output_dir / "backup").exists()  # BackupAndRestore removes its backup when training completes


def test_predict_prints_the_exports_label_and_probability(trained, test_example, tmp_path, capsys):
    import tensorflow as tf

    _, export_dir = trained
    image, question = test_example
    png = tmp_path / "example.png"
    png.write_bytes(tf.io.encode_png(image).numpy())
    expected = mmzoo.load_exported(export_dir)({"image": image[None], "text": [question]})
    label, probability = expected["label"][0], float(expected["probabilities"][0].max())

    capsys.readouterr()
    assert cli.main(["predict", "--model", str(export_dir), "--image", str(png), "--text", question]) == 0
    printed_label, printed_probability = capsys.readouterr().out.strip().split("\t")
    assert printed_label == label
    assert float(printed_probability) == pytest.approx(probability, abs=1e-3)


def test_evaluate_keras_file_and_export_agree_and_export_command(trained, tmp_path, capsys):
    output_dir, export_dir = trained
    capsys.readouterr()
    args = ["--split", "test[:5%]", "--batch-size", "25"]
    assert cli.main(["evaluate", "--model", str(output_dir / "model.keras"), *args]) == 0
    from_keras = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main(["evaluate", "--model", str(export_dir), *args]) == 0
    from_export = capsys.readouterr().out.strip().splitlines()[-1]
    assert from_keras.startswith("Accuracy: ") and "(50 examples)" in from_keras
    assert from_keras == from_export

    target = tmp_path / "exported"
    assert cli.main(["export", "--model", str(output_dir / "model.keras"), "--output", str(target)]) == 0
    assert (target / "1" / "saved_model.pb").is_file()
    capsys.readouterr()
    code = cli.main(["export", "--model", str(output_dir / "model.keras"), "--output", str(target / "1")])
    _one_line_error(capsys, code, "already exists")


def test_evaluate_a_keras_file_in_a_fresh_process(trained):
    """A new process has imported none of mmzoo's layers (`import mmzoo` is lazy): loading must register them."""
    run = subprocess.run([sys.executable, "-m", "mmzoo.cli", "evaluate", "--model", str(trained[0] / "model.keras"),
                          "--split", "test[:2%]"], capture_output=True, text=True, env=_env(), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("Accuracy: ")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--learning-rate", "fast"], "--learning-rate"),
        (["train", "--export", "a", "--no-export"], "not allowed with"),
        (["predict", "--image", "x.png"], "required"),
        (["bogus"], "invalid choice"),
        (["train", "--strategy", "tpu"], "argument --strategy: expected one of default, mirrored, multiworker, got 'tpu'"),
        (["train", "--schedule", "step"], "argument --schedule: expected one of cosine, constant, got 'step'"),
        (["train", "--epochs", "many"], "argument --epochs: expected 'auto' or a positive integer, got 'many'"),
        (["train", "--patience", "-1"], "argument --patience: expected 'auto' or a non-negative integer, got '-1'"),
        (["train", "--val-fraction", "1"], "argument --val-fraction: expected 'auto' or a number in [0, 1), got '1'"),
    ],
)
def test_argparse_errors_are_one_line_with_status_2(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    _one_line_error(capsys, exit_info.value.code, expected)


@pytest.mark.parametrize("argv, epochs, patience, fraction", [
    ([], "auto", "auto", "auto"),
    (["--epochs", "7", "--patience", "0", "--val-fraction", "0.2"], 7, 0, 0.2),
    (["--epochs", "auto", "--patience", "3"], "auto", 3, "auto"),
])
def test_run_length_flags_parse(argv, epochs, patience, fraction):
    args = cli.build_parser().parse_args(["train", *argv])
    assert (args.epochs, args.patience, args.val_fraction) == (epochs, patience, fraction)


def test_mmzoo_errors_are_one_line_with_status_2(tmp_path, capsys):
    no_export = ["--no-export", "--output-dir", str(tmp_path / "run")]
    _one_line_error(capsys, cli.main(["train", "--recipe", "nope", *no_export]), "Unknown recipe 'nope'")
    _one_line_error(capsys, cli.main(["train", "--dataset", str(tmp_path / "missing.csv"), *no_export]), "missing.csv")
    _one_line_error(capsys, cli.main(["train", "--val-data", str(tmp_path), *no_export]), "--val-data")
    _one_line_error(capsys, cli.main(["train", *TINY, "--recipe", "small_cnn_lstm_concat", "--object-epochs", "1", *no_export]),
                    "--object-epochs 1", "gives no square token grid")
    image = tmp_path / "not_an_image.png"
    image.write_text("hello")
    _one_line_error(capsys, cli.main(["predict", "--model", str(tmp_path / "nothing"), "--image", str(image), "--text", "q"]), "not found")
    _one_line_error(capsys, cli.main(["evaluate", "--model", str(tmp_path)]), "No SavedModel")
    _one_line_error(capsys, cli.main(["export", "--model", str(image), "--output", str(tmp_path / "out")]), ".keras")


def test_predict_rejects_a_file_that_is_not_an_image(trained, tmp_path, capsys):
    image = tmp_path / "not_an_image.png"
    image.write_text("hello")
    code = cli.main(["predict", "--model", str(trained[1]), "--image", str(image), "--text", "q"])
    _one_line_error(capsys, code, "not a JPEG, PNG")


def test_train_under_mirrored_strategy_exports_the_raw_input_model(tmp_path, capsys):
    """The backbone is fitted under MirroredStrategy (text vectorized in tf.data); the export takes raw strings."""
    output_dir, export_dir = tmp_path / "run", tmp_path / "saved_models" / "mirrored"
    code = cli.main(["train", *TINY, "--train-split", "train[:1%]", "--epochs", "1", "--strategy", "mirrored",
                     "--schedule", "constant", "--output-dir", str(output_dir), "--export", str(export_dir)])
    assert code == 0
    out = capsys.readouterr().out
    assert "Test accuracy: " in out
    # The bundled data's runs suggest one of its questions to try the export with.
    assert f'--image IMAGE.png --text "{bundled.EXAMPLE_QUESTION}"' in out
    served = mmzoo.load_exported(str(export_dir))
    outputs = served({"image": np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8), "text": ["what color is the circle?", ""]})
    np.testing.assert_allclose(np.asarray(outputs["probabilities"]).sum(axis=-1), 1.0, rtol=1e-5)


# === Models of any named inputs: two views and a question, from a CSV file ===

VIEW_QUESTIONS = ["what color is it", "how many shapes", "is it red", "which shape is it"]
VIEW_LABELS = ["red", "blue", "yes"]
VIEW_TOWERS = "front=small_cnn,side=small_cnn,question=gru"


def _write_views(folder, rows=8):
    """A CSV of `rows` examples with two image columns (front, side: 32 px PNGs) and a question."""
    from mmzoo.data import shapes

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(folder / "views.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["front", "side", "question", "label"])
        for i in range(rows):
            for view in ("front", "side"):
                image = rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
                (folder / f"{view}_{i}.png").write_bytes(shapes.encode_png(image))
            writer.writerow([f"front_{i}.png", f"side_{i}.png", VIEW_QUESTIONS[i % 4], VIEW_LABELS[i % 3]])
    return folder / "views.csv"


def _views_train(csv_path, *extra):
    return ["train", "--dataset", str(csv_path), "--image-column", "front,side", "--text-column", "question",
            "--recipe", "small_cnn_lstm_concat", "--epochs", "1", "--image-size", str(IMAGE_SIZE), "--batch-size", "4",
            "--verbose", "0", *extra]


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    """`mmzoo train --towers` on two image columns and a text column: (csv, output dir, export dir, stdout)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("cli_views")
    csv_path = _write_views(root / "data")
    output_dir, export_dir = root / "run", root / "saved_models" / "views"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(_views_train(csv_path, "--towers", VIEW_TOWERS, "--val-data", str(csv_path),
                                     "--output-dir", str(output_dir), "--export", str(export_dir)))
    assert code == 0
    return csv_path, output_dir, export_dir, out.getvalue()


def test_train_with_towers_on_several_columns_saves_and_exports(views):
    csv_path, output_dir, export_dir, out = views
    model = mmzoo.load_model(output_dir / "model.keras")
    kinds = {name: m.kind for name, m in model.modalities.items()}
    assert kinds == {"front": "image", "side": "image", "question": "text"}
    assert [m.tower for m in model.modalities.values()] == ["small_cnn", "small_cnn", "gru"]
    assert model.get_config()["fusion"] == "concat"  # the recipe's fusion and widths, its towers replaced
    assert model.get_config()["fusion_units"] == mmzoo.get_recipe("small_cnn_lstm_concat")["fusion_units"]
    served = mmzoo.load_exported(export_dir)
    assert served.image_sizes() == {"front": (IMAGE_SIZE, IMAGE_SIZE), "side": (IMAGE_SIZE, IMAGE_SIZE)}
    assert "Test accuracy: " in out
    assert "--input front=FRONT.png --input side=SIDE.png --input question=\"TEXT\"" in out


def test_predict_takes_each_input_by_name(views, capsys):
    csv_path, _, export_dir, _ = views
    front, side = csv_path.parent / "front_1.png", csv_path.parent / "side_2.png"
    expected = mmzoo.load_exported(export_dir).predict_image_bytes(
        {"front_bytes": [front.read_bytes()], "side_bytes": [side.read_bytes()], "question": ["is it red"]})
    capsys.readouterr()
    code = cli.main(["predict", "--model", str(export_dir), "--input", f"side={side}", "--input", f"front={front}",
                     "--input", "question=is it red"])
    assert code == 0
    label, probability = capsys.readouterr().out.strip().split("\t")
    assert label == expected["label"][0]
    assert float(probability) == pytest.approx(float(expected["probabilities"][0].max()), abs=1e-3)


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--input", "front={front}", "--input", "side={side}"], "no value for input(s) question"),
        (["--input", "front={front}", "--input", "side={side}", "--input", "question=q", "--input", "back={side}"],
         "--input back="),
        (["--input", "front={front}", "--input", "side={data}/nope.png", "--input", "question=q"],
         "image file not found"),
        (["--image", "{front}", "--text", "q"], "--image "),
        (["--input", "front={front}", "--input", "front={side}", "--input", "side={side}", "--input", "question=q"],
         "input 'front' is given twice"),
        (["--input", "front={data}/views.csv", "--input", "side={side}", "--input", "question=q"],
         "is not a JPEG, PNG, GIF, BMP or WebP image"),
    ],
    ids=["missing", "unknown", "missing_file", "image_flag_for_another_model", "twice", "not_an_image"],
)
def test_predict_input_errors_name_the_models_inputs(views, capsys, arguments, expected):
    csv_path, _, export_dir, _ = views
    paths = dict(front=csv_path.parent / "front_0.png", side=csv_path.parent / "side_0.png", data=csv_path.parent)
    argv = ["predict", "--model", str(export_dir), *(a.format(**paths) for a in arguments)]
    err = _one_line_error(capsys, cli.main(argv), expected)
    if "JPEG" not in expected:
        assert "the model takes front (an image file), side (an image file), question (a text)" in err


def test_predict_with_image_and_text_flags_or_inputs_on_an_image_text_export(tmp_path, capsys):
    """--image/--text and --input image=/text= feed the same inputs; giving one input both ways is an error."""
    import tensorflow as tf

    export = os.path.join(os.path.dirname(__file__), "fixtures", "v0_1_0", "concat_export")
    png = tmp_path / "scene.png"
    png.write_bytes(tf.io.encode_png(np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 90, np.uint8)).numpy())
    printed = []
    for argv in (["--image", str(png), "--text", "what color is the circle"],
                 ["--input", f"image={png}", "--input", "text=what color is the circle"],
                 ["--image", str(png), "--input", "text=what color is the circle"]):
        assert cli.main(["predict", "--model", export, *argv]) == 0
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] == printed[2] and len(printed[0].split("\t")) == 2
    code = cli.main(["predict", "--model", export, "--image", str(png), "--input", f"image={png}", "--text", "q"])
    _one_line_error(capsys, code, f"--image {png}: input 'image' is given twice (also --input image={png})",
                    "the model takes image (an image file), text (a text)")


def test_predict_on_image_only_and_text_only_exports(tmp_path, capsys):
    from mmzoo.data import shapes

    png = tmp_path / "view.png"
    png.write_bytes(shapes.encode_png(np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)))
    common = dict(class_names=VIEW_LABELS, image_size=IMAGE_SIZE, fusion_units=8, text_units=8, embedding_dim=8)
    cases = [({"front": "small_cnn"}, ["--input", f"front={png}"]),
             ({"text": "gru"}, ["--text", "how many shapes"])]
    for towers, argv in cases:
        texts = VIEW_QUESTIONS if "text" in towers else None
        model = mmzoo.build_classifier(towers=towers, fusion=None, texts=texts, **common)
        path = mmzoo.export_model(model, tmp_path / next(iter(towers)))
        capsys.readouterr()
        assert cli.main(["predict", "--model", path, *argv]) == 0
        label, _ = capsys.readouterr().out.strip().split("\t")
        assert label in VIEW_LABELS
    _one_line_error(capsys, cli.main(["predict", "--model", path, "--image", str(png), "--text", "q"]),
                    f"--image {png}: the model has no input 'image'; the model takes text (a text)")


def test_evaluate_and_export_a_three_input_keras_model(views, tmp_path, capsys):
    csv_path, output_dir, export_dir, _ = views
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(output_dir / "model.keras"), "--dataset", str(csv_path)]) == 0
    from_keras = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main(["evaluate", "--model", str(export_dir), "--dataset", str(csv_path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == from_keras
    assert from_keras.startswith("Accuracy: ") and "(8 examples)" in from_keras
    assert cli.main(["export", "--model", str(output_dir / "model.keras"), "--output", str(tmp_path / "exported")]) == 0
    assert mmzoo.load_exported(tmp_path / "exported").input_names() == ("front", "question", "side")
    _one_line_error(capsys, cli.main(["evaluate", "--model", str(export_dir)]),
                    "--dataset mmzoo_shapes/vqa: a TFDS dataset gives the inputs image, text and audio",
                    "front (image), side (image), question (text)")


def test_train_input_errors_name_the_data_and_the_model(views, tmp_path, capsys):
    csv_path = views[0]
    no_export = ["--no-export", "--output-dir", str(tmp_path / "run")]
    code = cli.main(_views_train(csv_path, "--towers", "front=small_cnn,back=small_cnn,question=gru", *no_export))
    _one_line_error(capsys, code, "--towers front=small_cnn,back=small_cnn,question=gru: expected one tower for each "
                    "input of the data", "front (image), side (image), question (text)", "no input 'back'")
    code = cli.main(_views_train(csv_path, *no_export))  # the recipe's two towers, image and text
    _one_line_error(capsys, code, "recipe small_cnn_lstm_concat takes image (image), text (text); the data has "
                    "front (image), side (image), question (text)", "--towers")
    code = cli.main(["train", "--image-column", "front,side", *no_export])
    _one_line_error(capsys, code, "--image-column front,side: goes with .csv/.jsonl data")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--towers", "front", *no_export])
    _one_line_error(capsys, exit_info.value.code, "argument --towers: expected NAME=TOWER pairs")


def _command(tmp_path, epochs):
    # Enough data that an epoch on the cached frozen-tower outputs takes longer than the kill does to arrive.
    return [sys.executable, "-m", "mmzoo.cli", "train", *TINY, "--train-split", "train[:10%]", "--object-epochs", "1",
            "--epochs", str(epochs), "--output-dir", str(tmp_path / "run"), "--no-export"]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


@pytest.mark.slow
def test_resume_after_kill_9_continues_from_the_last_completed_epoch(tmp_path):
    epochs = 5
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"
    log = open(tmp_path / "first.log", "w")
    process = subprocess.Popen(_command(tmp_path, epochs), stdout=log, stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.monotonic() + 300
        while not metadata.exists():
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no backup after 300 s"
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    time.sleep(0.1)
    completed = json.loads(metadata.read_text())["epoch"]
    assert 1 <= completed < epochs
    assert not (tmp_path / "run" / "model.keras").exists()

    rerun = subprocess.run(_command(tmp_path, epochs), capture_output=True, text=True, env=_env(), timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"Resuming from the backup in {tmp_path / 'run' / 'backup'}: epoch {completed + 1} of {epochs}." in rerun.stdout
    assert f"Epoch {completed + 1}/{epochs}" in rerun.stdout and "Epoch 1/" not in rerun.stdout
    # The object pretraining of the first run is loaded, not repeated.
    assert "Image tower: object pretraining loaded from" in rerun.stdout
    # ... and the frozen tower's outputs computed again, once, for the epochs left.
    assert rerun.stdout.count("Computing the frozen image tower's outputs once") == 1
    # Every epoch logged exactly once, the ones before the kill kept.
    assert _csv_epochs(tmp_path / "run" / "training_log.csv") == list(range(epochs))
    assert "Test accuracy: " in rerun.stdout
    assert (tmp_path / "run" / "model.keras").is_file()
    assert not (tmp_path / "run" / "backup").exists()


def test_errors_from_the_command_line_process_have_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mmzoo.cli", "train", "--recipe", "nope", "--no-export",
                             "--output-dir", str(tmp_path)], capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("mmzoo train: error: Unknown recipe 'nope'")


def test_distill_trains_a_student_recipe_from_a_keras_teacher(trained, tmp_path, capsys):
    output_dir, export_dir = tmp_path / "distill", tmp_path / "saved_models" / "student"
    code = cli.main(["distill", "--teacher", str(trained[0] / "model.keras"), "--student-recipe", "small_cnn_lstm_concat",
                     "--alpha", "0.5", "--temperature", "2", *TINY, "--epochs", "1",
                     "--output-dir", str(output_dir), "--export", str(export_dir)])
    assert code == 0
    out = capsys.readouterr().out
    assert f"{IMAGE_SIZE} px), alpha 0.5, temperature 2.0" in out and "Student test accuracy: " in out
    assert (output_dir / "model.keras").is_file() and (export_dir / "1" / "saved_model.pb").is_file()
    assert _csv_epochs(output_dir / "training_log.csv") == [0]


def test_distill_pretrains_a_token_grid_students_tower_on_objects_and_keeps_it_frozen(trained, tmp_path, capsys):
    output_dir = tmp_path / "distill"
    code = cli.main(["distill", "--teacher", str(trained[0] / "model.keras"), "--student-recipe", cli.DEFAULT_RECIPE,
                     *TINY, "--epochs", "1", "--object-epochs", "1", "--schedule", "cosine",
                     "--output-dir", str(output_dir), "--no-export"])
    assert code == 0
    assert "Object pretraining of the image tower: 1 epoch(s)" in capsys.readouterr().out
    tower = mmzoo.get_image_tower(mmzoo.load_model(output_dir / "model.keras"))
    distilled = [w.numpy() for w in tower.weights]
    tower.load_weights(output_dir / run_files.OBJECT_WEIGHTS)
    for after_distillation, after_objects in zip(distilled, tower.weights):
        np.testing.assert_array_equal(after_distillation, after_objects.numpy())
    # A student whose fusion pools the image has no token grid to pretrain: a one-line error, before training.
    _one_line_error(capsys, cli.main(["distill", "--teacher", str(trained[0] / "model.keras"), *TINY,
                                      "--student-recipe", "small_cnn_lstm_concat", "--object-epochs", "1", "--no-export",
                                      "--output-dir", str(tmp_path / "pooled")]),
                    "--object-epochs 1", "small_cnn_lstm_concat", "gives no square token grid")


@pytest.mark.slow
def test_pretrain_then_train_from_the_pretrained_towers(tmp_path, capsys):
    """mmzoo pretrain (masked modelling on captions) saves a classifier; mmzoo train --init starts from it."""
    data = ["--data-dir", str(tmp_path / "tfds")]  # its own small copy: no race with other tests generating data
    pretrained = tmp_path / "pretrain" / "model.keras"
    code = cli.main(["pretrain", "--dataset", "mmzoo_shapes/captions", "--for-dataset", "mmzoo_shapes/captions", *data,
                     "--train-split", "train[:1%]", "--image-size", str(IMAGE_SIZE), "--epochs", "1", "--verbose", "0",
                     "--output-dir", str(pretrained.parent)])
    assert code == 0 and pretrained.is_file()
    assert f"--init {pretrained}" in capsys.readouterr().out
    code = cli.main(["train", "--recipe", "small_cnn_bilstm_attention", "--dataset", "mmzoo_shapes/captions", *data,
                     *TINY, "--train-split", "train[:1%]", "--epochs", "1", "--init", str(pretrained),
                     "--output-dir", str(tmp_path / "run"), "--no-export"])
    assert code == 0
    out = capsys.readouterr().out
    initialized = next(line for line in out.splitlines() if line.startswith("Initialized "))
    assert f"from {pretrained}: " in initialized and "fusion" in initialized and "head" not in initialized.split(": ")[1]
    code = cli.main(["train", "--recipe", "small_cnn_lstm_concat", "--dataset", "mmzoo_shapes/captions", *data, *TINY,
                     "--init", str(pretrained), "--output-dir", str(tmp_path / "other"), "--no-export"])
    _one_line_error(capsys, code, "--init")


def test_known_start_up_noise_is_silenced_and_other_warnings_stay(caplog):
    import logging

    quiet.quiet_known_noise()
    quiet.quiet_known_noise()  # idempotent: one filter
    absl_logger = logging.getLogger("absl")
    assert absl_logger.filters.count(quiet.TFDS_DTYPE_DEPRECATION) == 1
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("1", "2", "3")  # set by us unless the user chose one
    with caplog.at_level(logging.WARNING, logger="absl"):
        absl_logger.warning("`FeatureConnector.dtype` is deprecated. Please change your code ...")
        absl_logger.warning("a real warning")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["a real warning"]


def test_a_failed_check_inside_a_graph_is_one_line(monkeypatch, capsys):
    """An image over the decoding limits met while a command reads data fails inside tf.data: one line, status 2."""
    import tensorflow as tf

    def run(args):
        raise tf.errors.InvalidArgumentError(None, None, "assertion failed: [PNG image declares 20000 x 20000 = "
                                             "400000000 pixels, more than the limit]\n\t [[{{node Assert}}]]")

    parser = cli.build_parser()
    real_parse = parser.parse_args

    def parse(argv):
        args = real_parse(argv)
        args.run = run
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["list", "--no-params"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("mmzoo list: error: assertion failed: [PNG image declares 20000 x 20000 = 400000000 pixels, more "
                   "than the limit]")


def test_default_run_folders_are_named_after_the_data_too():
    """The same recipe on other data must not resume the other run's backup or become its model's next version."""
    import argparse

    def name(dataset):
        return run_names.run_name(argparse.Namespace(recipe="small_cnn_lstm_concat", dataset=dataset))

    assert name(cli.DEFAULT_DATASET) == "small_cnn_lstm_concat"  # the main job's folders are as documented
    assert name("data/photos v2.csv") == "small_cnn_lstm_concat_photos_v2"
    assert name("/tmp/Train.JSONL") == "small_cnn_lstm_concat_Train"
    assert name("mmzoo_shapes/captions") == "small_cnn_lstm_concat_mmzoo_shapes_captions"
