"""How a failed command reports: one line on stderr naming the flag, the value and what was expected."""

import os
import re
import sys

from mmzoo.training import OptionError


class UsageError(ValueError):
    """A problem with the command line itself; reported in one line, exit status 2."""


# Library argument names whose flag is not the name with dashes.
_FLAGS = {"data": "--dataset", "validation_data": "--val-data", "validation_split": "--val-split",
          "validation_fraction": "--val-fraction",
          "export_dir": "--export", "model": "--recipe", "model_options['towers']": "--towers"}


def one_line(error):
    """The error's message in one line; a library option named as its command-line flag."""
    if isinstance(error, OptionError):
        flag = _FLAGS.get(error.argument, "--" + error.argument.replace("_", "-"))
        shown = flag if error.value is True else f"{flag} {_as_flag_value(error.value)}"  # a switch: the flag alone
        return " ".join(f"{shown}: {error.expected}".split())
    if isinstance(error, OSError) and error.strerror and error.filename:  # not "[Errno 13] ...: '/x'"
        target = f" -> {os.fsdecode(error.filename2)}" if error.filename2 else ""
        return f"{os.fsdecode(error.filename)}{target}: {error.strerror}"
    return _file_flags(" ".join(str(error).split())) or type(error).__name__


def _file_flags(message):
    """The own-data loaders' advice (skip_bad_rows=True, encoding='cp1252') as the flags that give it."""
    message = message.replace("skip_bad_rows=True", "--skip-bad-rows")
    return re.sub(r"\bencoding=(?:'([^']*)'|(\.\.\.))", lambda m: f"--encoding {m.group(1) or m.group(2)}", message)


def _as_flag_value(value):
    """A library option's value as its flag takes it: a path as is, lists and dicts comma-separated."""
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, dict):
        return ",".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "''"
    return value


def is_tensorflow_argument_error(error):
    tensorflow = sys.modules.get("tensorflow")  # never imported here: if TensorFlow did not run, nothing failed in it
    return tensorflow is not None and isinstance(error, tensorflow.errors.InvalidArgumentError)
