"""The files of a training run's output folder: their names, the backup check and repair done before resuming,
the per-epoch CSV log, and the plot of the training curves.

Only the standard library at import time (h5py and matplotlib are imported when used), so the command line can
name these files without importing TensorFlow.
"""

import csv
import json
import os

# What `mmzoo.train` writes under its output folder.
BACKUP_DIR = "backup"
LOG_DIR = "logs"
CSV_LOG = "training_log.csv"
PLOT = "training_curves.png"
KERAS_MODEL = "model.keras"
OBJECT_WEIGHTS = "image_tower_objects.weights.h5"

__all__ = [
    "BACKUP_DIR",
    "CSV_LOG",
    "KERAS_MODEL",
    "LOG_DIR",
    "OBJECT_WEIGHTS",
    "PLOT",
    "has_nan_loss",
    "plot_training_curves",
    "read_csv_log",
    "readable_h5",
    "resume_epoch",
    "trim_csv_log",
]


def resume_epoch(backup_dir):
    """The epoch `keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True)` will continue from (0: a
    fresh start), after choosing the files it will load.

    Mirrors its fallback to the previous backup when the latest weights are unreadable (the process was killed
    while writing them), and repairs a metadata file cut short by a kill, which Keras itself would fail on.
    Raises ValueError when neither copy is usable.
    """
    weights = os.path.join(backup_dir, "latest.weights.h5")
    metadata = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(weights) and not os.path.exists(metadata):
        return 0
    epoch = _read_epoch(metadata)
    if not readable_h5(weights) or epoch is None:
        if readable_h5(weights + ".bkp") and _read_epoch(metadata + ".bkp") is not None:
            import shutil

            shutil.copyfile(weights + ".bkp", weights)
            shutil.copyfile(metadata + ".bkp", metadata)
            return _read_epoch(metadata)
        raise ValueError(
            f"the training backup in {backup_dir} is damaged and has no usable previous copy; "
            "delete that directory to start training afresh"
        )
    return epoch


def _read_epoch(path):
    try:
        with open(path) as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def readable_h5(path):
    """Whether `path` is an HDF5 file whose every group, dataset and attribute reads back. A kill while writing
    leaves one that does not open; other damage can leave the header intact and break a single object, which
    Keras would only meet while loading (a KeyError or RuntimeError)."""
    if not os.path.isfile(path):
        return False
    try:
        import h5py

        with h5py.File(path, "r") as f:
            _read_all(f)
            f.visititems(lambda name, item: _read_all(item))
        return True
    except Exception:  # noqa: BLE001  (h5py raises OSError, KeyError, RuntimeError, ... on damaged files)
        return False


def _read_all(item):
    """Read an HDF5 object's attributes and, for a dataset, its values; None, so `visititems` goes on."""
    dict(item.attrs)
    if hasattr(item, "dtype"):  # a dataset
        item[()]
    return None


def trim_csv_log(path, resume_epoch):
    """Keep the rows of epochs before `resume_epoch` (on a fresh start, none: the file is removed).

    `keras.callbacks.CSVLogger` writes an epoch's row before `BackupAndRestore` backs it up: a kill in between
    repeats that epoch on resume, and its earlier row is dropped here instead of appearing twice.
    """
    if resume_epoch == 0:
        if os.path.exists(path):
            os.remove(path)
        return
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, kept = rows[0], []
    for row in rows[1:]:
        if len(row) == len(header) and row[0].isdigit() and int(row[0]) < resume_epoch:
            kept.append(row)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *kept])


def read_csv_log(path):
    """The CSV log as a list of ``{column: float}`` (``"epoch"``: int, from 0), one per epoch (the last row of any
    repeated epoch)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        by_epoch = {}
        for row in csv.DictReader(f):
            try:
                epoch = int(row["epoch"])
            except (KeyError, ValueError, TypeError):
                continue
            by_epoch[epoch] = {key: _number(value) for key, value in row.items() if _number(value) is not None}
            by_epoch[epoch]["epoch"] = epoch
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _number(value):
    """A CSV cell as a float; None for an empty one or CSVLogger's "NA" (a validation column without validation)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def has_nan_loss(log):
    """Whether any epoch of `log` (from `read_csv_log`) has a NaN loss."""
    return any(row.get("loss") is not None and row["loss"] != row["loss"] for row in log)


def plot_training_curves(log, path, *, title):
    """PNG of loss and accuracy per epoch (train and validation) from `log`; the path, or None without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [int(row["epoch"]) + 1 for row in log]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [row.get(prefix + metric) for row in log]
            if any(value is not None for value in values):
                axis.plot(epochs, values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
