"""How long a run trains: epochs for the data's size, early stopping, and the time left after the first epoch.

A fixed number of epochs is tuned to one dataset: 25 epochs of the bundled 10,000 examples take minutes, 25 epochs of
a user's 60,000 take an hour and mostly repeat what the model already knows. `epochs="auto"` keeps the number of
examples seen about the same instead (`EXAMPLES_PER_RUN`), within `MIN_EPOCHS` and `MAX_EPOCHS`, and early stopping
on the validation accuracy ends the run when more epochs stop helping, with the best epoch's weights restored.
"""

import numbers
import time

import keras

EXAMPLES_PER_RUN = 250_000  # 25 epochs of 10,000 examples: the run length the main job was measured with
MIN_EPOCHS, MAX_EPOCHS = 3, 50
UNKNOWN_SIZE_EPOCHS = 10  # data of unknown size (a tf.data.Dataset without a known cardinality)
MONITOR = "val_accuracy"  # what early stopping watches: the quantity the run reports

__all__ = ["EXAMPLES_PER_RUN", "MAX_EPOCHS", "MIN_EPOCHS", "MONITOR", "RemainingTime", "auto_epochs",
           "auto_patience", "early_stopping", "format_duration"]


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


def early_stopping(patience, verbose=1):
    """Keras' `EarlyStopping` on `MONITOR`, the best epoch's weights restored at the end (also when the run does
    not stop early: the last epoch is not always the best)."""
    if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1:
        raise ValueError(f"`patience` must be a positive integer. Received: patience={patience!r}")
    return keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=int(patience),
                                         restore_best_weights=True, verbose=verbose)


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
