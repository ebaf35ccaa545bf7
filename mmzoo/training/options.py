"""`mmzoo.train`'s options checked before any work: a bad one is an `OptionError` naming it, the value received
and what was expected."""

import codecs
import math
import os

from mmzoo.schedules import SCHEDULES
from mmzoo.training.errors import OptionError


OWN_DATA_SUFFIXES = (".csv", ".jsonl")


DEFAULT_COLUMNS = {"image_column": "image", "text_column": "text"}  # the own-data loaders' defaults


DEFAULT_AUDIO_COLUMN = "audio"  # the loaders' default: the column "audio", or the columns of .wav paths, if any


AUTO_VALIDATION_FRACTION = 0.1  # of a .csv/.jsonl training file held out when there is no validation file


def _positive_int(argument, value, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(argument, value, "expected a " + ("positive" if minimum else "non-negative") + " integer")


def check_options(o):
    epochs, patience = o["epochs"], o["patience"]
    if epochs != "auto" and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise OptionError("epochs", epochs, "expected 'auto' or a positive integer")
    _positive_int("batch_size", o["batch_size"])
    if patience not in ("auto", None) and (isinstance(patience, bool) or not isinstance(patience, int)
                                           or patience < 0):
        raise OptionError("patience", patience, "expected 'auto', a non-negative integer (0: no early stopping) "
                          "or None")
    fraction = o["validation_fraction"]
    if fraction != "auto" and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                               or not 0 <= fraction < 1):
        raise OptionError("validation_fraction", fraction, "expected 'auto' or a fraction in [0, 1)")
    if o["image_size"] is not None:
        _positive_int("image_size", o["image_size"])
    rate = o["learning_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
        raise OptionError("learning_rate", rate, "expected a positive number")
    if o["schedule"] not in SCHEDULES:
        raise OptionError("schedule", o["schedule"], f"expected one of {', '.join(SCHEDULES)}")
    if o["seed"] is not None and (isinstance(o["seed"], bool) or not isinstance(o["seed"], int)):
        raise OptionError("seed", o["seed"], "expected an integer or None")
    if o["object_epochs"] != "auto":
        _positive_int("object_epochs", o["object_epochs"], minimum=0)
    if o["verbose"] not in (0, 1, 2):
        raise OptionError("verbose", o["verbose"], "expected 0 (silent), 1 (progress bar) or 2 (one line per epoch)")
    for argument in ("output_dir", "export_dir", "init", "data_dir"):
        if o[argument] is not None and not isinstance(o[argument], (str, os.PathLike)):
            raise OptionError(argument, o[argument], "expected a path or None")
    if o["model_options"] is not None and not isinstance(o["model_options"], dict):
        raise OptionError("model_options", o["model_options"], "expected a dict of mmzoo.build_model arguments or None")
    check_columns(o)
    _check_file_options(o)
    if not is_file_data(o["data"]) and fraction not in ("auto", 0):
        raise OptionError("validation_fraction", fraction, "goes with .csv/.jsonl training data (TFDS data has "
                          "validation splits, tf.data datasets take validation_data)")
    if is_file_data(o["data"]) and o["validation_data"] is not None and fraction not in ("auto", 0):
        raise OptionError("validation_fraction", fraction, "goes without validation_data: rows are held out of the "
                          "training file only when there is no validation file")
    if isinstance(o["data"], (str, os.PathLike)) and not is_file_data(o["data"]):
        for argument in ("validation_data", "test_data"):
            if o[argument] is not None:
                raise OptionError(argument, o[argument], f"goes with .csv/.jsonl training data; {o['data']!r} is a "
                                  "TFDS name (choose its splits with validation_split and test_split)")
    for argument in ("data", "validation_data", "test_data", "init"):
        _check_file(argument, o[argument])


def check_columns(o):
    for argument, default in DEFAULT_COLUMNS.items():
        value = o[argument]
        names = [value] if isinstance(value, str) else value
        if value is not None and not (isinstance(names, (list, tuple))
                                      and all(isinstance(name, str) and name for name in names)):
            raise OptionError(argument, value, "expected a column name, a list of column names or None")
        if value != default and not is_file_data(o["data"]):
            raise OptionError(argument, value, "goes with .csv/.jsonl data; the features of TFDS data and of "
                              "tf.data datasets are named already")
    value = o["audio_column"]
    names = [value] if isinstance(value, str) else value
    if value is not None and not (isinstance(names, (list, tuple)) and all(isinstance(n, str) and n for n in names)):
        raise OptionError("audio_column", value, "expected a column name, a list of column names or None")
    if value not in (DEFAULT_AUDIO_COLUMN, None) and not is_file_data(o["data"]):  # None: no audio column
        raise OptionError("audio_column", value, "goes with .csv/.jsonl data; the features of TFDS data and of "
                          "tf.data datasets are named already")


def _check_file_options(o):
    if not isinstance(o["skip_bad_rows"], bool):
        raise OptionError("skip_bad_rows", o["skip_bad_rows"], "expected True or False")
    if not isinstance(o["encoding"], str) or not o["encoding"]:
        raise OptionError("encoding", o["encoding"], "expected the name of a text encoding, e.g. 'utf-8' or 'cp1252'")
    try:
        codecs.lookup(o["encoding"])
    except LookupError:
        raise OptionError("encoding", o["encoding"], "unknown text encoding; e.g. 'utf-8', 'cp1252', 'latin-1' or "
                          "'utf-16'") from None
    check_file_only(o["data"], skip_bad_rows=o["skip_bad_rows"], encoding=o["encoding"])


def check_file_only(data, **options):
    """Options of the .csv/.jsonl loaders are refused for other data rather than ignored."""
    if not is_file_data(data):
        for argument, default in (("skip_bad_rows", False), ("encoding", "utf-8")):
            if options[argument] != default:
                raise OptionError(argument, options[argument], "goes with .csv/.jsonl data")


def _check_file(argument, value):
    """Files named by an option exist: one line now, not a traceback after data was loaded."""
    if not isinstance(value, (str, os.PathLike)) or (argument == "data" and not is_file_data(value)):
        return
    if argument == "init" and not str(value).endswith(".keras"):
        raise OptionError(argument, value, "expected a .keras file (as `mmzoo pretrain` saves)")
    if not os.path.isfile(value):
        raise OptionError(argument, value, "file not found")


def is_file_data(data):
    return isinstance(data, (str, os.PathLike)) and str(data).lower().endswith(OWN_DATA_SUFFIXES)
