"""`mmzoo.train` from Python: on tf.data datasets and on a CSV file it returns the model, the per-epoch log, test
metrics that `evaluate` agrees with and the paths it wrote; a second call resumes from the backup; bad options
are one-line ValueErrors naming the argument. Also `mmzoo.distribute` and `mmzoo.run_files` on their own."""

import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import distribute, run_files
from mmzoo.data import shapes
from mmzoo.training import OptionError, TrainResult
from mmzoo.training.model_inputs import recipe_overrides

IMAGE_SIZE = 32
RECIPE = "small_cnn_lstm_concat"


def _examples(split, count):
    """`count` vqa examples at 32 px: (uint8 images, questions, label ids)."""
    rows = [shapes.generate_example("vqa", split, i, image_size=IMAGE_SIZE) for i in range(count)]
    labels = [row["label"] if not isinstance(row["label"], str) else shapes.ANSWERS.index(row["label"]) for row in rows]
    return np.stack([row["image"] for row in rows]), [row["text"] for row in rows], np.array(labels, np.int64)


def _dataset(split, count, batch_size=16):
    images, texts, labels = _examples(split, count)
    return tf.data.Dataset.from_tensor_slices(({"image": images, "text": texts}, labels)).batch(batch_size)


def _write_csv(folder, split, count):
    folder.mkdir(parents=True, exist_ok=True)
    images, texts, labels = _examples(split, count)
    path = folder / f"{split}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "text", "label"])
        for i, (image, text, label) in enumerate(zip(images, texts, labels)):
            (folder / f"{split}_{i}.png").write_bytes(shapes.encode_png(image))
            writer.writerow([f"{split}_{i}.png", text, shapes.ANSWERS[label]])
    return path


def _write_views_csv(folder, split, count):
    """Two image columns (the scene, and it mirrored) and a question column."""
    folder.mkdir(parents=True, exist_ok=True)
    images, texts, labels = _examples(split, count)
    path = folder / f"{split}_views.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["front", "side", "question", "label"])
        for i, (image, text, label) in enumerate(zip(images, texts, labels)):
            (folder / f"{split}_front_{i}.png").write_bytes(shapes.encode_png(image))
            (folder / f"{split}_side_{i}.png").write_bytes(shapes.encode_png(image[:, ::-1].copy()))
            writer.writerow([f"{split}_front_{i}.png", f"{split}_side_{i}.png", text, shapes.ANSWERS[label]])
    return path


VIEW_TOWERS = {"front": "small_cnn", "side": "small_cnn", "question": "gru"}


def _evaluate(model, dataset):
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model.evaluate(dataset, verbose=0, return_dict=True)


def _assert_written(result):
    for key in ("output_dir", "keras_model", "csv_log", "plot"):
        assert os.path.exists(result.paths[key]), key
    assert not os.path.exists(os.path.join(result.paths["output_dir"], run_files.BACKUP_DIR))  # removed when done


def test_train_a_built_model_on_datasets(tmp_path, capsys):
    words = list(mmzoo.adapt_vocabulary(_examples("train", 48)[1]))
    model = mmzoo.build_model(RECIPE, class_names=list(shapes.ANSWERS), vocabulary=words, image_size=IMAGE_SIZE)
    train, val, test = _dataset("train", 48), _dataset("validation", 16), _dataset("test", 32)
    result = mmzoo.train(model, train, validation_data=val, test_data=test, epochs=2, learning_rate=3e-3,
                         schedule="cosine", output_dir=tmp_path / "run", export_dir=tmp_path / "export", verbose=0)
    assert isinstance(result, TrainResult) and result.model is model and result.is_chief
    _assert_written(result)
    assert os.path.isfile(os.path.join(result.paths["export"], "saved_model.pb"))
    assert [row["epoch"] for row in result.history] == [0, 1] and "val_accuracy" in result.history[0]
    evaluated = _evaluate(model, test)
    assert result.test_metrics["accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-6)
    assert result.test_metrics["loss"] == pytest.approx(evaluated["loss"], rel=1e-5)
    out = capsys.readouterr().out
    assert f"Training {RECIPE} on a tf.data.Dataset" in out and "Test accuracy: " in out and "Done in " in out


def test_train_a_recipe_on_a_csv_file(tmp_path, capsys):
    train_csv, val_csv = _write_csv(tmp_path / "data", "train", 48), _write_csv(tmp_path / "data", "validation", 16)
    # The class names given for the model fix the files' label ids (48 examples do not have every answer).
    result = mmzoo.train(RECIPE, train_csv, validation_data=val_csv, epochs=1, batch_size=16,
                         model_options={"class_names": list(shapes.ANSWERS)}, output_dir=tmp_path / "run",
                         export_dir=None, verbose=0, quiet=True)
    assert capsys.readouterr().out == ""  # quiet: no messages, and no progress bars at verbose=0
    _assert_written(result)
    assert result.paths["export"] is None and result.paths["object_weights"] is None
    reloaded = mmzoo.load_model(result.paths["keras_model"])
    assert reloaded.image_size == IMAGE_SIZE  # the images' own size: no image_size given
    val = mmzoo.data.from_csv(val_csv, batch_size=16, class_names=reloaded.class_names)
    evaluated = _evaluate(reloaded, val)  # the test data defaults to the validation file
    assert result.test_metrics["accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-6)
    assert result.test_metrics["loss"] == pytest.approx(evaluated["loss"], rel=1e-5)


def test_train_a_recipe_with_a_tower_per_column(tmp_path):
    """Several image and text columns, one tower each: the recipe gives the fusion and widths; every file is read
    with the same columns."""
    data = tmp_path / "data"
    train_csv, val_csv = _write_views_csv(data, "train", 16), _write_views_csv(data, "validation", 8)
    columns = dict(image_column=["front", "side"], text_column="question")
    result = mmzoo.train(RECIPE, train_csv, validation_data=val_csv, **columns, epochs=1, batch_size=8,
                         model_options={"towers": VIEW_TOWERS, "class_names": list(shapes.ANSWERS)},
                         output_dir=tmp_path / "run", export_dir=tmp_path / "export", verbose=0, quiet=True)
    model = result.model
    assert {key: m.tower for key, m in model.modalities.items()} == VIEW_TOWERS
    assert model.get_config()["fusion"] == "concat" and model.get_config()["text_units"] == 64  # the recipe's
    val = mmzoo.data.from_csv(val_csv, **columns, batch_size=8, class_names=model.class_names)
    assert result.test_metrics["accuracy"] == pytest.approx(_evaluate(model, val)["accuracy"], abs=1e-6)
    assert set(mmzoo.load_exported(result.paths["export"]).input_names()) == set(VIEW_TOWERS)
    with pytest.raises(OptionError, match=r"^model_options\['towers'\]=.*\(no tower for side\)$"):
        mmzoo.train(RECIPE, train_csv, **columns, model_options={"towers": {"front": "small_cnn", "question": "gru"}},
                    output_dir=tmp_path / "bad", verbose=0, quiet=True)
    # One column each: the inputs are "image" and "text", which towers named after the columns do not match.
    with pytest.raises(OptionError, match="one image and one text column are the inputs 'image' and 'text'"):
        mmzoo.train(RECIPE, train_csv, image_column="front", text_column="question",
                    model_options={"towers": {"front": "small_cnn", "question": "gru"}},
                    output_dir=tmp_path / "bad", verbose=0, quiet=True)


def test_train_on_a_dataset_of_named_inputs(tmp_path):
    """The image size and the vocabulary are read from whatever the image and text features are called."""
    images, texts, labels = _examples("train", 16)
    ds = tf.data.Dataset.from_tensor_slices(({"front": images, "question": texts}, labels)).batch(8)
    towers = {"front": "small_cnn", "question": "gru"}
    result = mmzoo.train(RECIPE, ds, epochs=1, model_options={"towers": towers, "class_names": list(shapes.ANSWERS)},
                         output_dir=tmp_path / "run", verbose=0, quiet=True)
    assert result.model.image_size == IMAGE_SIZE
    assert set(result.model.vectorizers["question"].get_vocabulary()) >= set(" ".join(texts).replace("?", "").split())
    with pytest.raises(OptionError, match=r"^model=.*takes image \(image\), text \(text\); the data has front, quest"):
        mmzoo.train(RECIPE, ds, model_options={"class_names": list(shapes.ANSWERS)}, output_dir=tmp_path / "bad",
                    verbose=0, quiet=True)


def test_own_towers_and_fusion_adjust_the_recipes_defaults():
    towers = {"front": "small_cnn", "question": "gru"}
    assert recipe_overrides(RECIPE, {"towers": towers}) == {"towers": towers, "image_tower": None, "text_tower": None}
    # The glimpse recipe's options are its fusion's: another fusion goes without them.
    assert recipe_overrides("coord_cnn_gru_glimpse", {"fusion": "concat"}) == {
        "fusion": "concat", "fusion_options": None, "text_token_embeddings": False}
    # One tower has nothing to fuse.
    assert recipe_overrides("coord_cnn_gru_glimpse", {"towers": {"text": "gru"}})["fusion"] is None
    assert recipe_overrides("coord_cnn_gru_glimpse", {"dropout": 0.2}) == {"dropout": 0.2}


class _StopAfterEpoch(keras.callbacks.Callback):
    """Stands in for a kill: raises after epoch `epoch`'s backup was written."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class _CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


@pytest.mark.parametrize("stopped_after, batches_left", [(0, 3), (1, 0)], ids=["one_epoch_left", "all_done"])
def test_a_second_call_resumes_from_the_backup(tmp_path, capsys, stopped_after, batches_left):
    def run(callback):
        return mmzoo.train(RECIPE, _dataset("train", 48), test_data=_dataset("test", 16), epochs=2,
                           model_options={"class_names": list(shapes.ANSWERS)}, output_dir=tmp_path / "run",
                           callbacks=[callback], verbose=0)

    with pytest.raises(KeyboardInterrupt):
        run(_StopAfterEpoch(stopped_after))
    backup = tmp_path / "run" / run_files.BACKUP_DIR
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == stopped_after + 1
    capsys.readouterr()
    counter = _CountBatches()
    result = run(counter)
    out = capsys.readouterr().out
    assert counter.batches == batches_left  # nothing trained again
    if batches_left:
        assert f"Resuming from the backup in {backup}: epoch 2 of 2." in out
    else:
        assert "Resuming: all 2 epochs were already completed; finishing the run." in out
    assert [row["epoch"] for row in result.history] == [0, 1]  # every epoch once, the first run's kept
    assert result.test_metrics is not None and not backup.exists()


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"epochs": 0}, "epochs=0: expected 'auto' or a positive integer"),
        ({"batch_size": 2.5}, "batch_size=2.5: expected a positive integer"),
        ({"learning_rate": float("nan")}, "learning_rate=nan: expected a positive number"),
        ({"schedule": "step"}, "schedule='step': expected one of cosine, constant"),
        ({"verbose": 3}, "verbose=3: expected 0"),
        ({"object_epochs": -1}, "object_epochs=-1: expected a non-negative integer"),
        ({"strategy": "tpu"}, "strategy='tpu': expected one of default, mirrored, multiworker"),
        ({"data": "missing.csv"}, "data='missing.csv': file not found"),
        ({"validation_data": "val.csv"}, "validation_data='val.csv': goes with .csv/.jsonl training data"),
        ({"init": "model.h5"}, "init='model.h5': expected a .keras file"),
        ({"image_column": ["front", "side"]}, "image_column=['front', 'side']: goes with .csv/.jsonl data"),
        ({"text_column": 3}, "text_column=3: expected a column name, a list of column names or None"),
        ({"model": "nope"}, "Unknown recipe 'nope'"),
        ({"model": 3}, "model=3: expected a recipe name"),
    ],
)
def test_a_bad_option_is_a_one_line_value_error_naming_it(tmp_path, options, expected):
    arguments = {"model": RECIPE, "data": "mmzoo_shapes/vqa", "output_dir": tmp_path, **options}
    with pytest.raises(ValueError) as error:
        mmzoo.train(arguments.pop("model"), arguments.pop("data"), **arguments)
    message = str(error.value)
    assert expected in message and "\n" not in message


def test_object_pretraining_where_impossible_says_why(tmp_path):
    with pytest.raises(OptionError, match=r"^object_epochs=2: object pretraining is not possible here: a tf.data"):
        mmzoo.train(RECIPE, _dataset("train", 16), object_epochs=2, model_options={"class_names": list(shapes.ANSWERS)},
                    output_dir=tmp_path, verbose=0, quiet=True)


def test_make_strategy_and_worker():
    strategy, worker = distribute.make_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert worker == distribute.Worker() and worker.is_chief and worker.output_dir("runs/x") == "runs/x"
    assert not distribute.is_multi_worker(strategy)
    other = distribute.Worker("multiworker", is_chief=False, task_type="worker", task_id=1, num_workers=2)
    assert other.output_dir("runs/x") == os.path.join("runs/x", "workertemp_1")
    assert other.description == "worker 1 of a 2-worker cluster"
    sharded = distribute.shard_by_batch(tf.data.Dataset.range(4))
    assert sharded.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_read_tf_config(monkeypatch):
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert distribute.read_tf_config() == (cluster, "worker", 1)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON"):
        distribute.read_tf_config()


def test_a_backup_cut_short_by_a_kill_falls_back_to_its_previous_copy(tmp_path):
    import h5py

    backup = tmp_path / "backup"
    backup.mkdir()
    with h5py.File(backup / "latest.weights.h5.bkp", "w") as f:
        f["x"] = np.zeros(3)
    (backup / "training_metadata.json.bkp").write_text('{"epoch": 3}')
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n")  # a kill while writing
    (backup / "training_metadata.json").write_text('{"epo')
    assert run_files.resume_epoch(str(backup)) == 3
    assert json.loads((backup / "training_metadata.json").read_text()) == {"epoch": 3}
    (backup / "latest.weights.h5.bkp").write_bytes(b"")
    (backup / "latest.weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="is damaged and has no usable previous copy"):
        run_files.resume_epoch(str(backup))
    assert run_files.resume_epoch(str(tmp_path / "none")) == 0


def test_the_csv_log_keeps_the_epochs_before_the_resumed_one(tmp_path):
    path = tmp_path / run_files.CSV_LOG
    path.write_text("epoch,loss\n0,2.0\n1,1.5\n2,1.0\n")
    run_files.trim_csv_log(str(path), 2)
    assert run_files.read_csv_log(str(path)) == [{"epoch": 0, "loss": 2.0}, {"epoch": 1, "loss": 1.5}]
    run_files.trim_csv_log(str(path), 0)
    assert not path.exists()


def test_an_unbatched_dataset_is_a_one_line_error(tmp_path):
    images, texts, labels = _examples("train", 4)
    unbatched = tf.data.Dataset.from_tensor_slices(({"image": images, "text": texts}, labels))
    with pytest.raises(OptionError, match=r"^data=.*expected batches of \(features dict, label\)") as error:
        mmzoo.train(RECIPE, unbatched, epochs=1, output_dir=tmp_path, quiet=True)
    assert "\n" not in str(error.value)


def test_image_inputs_of_two_sizes_train_on_data_of_one_size(tmp_path):
    """Each image input is resized to its own size in the input pipeline, as the export resizes it."""
    images, texts, labels = _examples("train", 16)
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"front": images, "side": images[:, ::-1], "question": texts}, labels)).batch(8)
    towers = {"front": "small_cnn", "side": {"tower": "small_cnn", "image_size": 16}, "question": "gru"}
    model = mmzoo.build_classifier(towers=towers, fusion="concat", num_classes=len(shapes.ANSWERS), texts=texts,
                                   image_size=IMAGE_SIZE, sequence_length=8, embedding_dim=8, text_units=8,
                                   fusion_units=8)
    result = mmzoo.train(model, dataset, validation_data=dataset, epochs=1, output_dir=tmp_path / "run",
                         export_dir=tmp_path / "export", quiet=True, verbose=0)
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0
    features = next(iter(dataset))[0]
    fed = model.preprocess_inputs(features)
    assert fed["front"].shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3) and fed["side"].shape[1:] == (16, 16, 3)
    served = mmzoo.load_exported(result.paths["export"])({k: v.numpy() for k, v in features.items()})
    logits = model.backbone(fed, training=False)
    np.testing.assert_allclose(served["probabilities"], tf.nn.softmax(logits).numpy(), atol=1e-5)
