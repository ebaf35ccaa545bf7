"""How long a run trains: epochs for the data's size, early stopping, and the time left after the first epoch.

A fixed number of epochs is tuned to one dataset: 25 epochs of the bundled 10,000 examples take minutes, 25 epochs of
a user's 60,000 take an hour and mostly repeat what the model already knows. `epochs="auto"` keeps the number of
examples seen about the same instead (`EXAMPLES_PER_RUN`), within `MIN_EPOCHS` and `MAX_EPOCHS`, and early stopping
on the validation accuracy ends the run when more epochs stop helping, with the best epoch's weights restored.
"""

import json
import numbers
import os
import time

import keras

EXAMPLES_PER_RUN = 250_000  # 25 epochs of 10,000 examples: the run length the main job was measured with
MIN_EPOCHS, MAX_EPOCHS = 3, 50
UNKNOWN_SIZE_EPOCHS = 10  # data of unknown size (a tf.data.Dataset without a known cardinality)
MONITOR = "val_accuracy"  # what early stopping watches: the quantity the run reports
BEST_WEIGHTS = "best_epoch.weights.h5"  # where ResumableEarlyStopping keeps the best epoch's weights

__all__ = ["EXAMPLES_PER_RUN", "MAX_EPOCHS", "MIN_EPOCHS", "MONITOR", "RemainingTime", "ResumableEarlyStopping",
           "auto_epochs", "auto_patience", "early_stopping", "format_duration"]


def auto_epochs(num_examples):
    """Epochs that show the model about `EXAMPLES_PER_RUN` examples: 25 for 10,000 examples, 5 for 50,000, and
    never fewer than `MIN_EPOCHS` nor more than `MAX_EPOCHS` (early stopping ends small datasets' runs sooner)."""
    if not num_examples:
        return UNKNOWN_SIZE_EPOCHS
    return max(MIN_EPOCHS, min(MAX_EPOCHS, round(EXAMPLES_PER_RUN / num_examples)))


def auto_patience(epochs):
    """Epochs without a better validation accuracy before stopping: a fifth of the run, at least 2. Short runs
    stop only after a clear plateau; long ones do not wait through a quarter of their length."""
    return max(2, round(epochs / 5))


def early_stopping(patience, verbose=1, *, csv_log=None, best_weights=None):
    """Keras' `EarlyStopping` on `MONITOR`, the best epoch's weights restored at the end (also when the run does
    not stop early: the last epoch is not always the best). With `csv_log` and `best_weights` (a .weights.h5
    path) it carries on across an interruption: `ResumableEarlyStopping`."""
    if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
        raise ValueError(f"`patience` must be a positive integer. Received: patience={patience!r}")
    options = dict(monitor=MONITOR, mode="max", patience=int(patience), restore_best_weights=True, verbose=verbose)
    if csv_log is None or best_weights is None:
        return keras.callbacks.EarlyStopping(**options)
    return ResumableEarlyStopping(csv_log, best_weights, **options)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that a resumed run continues rather than restarts.

    Keras' callback starts every `fit` afresh: after an interruption, the resumed run would wait a whole new
    patience and could only restore the best of the epochs after the resume, although the best may have come
    before. Here the best value, its epoch and the epochs waited since are read back from the run's CSV log (the
    rows of the epochs before the resumed one), and the best epoch's weights from `best_weights_path`, written
    whenever the monitored value improves. Without both (a fresh start, or a file lost), it starts afresh.
    """

    def __init__(self, csv_log, best_weights_path, **kwargs):
        super().__init__(**kwargs)
        self.csv_log, self.best_weights_path = csv_log, best_weights_path

    def on_train_begin(self, logs=None):
        from mmzoo.run_files import read_csv_log

        super().on_train_begin(logs)
        rows = [row for row in read_csv_log(self.csv_log) if self.monitor in row]
        values = [row[self.monitor] for row in rows]
        best = values.index(max(values) if self.mode != "min" else min(values)) if rows else None  # the first
        if best is None or self._saved_epoch() != rows[best]["epoch"]:
            # A fresh start, an earlier run's file, or a kill between the log's row and the weights: start afresh.
            for path in (self.best_weights_path, self.best_weights_path + ".json"):
                if os.path.exists(path):
                    os.remove(path)
            return
        self.best, self.best_epoch, self.wait = values[best], rows[best]["epoch"], len(rows) - 1 - best
        current = self.model.get_weights()  # as BackupAndRestore restored them
        self.model.load_weights(self.best_weights_path)
        self.best_weights = self.model.get_weights()
        self.model.set_weights(current)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.best_epoch == epoch and self.wait == 0:  # improved at this epoch
            os.makedirs(os.path.dirname(self.best_weights_path) or ".", exist_ok=True)
            self.model.save_weights(self.best_weights_path)
            with open(self.best_weights_path + ".json", "w") as f:  # written last: the weights are complete
                json.dump({"epoch": int(epoch)}, f)

    def _saved_epoch(self):
        """The epoch whose weights `best_weights_path` holds, or None."""
        try:
            with open(self.best_weights_path + ".json") as f:
                return int(json.load(f)["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


def format_duration(seconds):
    """'42 s', '3 min 05 s', '1 h 12 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class RemainingTime(keras.callbacks.Callback):
    """Says, once the first epoch of this `fit` is over, how long the remaining epochs will take at its pace.

    Printed when the next epoch begins, so that the line comes after the progress bar's finished line rather than
    in the middle of it (Keras' progress bar is the last callback to see an epoch end). The first epoch also
    traces the graphs, so the estimate errs long; early stopping may end the run sooner.
    """

    def __init__(self, print_fn=print):
        super().__init__()
        self.print_fn = print_fn

    def on_train_begin(self, logs=None):
        self._started, self._said = None, False

    def on_epoch_begin(self, epoch, logs=None):
        if self._started is None:
            self._started = time.perf_counter()
            return
        if self._said:
            return
        self._said = True
        took = time.perf_counter() - self._started
        left = self.params.get("epochs", epoch) - epoch
        if left > 0:
            self.print_fn(f"The first epoch took {format_duration(took)}: about {format_duration(took * left)} left "
                          f"for the other {left} epoch{'s' if left > 1 else ''} at most.")
