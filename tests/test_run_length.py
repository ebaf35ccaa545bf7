"""How long a run trains (`mmzoo.run_length`): epochs for the data's size, early stopping with the best weights
restored, the time estimate after the first epoch; and `mmzoo.train` using them on a CSV with rows held out."""

import keras
import numpy as np
import pytest

import mmzoo
from mmzoo import run_length
from mmzoo.data import shapes
from test_training import RECIPE, _write_csv


@pytest.mark.parametrize("num_examples, epochs", [
    (10_000, 25), (50_000, 5), (60_000, 4), (1_000_000, 3), (2_000, 50), (100, 50), (None, 10), (0, 10)])
def test_auto_epochs_keep_the_examples_seen_about_the_same(num_examples, epochs):
    assert run_length.auto_epochs(num_examples) == epochs


@pytest.mark.parametrize("epochs, patience", [(25, 5), (50, 10), (5, 2), (3, 2), (12, 2), (13, 3)])
def test_auto_patience_is_a_fifth_of_the_run(epochs, patience):
    assert run_length.auto_patience(epochs) == patience


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"), (4320, "1 h 12 min")])
def test_format_duration(seconds, text):
    assert run_length.format_duration(seconds) == text


@pytest.mark.parametrize("patience", [0, -1, 2.5, True, "3"])
def test_early_stopping_needs_a_positive_integer(patience):
    with pytest.raises(ValueError, match=f"patience={patience!r}"):
        run_length.early_stopping(patience)


def _tiny_model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, 32)


def test_early_stopping_stops_after_patience_epochs_without_progress():
    model = _tiny_model()  # learning rate 0: the validation accuracy never improves after the first epoch
    history = model.fit(*_data(0), validation_data=_data(1), epochs=20, verbose=0,
                        callbacks=[run_length.early_stopping(3, verbose=0)])
    assert len(history.history["loss"]) == 4


def test_the_best_epochs_weights_are_restored_when_the_run_ends():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = _tiny_model()  # learning rate 0: only the callback below changes the weights
    right = [np.array([[-1, 1], [0, 0], [0, 0], [0, 0]], "float32"), np.zeros(2, "float32")]
    model.set_weights(right)  # validation accuracy 1.0

    class Reverse(keras.callbacks.Callback):  # from the second epoch on, every answer is wrong
        def on_epoch_begin(self, epoch, logs=None):
            if epoch:
                self.model.set_weights([-w for w in right])

    history = model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0,
                        callbacks=[Reverse(), run_length.early_stopping(5, verbose=0)])
    assert history.history["val_accuracy"] == [1.0, 0.0, 0.0]
    for restored, best in zip(model.get_weights(), right):
        np.testing.assert_array_equal(restored, best)


def test_the_time_left_is_said_once_after_the_first_epoch():
    said = []
    _tiny_model().fit(*_data(0), epochs=4, verbose=0, callbacks=[run_length.RemainingTime(said.append)])
    assert len(said) == 1
    assert said[0].startswith("The first epoch took ") and "left for the other 3 epochs at most." in said[0]
    said.clear()
    _tiny_model().fit(*_data(0), epochs=1, verbose=0, callbacks=[run_length.RemainingTime(said.append)])
    assert said == []  # nothing left to estimate


def test_train_on_one_csv_holds_out_validation_rows_and_stops_early(tmp_path, capsys):
    train_csv = _write_csv(tmp_path / "data", "train", 40)
    # A learning rate too small to change any prediction: the validation accuracy cannot improve, so early
    # stopping ends the run after 1 + patience epochs.
    result = mmzoo.train(RECIPE, train_csv, epochs=10, patience=2, learning_rate=1e-12, batch_size=8,
                         model_options={"class_names": list(shapes.ANSWERS)}, output_dir=tmp_path / "run",
                         export_dir=None, verbose=0)
    out = capsys.readouterr().out
    assert len(result.history) == 3 and "val_accuracy" in result.history[0]
    assert "for 10 epochs at most (early stopping, patience 2)" in out
    assert "The first epoch took " in out and "left for the other 9 epochs at most." in out
    assert "Test accuracy: " in out and f"(validation rows: 10% of {train_csv} held out; early stopping" in out


def test_auto_epochs_and_no_early_stopping_without_validation_data(tmp_path, capsys):
    train_csv = _write_csv(tmp_path / "data", "train", 24)
    result = mmzoo.train(RECIPE, train_csv, validation_fraction=0, epochs="auto", learning_rate=1e-12,
                         batch_size=8, model_options={"class_names": list(shapes.ANSWERS)},
                         output_dir=tmp_path / "run", export_dir=None, verbose=0, callbacks=[_StopAt(2)])
    out = capsys.readouterr().out
    assert "for 50 epochs;" in out  # 24 examples: the most epochs auto_epochs gives
    assert "No validation data: early stopping is off, and all epochs run." in out
    assert len(result.history) == 3 and result.test_metrics is None


class _StopAt(keras.callbacks.Callback):
    """Ends a long run early the way Keras lets a callback do (stop_training), to keep the test short."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


@pytest.mark.parametrize("options, expected", [
    ({"epochs": "many"}, "epochs='many': expected 'auto' or a positive integer"),
    ({"patience": -1}, "patience=-1: expected 'auto', a non-negative integer"),
    ({"validation_fraction": 1.0}, "validation_fraction=1.0: expected 'auto' or a fraction in [0, 1)"),
    ({"validation_fraction": 0.2}, "validation_fraction=0.2: goes with .csv/.jsonl training data"),
])
def test_bad_run_length_options_are_named(tmp_path, options, expected):
    with pytest.raises(ValueError) as error:
        mmzoo.train(RECIPE, "mmzoo_shapes/vqa", output_dir=tmp_path, **options)
    assert expected in str(error.value) and "\n" not in str(error.value)


# === Early stopping across an interruption ===


def _dense_model(value):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.set_weights([np.full((2, 1), value, np.float32), np.zeros(1, np.float32)])
    return model


def _resumable(tmp_path, patience=2):
    return run_length.early_stopping(patience, verbose=0, csv_log=str(tmp_path / "log.csv"),
                                     best_weights=str(tmp_path / "backup" / run_length.BEST_WEIGHTS))


def test_early_stopping_carries_on_from_the_log_and_the_best_weights(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,loss,val_accuracy\n0,1.0,0.5\n1,0.8,0.8\n2,0.7,0.6\n")
    first = _resumable(tmp_path)
    first.set_model(_dense_model(1.0))  # epoch 1, the best, had these weights: the callback saved them
    first.on_train_begin()
    first.on_epoch_end(1, {"val_accuracy": 0.8})
    assert (tmp_path / "backup" / (run_length.BEST_WEIGHTS + ".json")).read_text() == '{"epoch": 1}'
    resumed, model = _resumable(tmp_path), _dense_model(3.0)  # as BackupAndRestore left it after epoch 2
    resumed.set_model(model)
    resumed.on_train_begin()
    assert (resumed.best, resumed.best_epoch, resumed.wait) == (0.8, 1, 1)
    np.testing.assert_array_equal(model.get_weights()[0], 3.0)  # training goes on from the backup
    resumed.on_epoch_end(3, {"val_accuracy": 0.7})  # a second epoch without improvement: patience 2 is spent
    assert model.stop_training and resumed.stopped_epoch == 3
    resumed.on_train_end()
    np.testing.assert_array_equal(model.get_weights()[0], 1.0)  # the best epoch's, from before the interruption


def test_early_stopping_starts_afresh_without_matching_best_weights(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,val_accuracy\n0,0.5\n1,0.8\n")
    saved = _resumable(tmp_path)
    saved.set_model(_dense_model(1.0))
    saved.on_train_begin()
    saved.on_epoch_end(0, {"val_accuracy": 0.5})  # the file holds epoch 0; the log's best is epoch 1
    fresh = _resumable(tmp_path)
    fresh.set_model(_dense_model(2.0))
    fresh.on_train_begin()
    assert (fresh.best, fresh.wait, fresh.best_weights) == (None, 0, None)
    assert not (tmp_path / "backup" / run_length.BEST_WEIGHTS).exists()
    assert isinstance(run_length.early_stopping(2), keras.callbacks.EarlyStopping)  # no files: Keras' own
