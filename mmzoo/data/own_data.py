"""Your own image, text and audio data from a CSV or JSONL file, as the same datasets `mmzoo.data.load` gives.

    train, info = mmzoo.data.from_csv("data/train.csv", image_size=64, shuffle=True, with_info=True)
    val = mmzoo.data.from_csv("data/val.csv", image_size=64, class_names=info.class_names)
    views = mmzoo.data.from_csv("data/views.csv", image_column=["front", "side"], text_column="question")
    speech = mmzoo.data.from_csv("data/speech.csv", audio_column="audio", sample_rate=16000)

Each row names image files (relative to `image_root`, or to the file's own folder), WAV files (relative to
`audio_root`, or to the file's folder), texts and a label. All rows are checked in Python before any tf.data
runs: a missing or undecodable image or WAV file, a missing value, or a label outside `class_names` raises a
`DataError` naming the file, the row and the column (or, with ``skip_bad_rows=True``, the row is left out and
counted). Nothing bad reaches TensorFlow's graph. Images are decoded and resized by `mmzoo.images`, as an export
decodes and resizes what it serves; WAV files are read, mixed down, resampled and padded by `mmzoo.data.wav`.
"""

from __future__ import annotations

import codecs
import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import json
import os
import re
import threading
import warnings
from typing import Sequence

import numpy as np
import tensorflow as tf

from mmzoo.data.info import DataInfo, _as_size, adapt_vocabulary
from mmzoo.data.pipeline import AUTOTUNE, finish
from mmzoo.data.wav import WavError, fit_length, read_clip, resampled_length, wav_info
from mmzoo.images import SUPPORTED, ImageFileError, check_image_file, decode_image, read_image_file, resize_image

__all__ = ["DataError", "from_csv", "from_jsonl"]

# The longest value (in characters) a row may hold; a longer one makes its row bad. Far above any text a model
# reads: a value this long is more likely an unclosed quote that swallowed the rest of a CSV file.
MAX_FIELD_CHARS = 16 * 2**20

_UTF8_NAMES = ("utf-8", "utf-8-sig")  # codecs.lookup(...).name of the spellings of UTF-8
_FOREIGN_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                 (b"\xfe\xff", "utf-16"))
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_BYTE = re.compile(r"[\udc80-\udcff]")  # what errors="surrogateescape" makes of an undecodable byte


class DataError(ValueError):
    """Bad input data. `path` is the data file; `row` the 1-based data row and `column` the column at fault
    (``None`` when the whole file, or the whole row, is)."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, row: int | None = None,
                 column: str | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.row = row
        self.column = column


class SkippedRowsWarning(UserWarning):
    """Rows were left out (``skip_bad_rows=True``); the message says how many, of which file, and why."""


class _BadRow(Exception):
    """A row's problem; its message names the column at fault, which `column` holds for `DataError.column`."""

    def __init__(self, reason: str, column: str | None = None):
        super().__init__(reason)
        self.column = column


def from_csv(
    path: str | os.PathLike,
    *,
    image_column: str | Sequence[str] | None = "image",
    text_column: str | Sequence[str] | None = "text",
    label_column: str | None = "label",
    audio_column: str | Sequence[str] | None = "audio",
    image_root: str | os.PathLike | None = None,
    audio_root: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
    sample_rate: int | None = None,
    num_samples: int | None = None,
    resample: bool = True,
    batch_size: int | None = 32,
    shuffle: bool = False,
    seed: int | None = None,
    cache: bool | str = "auto",
    skip_bad_rows: bool = False,
    check_images: bool = True,
    max_tokens: int | None = None,
    drop_remainder: bool = False,
    delimiter: str = ",",
    encoding: str = "utf-8",
    validation_split: float = 0.0,
    subset: str | None = None,
    with_info: bool = False,
):
    """A batched ``tf.data.Dataset`` of ``({"image", "text", "audio"}, label)`` from a CSV file with a header row.

    Args:
        path: the CSV file.
        image_column, text_column: the column (a name) or columns (a list of names) holding image paths and
            texts; ``None`` or ``[]`` for none, as long as there is one input column. Given as one name each,
            the features are keyed ``"image"`` and ``"text"`` (the inputs of a two-input model) whatever the
            columns are called; once either is a list, every feature is keyed by its column name, e.g.
            ``image_column=["front", "side"], text_column="question"`` yields ``{"front", "side", "question"}``
            for a model with those inputs.
        label_column: the label's column; ``None`` for unlabelled data (the dataset then yields the features
            alone).
        audio_column: the column or columns holding paths of WAV files, keyed like image columns (one name:
            ``"audio"``; a list: by column name). The default reads the column ``"audio"`` if the file has one,
            else the columns whose value in the first row ends in ``.wav``, if any; ``None`` reads none. When
            the file has audio, the default `image_column` and `text_column` are read only if the file has
            them, so ``audio,label``, ``audio,text,label`` and ``image,audio,label`` files load as they are.
            Each audio feature is float32 ``(num_samples,)`` in [-1, 1]: mono (stereo is mixed down to the
            channels' mean), at `sample_rate`, cropped or zero-padded at the end.
        image_root: folder the image paths are relative to; default the CSV file's folder. Absolute paths
            are used as they are.
        audio_root: the same for the WAV file paths.
        class_names: the label names, in order. Give the training set's names when loading a validation or
            test file, so labels mean the same ids; a label outside them is an error. Default: the labels
            found in this file, sorted (numerically when all are integers).
        image_size: ``int`` or ``(height, width)`` to resize every image column to (`mmzoo.images.resize_image`).
            Default: the images' size, if all images of all image columns share one.
        sample_rate: the rate (Hz) every audio feature has. Default: the most common rate of the WAV files (the
            first one's among equally common rates).
        num_samples: the length every audio feature is cropped or zero-padded to. Default: the longest clip's
            (at `sample_rate`), so nothing is cropped.
        resample: resample a WAV file of another rate to `sample_rate` (a windowed-sinc filter,
            `mmzoo.data.wav.resample`), as it is read; ``False`` makes such a file's row bad instead.
        batch_size: examples per batch; ``None`` for unbatched examples.
        shuffle: shuffle the examples (every epoch); `seed` makes the order repeatable.
        cache: ``"auto"`` keeps decoded, resized images in memory when they take at most 2 GiB; ``True`` or
            ``False`` force it; a string caches to that file prefix (with `subset`, one prefix per subset:
            ``_training`` or ``_validation`` appended).
        skip_bad_rows: leave out bad rows — a missing or corrupt image or WAV file, a missing, undecodable or too long
            (over `MAX_FIELD_CHARS`) value, an unknown label, malformed CSV or JSON — warn
            (`SkippedRowsWarning`) with how many were skipped, and list them in ``DataInfo.skipped``. Problems
            of the whole file (no header, a missing or doubled column, a file that cannot be decoded past some
            point) are raised all the same. Default: raise.
        check_images: decode every image once up front (the check that finds corrupt files). With ``False``
            only existence is checked, and `image_size` is required.
        max_tokens: keep only the most frequent tokens in ``DataInfo.vocabulary``.
        drop_remainder: drop the last, smaller batch.
        delimiter: of the CSV file, e.g. ``";"``.
        encoding: of the file, a name Python knows (``"cp1252"``, ``"latin-1"``, ``"utf-16"``). The default
            reads UTF-8 with or without a byte-order mark (as spreadsheet programs write it). A value with bytes
            the encoding cannot decode makes its row bad.
        validation_split: the fraction of the (good) rows to hold out for validation, as in
            ``keras.utils.image_dataset_from_directory``: the rows are split at random with `seed` (None: 0), the
            same way on every call, so that ``subset="training"`` and ``subset="validation"`` never share a row.
        subset: with `validation_split`: ``"training"``, ``"validation"`` or ``"both"`` (two datasets). The
            validation rows are never shuffled; the vocabulary is the training rows' in every case, and the class
            names are those of all rows.
        with_info: also return a `DataInfo` (class names, one vocabulary of all text columns, image size, sample
            rate and clip length, the kind of every feature, number of examples, skipped rows; with `subset`,
            ``num_examples`` counts the rows returned, the training ones for ``"both"``).

    Returns:
        the dataset, or ``(dataset, DataInfo)`` when `with_info` is true; with ``subset="both"``,
        ``(training, validation)`` or ``(training, validation, DataInfo)``.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: an empty file, a missing or doubled column, a file that cannot be decoded, or (unless
            `skip_bad_rows`) a bad row.
        ValueError: column arguments that are not names, or name a column twice; an unknown `encoding`; a
            `sample_rate` or `num_samples` that is not a positive integer.
    """
    path = _existing_file(path)
    columns = _column_arguments(image_column, text_column, label_column, audio_column)
    audio = _audio_options(audio_root, sample_rate, num_samples, resample)
    header, rows = _read_csv(path, delimiter=delimiter, encoding=encoding)
    return _load(path, header, rows, columns=columns, audio=audio,
                 image_root=image_root, class_names=class_names, image_size=image_size, batch_size=batch_size,
                 shuffle=shuffle, seed=seed, cache=cache, skip_bad_rows=skip_bad_rows, check_images=check_images,
                 max_tokens=max_tokens, drop_remainder=drop_remainder, with_info=with_info,
                 holdout=_check_holdout(validation_split, subset))


def from_jsonl(
    path: str | os.PathLike,
    *,
    image_column: str | Sequence[str] | None = "image",
    text_column: str | Sequence[str] | None = "text",
    label_column: str | None = "label",
    audio_column: str | Sequence[str] | None = "audio",
    image_root: str | os.PathLike | None = None,
    audio_root: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
    sample_rate: int | None = None,
    num_samples: int | None = None,
    resample: bool = True,
    batch_size: int | None = 32,
    shuffle: bool = False,
    seed: int | None = None,
    cache: bool | str = "auto",
    skip_bad_rows: bool = False,
    check_images: bool = True,
    max_tokens: int | None = None,
    drop_remainder: bool = False,
    encoding: str = "utf-8",
    validation_split: float = 0.0,
    subset: str | None = None,
    with_info: bool = False,
):
    """Like `from_csv`, for a JSON Lines file: one JSON object per line, e.g.
    ``{"image": "img/0.png", "text": "what color is the circle?", "label": "red"}``. Blank lines are ignored;
    a line that is not a JSON object is a bad row; `validation_split` and `subset` hold out validation rows. The
    file's columns are the keys its objects have."""
    path = _existing_file(path)
    columns = _column_arguments(image_column, text_column, label_column, audio_column)
    audio = _audio_options(audio_root, sample_rate, num_samples, resample)
    return _load(path, None, list(_jsonl_rows(path, encoding)), columns=columns, audio=audio,
                 image_root=image_root, class_names=class_names, image_size=image_size, batch_size=batch_size,
                 shuffle=shuffle, seed=seed, cache=cache, skip_bad_rows=skip_bad_rows, check_images=check_images,
                 max_tokens=max_tokens, drop_remainder=drop_remainder, with_info=with_info,
                 holdout=_check_holdout(validation_split, subset))


# ----------------------------------------------------------------------------------------------------------
# Reading the rows. Files are read as text with errors="surrogateescape": a byte the encoding cannot decode
# becomes a lone surrogate in its value, so that it fails its own row (skippable) instead of the whole file.
# Only a decoder that cannot go on (e.g. UTF-16 cut in the middle of a character) refuses the file.


class _Undecodable:
    """A value holding bytes its file's encoding cannot decode; `_value` turns it into the row's error."""

    def __init__(self, text: str, encoding: str):
        self.text, self.encoding = text, encoding

    def reason(self, column, what) -> str:
        return f"the {what} in column {column!r} {self.problem()}"

    def problem(self) -> str:
        byte = ord(_ESCAPED_BYTE.search(self.text).group()) - 0xDC00
        return f"is not valid {self.encoding} text (byte 0x{byte:02x}); {_encoding_hint(self.encoding)}"


def _encoding_hint(encoding) -> str:
    if codecs.lookup(encoding).name in _UTF8_NAMES:
        return "pass the file's encoding, e.g. encoding='cp1252' (Windows) or encoding='latin-1'"
    return "pass the file's encoding (encoding=...)"


def _open_text(path, encoding):
    """(the file open for reading text, the encoding's name for messages). UTF-8 is read with or without a
    byte-order mark; a UTF-16 or UTF-32 byte-order mark under another encoding is refused, naming the right one."""
    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise ValueError("`encoding` must be a text encoding Python knows, e.g. 'utf-8', 'cp1252', 'latin-1' or "
                         f"'utf-16'. Received: encoding={encoding!r}") from None
    if name in _UTF8_NAMES or not name.startswith("utf"):
        boms = _FOREIGN_BOMS + (() if name in _UTF8_NAMES else ((b"\xef\xbb\xbf", "utf-8"),))
        with open(path, "rb") as f:
            start = f.read(4)
        found = next((bom_encoding for bom, bom_encoding in boms if start.startswith(bom)), None)
        if found:
            raise DataError(f"{path} starts with a {found.upper()} byte-order mark, but is read as {encoding}: "
                            f"pass encoding={found!r}.", path=path)
    if name in _UTF8_NAMES:
        name = "utf-8-sig"  # a byte-order mark, as spreadsheet programs write, is not part of the first value
    return open(path, encoding=name, errors="surrogateescape", newline=""), encoding


def _undecodable_file(path, encoding, line, error: UnicodeDecodeError) -> DataError:
    return DataError(f"{path} cannot be read as {encoding} text after line {line} ({error.reason}); "
                     f"{_encoding_hint(encoding)}", path=path)


def _text_value(value, encoding):
    return _Undecodable(value, encoding) if isinstance(value, str) and _ESCAPED_BYTE.search(value) else value


_FIELD_LIMIT = {"lock": threading.Lock(), "readers": 0, "saved": None}


@contextlib.contextmanager
def _csv_field_limit(limit):
    """csv's field size limit (one for the whole process) raised to at least `limit` while files are read, and
    restored when the last reader is done."""
    with _FIELD_LIMIT["lock"]:
        if not _FIELD_LIMIT["readers"]:
            _FIELD_LIMIT["saved"] = csv.field_size_limit()
        _FIELD_LIMIT["readers"] += 1
        csv.field_size_limit(max(csv.field_size_limit(), min(limit, 2**31 - 1)))  # a C long everywhere
    try:
        yield
    finally:
        with _FIELD_LIMIT["lock"]:
            _FIELD_LIMIT["readers"] -= 1
            if not _FIELD_LIMIT["readers"]:
                csv.field_size_limit(_FIELD_LIMIT["saved"])



def _read_csv(path, *, delimiter, encoding):
    """(header, [(row, where, record or _BadRow)] for each data row) of a CSV file.

    csv's own limit on a field is raised to the file's size, so that no value is cut and the parser never loses
    its place; `_value` refuses values over MAX_FIELD_CHARS, naming the row and column."""
    file, encoding = _open_text(path, encoding)
    with file, _csv_field_limit(os.path.getsize(path) + 1):
        # skipinitialspace: "a.png, a question" written by hand; a quote after the space still opens a value.
        reader = csv.reader(file, delimiter=delimiter, skipinitialspace=True)
        header = _csv_header(path, reader, encoding)
        return header, list(_csv_rows(path, reader, header, delimiter, encoding))


def _csv_rows(path, reader, header, delimiter, encoding):
    """(row, where, record or _BadRow) for each data row after the header."""
    row = 0
    while True:
        first = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            row += 1
            yield row, _lines(first, reader.line_num), _BadRow(f"malformed CSV ({e})")
            continue
        except UnicodeDecodeError as e:
            raise _undecodable_file(path, encoding, reader.line_num, e) from None
        if not any(field.strip() for field in fields):
            continue  # a blank line, or a spreadsheet's empty row (",,,")
        row += 1
        yield row, _lines(first, reader.line_num), _csv_record(header, fields, delimiter, encoding)


def _lines(first, last) -> str:
    return f"line {last}" if first >= last else f"lines {first}-{last}"


def _csv_header(path, reader, encoding) -> list:
    """The first non-blank row's names, stripped of surrounding spaces."""
    try:
        header = next((fields for fields in reader if any(field.strip() for field in fields)), None)
    except csv.Error as e:
        raise DataError(f"{path}, line {reader.line_num}: not a readable CSV header ({e}).", path=path) from None
    except UnicodeDecodeError as e:
        raise _undecodable_file(path, encoding, reader.line_num, e) from None
    if header is None:
        raise DataError(f"{path} is empty: it needs a header row and at least one data row.", path=path)
    names = [name.lstrip("\ufeff").strip() for name in header]  # a byte-order mark left by e.g. "utf-16-le"
    undecodable = next((name for name in names if _ESCAPED_BYTE.search(name)), None)
    if undecodable is not None:
        problem = _Undecodable(undecodable, encoding).problem()
        raise DataError(f"{path}, line {reader.line_num}: the header {problem}.", path=path)
    return names


def _csv_record(header, fields, delimiter, encoding):
    """{column: value} of one row; a column the row has no value for is left out (its value is missing)."""
    extra = [field for field in fields[len(header):] if field.strip()]
    if extra:
        return _BadRow(f"{len(fields)} values for the header's {len(header)} columns (a value holding the delimiter "
                       f"{delimiter!r} must be quoted)")
    return {name: _text_value(value, encoding) for name, value in zip(header, fields) if name}


def _jsonl_rows(path, encoding):
    """(row, where, record or _BadRow) for each non-blank line of a JSON Lines file."""
    file, encoding = _open_text(path, encoding)
    with file:
        row = line_number = 0
        try:
            for line_number, line in enumerate(file, start=1):
                if line.strip():
                    row += 1
                    yield row, f"line {line_number}", _jsonl_record(line, encoding)
        except UnicodeDecodeError as e:
            raise _undecodable_file(path, encoding, line_number, e) from None


def _jsonl_record(line, encoding):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return _BadRow(f"not valid JSON ({e.msg})")
    if not isinstance(record, dict):
        return _BadRow(f"expected a JSON object, got {type(record).__name__}")
    return {key: _text_value(value, encoding) for key, value in record.items()}


# ----------------------------------------------------------------------------------------------------------
# Columns, values and rows.


def _existing_file(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder; expected a CSV or JSONL file.", path=path)
    return path


@dataclasses.dataclass(frozen=True)
class _Columns:
    """Which column feeds which feature: `images`, `texts` and `audios` map feature keys to column names."""

    images: dict
    texts: dict
    label: str | None
    audios: dict = dataclasses.field(default_factory=dict)

    @property
    def kinds(self) -> dict:
        return {**{key: "image" for key in self.images}, **{key: "text" for key in self.texts},
                **{key: "audio" for key in self.audios}}

    def by_argument(self):
        """(argument, column) pairs, for messages that tell which argument names a missing column."""
        yield from (("image_column", column) for column in self.images.values())
        yield from (("text_column", column) for column in self.texts.values())
        yield from (("audio_column", column) for column in self.audios.values())
        if self.label is not None:
            yield "label_column", self.label


@dataclasses.dataclass(frozen=True)
class _ColumnArguments:
    """The column arguments, checked; which columns they name is known once the file's header is read
    (`_resolve_columns`): the default audio column is found in the file, and with audio the default image and
    text columns are read only where the file has them."""

    images: list
    texts: list
    audios: list
    label: str | None
    lists: bool  # a list was given: every feature is keyed by its column name
    defaults: frozenset  # the arguments left at their defaults: "image_column", "text_column", "audio_column"
    received: str = ""  # the arguments as given, for messages


DEFAULT_COLUMNS = {"image_column": "image", "text_column": "text", "audio_column": "audio"}
AUDIO_SUFFIX = ".wav"


def _column_names(value, argument) -> list:
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"`{argument}` must be a column name or a list of column names. Received: {argument}={value!r}")
    return list(names)


def _column_arguments(image_column, text_column, label_column, audio_column="audio") -> _ColumnArguments:
    given = {"image_column": image_column, "text_column": text_column, "audio_column": audio_column}
    images, texts, audios = (_column_names(value, argument) for argument, value in given.items())
    if label_column is not None and not (isinstance(label_column, str) and label_column):
        raise ValueError(f"`label_column` must be a column name or None. Received: label_column={label_column!r}")
    if not images and not texts and not audios:
        raise ValueError("Name at least one image or text column, or an audio column. Received: "
                         f"image_column={image_column!r}, text_column={text_column!r}, audio_column={audio_column!r}")
    defaults = frozenset(argument for argument, value in given.items()
                         if isinstance(value, str) and value == DEFAULT_COLUMNS[argument])
    # The default audio column yields to a column another argument names (`_resolve_columns`).
    named = images + texts + ([] if "audio_column" in defaults else audios) + (
        [label_column] if label_column is not None else [])
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ValueError(f"Each column may feed one feature only; {twice} is named more than once. Received: "
                         f"image_column={image_column!r}, text_column={text_column!r}, "
                         f"audio_column={audio_column!r}, label_column={label_column!r}")
    lists = any(isinstance(value, (list, tuple)) for value in given.values())
    received = ", ".join(f"{argument}={value!r}" for argument, value in given.items())
    return _ColumnArguments(images, texts, audios, label_column, lists, defaults, received)


def _is_wav_path(record, column) -> bool:
    value = record.get(column) if isinstance(record, dict) else None
    return isinstance(value, str) and value.strip().lower().endswith(AUDIO_SUFFIX)


def _resolve_columns(arguments: _ColumnArguments, header, first_record) -> _Columns:
    """The columns read from a file with `header` (None: not known, e.g. a JSONL file of no JSON object), whose
    first data row is `first_record`."""
    images, texts, audios = arguments.images, arguments.texts, arguments.audios
    claimed = set(images + texts + [arguments.label])
    if "audio_column" in arguments.defaults and header is not None:  # the column "audio", else .wav paths
        audios = ["audio"] if "audio" in header and "audio" not in claimed else [
            name for name in header if name not in claimed and _is_wav_path(first_record, name)]
    elif "audio_column" in arguments.defaults and "audio" in claimed:
        audios = []
    if audios and header is not None:  # the image + text defaults are not asked for in a file with audio
        if "image_column" in arguments.defaults and "image" not in header:
            images = []
        if "text_column" in arguments.defaults and "text" not in header:
            texts = []
    if not images and not texts and not audios:
        raise ValueError("Name at least one image or text column, or an audio column: the file has none named "
                         f"'audio' or holding .wav paths in its first row. Received: {arguments.received}")
    if arguments.lists or len(audios) > 1:
        return _Columns({n: n for n in images}, {n: n for n in texts}, arguments.label, {n: n for n in audios})
    # One column of each kind: the inputs "image", "text" and "audio", whatever the columns are called.
    return _Columns({"image": n for n in images}, {"text": n for n in texts}, arguments.label,
                    {"audio": n for n in audios})


def _check_columns(path, header, columns: _Columns):
    missing = [(arg, col) for arg, col in columns.by_argument() if col not in header]
    if missing:
        names = ", ".join(f"{col!r}" for _, col in missing)
        hint = ", ".join(dict.fromkeys(f"{arg}=..." for arg, _ in missing))
        raise DataError(f"{path} has no column {names}. Its columns are {list(header)}; name yours with {hint}.",
                        path=path, column=missing[0][1])
    # Only the columns read: which of two same-named columns was meant cannot be told.
    twice = [col for _, col in columns.by_argument() if list(header).count(col) > 1]
    if twice:
        positions = ", ".join(f"{col!r} at columns {[i + 1 for i, name in enumerate(header) if name == col]}"
                              for col in twice)
        raise DataError(f"{path}: the header names a column twice ({positions}); rename one.",
                        path=path, column=twice[0])


def _label_sort_key(name: str):
    try:
        return (0, int(name), name)
    except ValueError:
        return (1, 0, name)


def _value(record, column, what):
    value = record.get(column)
    if value is None:
        raise _BadRow(f"no {what} (column {column!r} is missing or null)", column)
    if isinstance(value, _Undecodable):
        raise _BadRow(value.reason(column, what), column)
    if isinstance(value, (dict, list)):
        raise _BadRow(f"the {what} in column {column!r} must be a string, got {type(value).__name__}", column)
    value = str(value)
    if len(value) > MAX_FIELD_CHARS:
        raise _BadRow(f"the {what} in column {column!r} is {len(value):,} characters long, over the limit of "
                      f"{MAX_FIELD_CHARS:,} (an unclosed quote?)", column)
    surrogate = _SURROGATE.search(value)
    if surrogate:  # e.g. a JSON "\\ud800" escape: not text, and TensorFlow could not encode it
        raise _BadRow(f"the {what} in column {column!r} holds a lone surrogate "
                      f"(U+{ord(surrogate.group()):04X}), which is not text", column)
    return value


def _guarded(check, full_path: str, column: str):
    """`check(full_path)` (`mmzoo.images.read_image_file` or `check_image_file`), its refusals as a _BadRow."""
    where = f"{full_path} (column {column!r})"
    try:
        return check(full_path)
    except FileNotFoundError:
        raise _BadRow(f"image file not found: {where}", column) from None
    except ImageFileError as e:
        if e.problem == "empty":
            raise _BadRow(f"image file is empty: {where}", column) from None
        if e.problem in ("format", "truncated"):
            raise _BadRow(f"image file is corrupt or not an image ({SUPPORTED}): {where} {e.reason}", column) from None
        raise _BadRow(f"image file {where} {e.reason}", column) from None
    except OSError as e:
        raise _BadRow(f"image file cannot be read: {where}: {e.strerror or e}", column) from None


def _read_image_shape(full_path: str, column: str) -> tuple[int, int]:
    """(height, width) of an image file, decoded fully by the pipeline's own decoder; raises _BadRow."""
    where = f"{full_path} (column {column!r})"
    data = _guarded(read_image_file, full_path, column)
    try:
        image = decode_image(tf.constant(data))
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError) as e:
        message = getattr(e, "message", str(e)).strip().splitlines()[0][:200]
        raise _BadRow(f"image file is corrupt or not an image (JPEG, PNG, GIF, BMP or WebP): {where}: "
                      f"{message}", column) from None
    return int(image.shape[0]), int(image.shape[1])


@dataclasses.dataclass
class _Row:
    row: int
    where: str
    images: dict  # feature key -> absolute image path
    texts: dict  # feature key -> text
    label: str | None
    audios: dict = dataclasses.field(default_factory=dict)  # feature key -> absolute WAV file path
    wavs: dict = dataclasses.field(default_factory=dict)  # feature key -> its WavInfo, once checked


class _Rejections:
    """Raises a DataError for a bad row, or, with `skip`, records it in `bad` as (row, reason)."""

    def __init__(self, path, skip):
        self.path, self.skip, self.bad = path, skip, []

    def __call__(self, row, where, error: _BadRow):
        if not self.skip:
            raise DataError(f"{self.path}, row {row} ({where}): {error}. Fix the row, or pass skip_bad_rows=True to "
                            "leave such rows out.", path=self.path, row=row, column=getattr(error, "column", None))
        self.bad.append((row, str(error)))


def _paths(record, columns: dict, root, what) -> dict:
    """{feature key: absolute path} of the file paths in `columns` ({key: column}), relative to `root`."""
    paths = {}
    for key, column in columns.items():
        path = _value(record, column, f"{what} path").strip()  # "a.png, text" written by hand
        if not path:
            raise _BadRow(f"empty {what} path in column {column!r}", column)
        paths[key] = os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))
    return paths


def _parse_row(row, where, record, columns: _Columns, roots, known) -> _Row:
    images = _paths(record, columns.images, roots[0], "image")
    audios = _paths(record, columns.audios, roots[1], "audio")
    texts = {key: _value(record, column, "text") for key, column in columns.texts.items()}
    label = None
    if columns.label is not None:
        label = _value(record, columns.label, "label").strip()
        if not label:
            raise _BadRow(f"empty label in column {columns.label!r}", columns.label)
        if known is not None and label not in known:
            shown = list(known)[:20]
            raise _BadRow(f"label {label!r} is not one of the {len(known)} class names {shown}"
                          f"{' ...' if len(known) > 20 else ''} (column {columns.label!r}; pass the training set's class_names)",
                          columns.label)
    return _Row(row, where, images, texts, label, audios)


def _parse_rows(records, columns, roots, known, reject) -> list:
    parsed = []
    for row, where, record in records:
        try:
            if isinstance(record, _BadRow):
                raise record
            parsed.append(_parse_row(row, where, record, columns, roots, known))
        except _BadRow as e:
            reject(row, where, e)
    return parsed


def _check_image_files(parsed, columns: _Columns, check_images, reject):
    """The rows whose images are all readable, and the set of their (height, width) sizes (when decoded)."""
    if not columns.images:
        return parsed, set()
    checks = {(i, key): (row.images[key], columns.images[key]) for i, row in enumerate(parsed) for key in columns.images}
    results = {}
    if check_images:  # in threads: decoding releases the GIL
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            futures = {pool.submit(_read_image_shape, *args): item for item, args in checks.items()}
            for future, item in futures.items():
                try:
                    results[item] = future.result()
                except _BadRow as e:
                    results[item] = e
    else:
        for item, (full, column) in checks.items():  # not read here: a regular file within MAX_IMAGE_BYTES
            try:
                _guarded(check_image_file, full, column)
                results[item] = None
            except _BadRow as e:
                results[item] = e
    good, shapes = [], set()
    for i, row in enumerate(parsed):
        errors = [results[(i, key)] for key in columns.images if isinstance(results[(i, key)], _BadRow)]
        if errors:
            reject(row.row, row.where, errors[0])
            continue
        shapes.update(results[(i, key)] for key in columns.images if results[(i, key)] is not None)
        good.append(row)
    return good, shapes


def _checked_wav(full_path: str, column: str):
    """`mmzoo.data.wav.wav_info` of a WAV file with samples; its refusals as a _BadRow."""
    where = f"{full_path} (column {column!r})"
    try:
        info = wav_info(full_path)
    except FileNotFoundError:
        raise _BadRow(f"audio file not found: {where}", column) from None
    except WavError as e:
        if e.problem == "empty":
            raise _BadRow(f"audio file is empty: {where}", column) from None
        if e.problem in ("format", "truncated"):
            raise _BadRow(f"audio file is corrupt or not a WAV file: {where} {e.reason}", column) from None
        raise _BadRow(f"audio file {where} {e.reason}", column) from None
    except OSError as e:
        raise _BadRow(f"audio file cannot be read: {where}: {e.strerror or e}", column) from None
    if not info.frames:
        raise _BadRow(f"audio file has no samples: {where}", column)
    return info


def _check_audio_files(parsed, columns: _Columns, reject) -> list:
    """The rows whose WAV files are all readable, each with its files' headers in `wavs`."""
    good = []
    for row in parsed:
        try:
            row.wavs = {key: _checked_wav(row.audios[key], column) for key, column in columns.audios.items()}
        except _BadRow as e:
            reject(row.row, row.where, e)
            continue
        good.append(row)
    return good


def _audio_format(path, parsed, columns: _Columns, audio: dict, reject):
    """(rows, sample rate, clip length) of the audio features: the rate given or the most common one, the length
    given or the longest clip's at that rate (`_warn_long_clip`). Without `resample`, a row with a file of
    another rate is bad."""
    if not columns.audios:
        return parsed, None, None
    rates = [row.wavs[key].sample_rate for row in parsed for key in columns.audios]
    # most_common: among equally common rates, the first one met
    rate = audio["sample_rate"] or (collections.Counter(rates).most_common(1)[0][0] if rates else None)
    if not audio["resample"]:
        why = "sample_rate" if audio["sample_rate"] else "the most common rate of its files"
        good = []
        for row in parsed:
            other = next((key for key in columns.audios if row.wavs[key].sample_rate != rate), None)
            if other is None:
                good.append(row)
                continue
            column = columns.audios[other]
            reject(row.row, row.where, _BadRow(
                f"audio file {row.audios[other]} (column {column!r}) has a sample rate of "
                f"{row.wavs[other].sample_rate} Hz; expected {rate} Hz ({why}): convert the file, or pass "
                "resample=True to resample it as it is read", column))
        parsed = good
    lengths = {row.audios[key]: resampled_length(row.wavs[key].frames, row.wavs[key].sample_rate, rate)
               for row in parsed for key in columns.audios}
    if audio["num_samples"] is None and lengths:
        _warn_long_clip(path, lengths, rate)
    return parsed, rate, audio["num_samples"] or max(lengths.values(), default=None)


LONG_CLIP_RATIO = 4  # a longest clip over this many times the median one is worth a warning


def _warn_long_clip(path, lengths: dict, rate: int):
    """Every clip is padded to the longest one by default, silently paying its memory and compute: one line when
    the longest (`lengths`: {file: samples at `rate`}) is over LONG_CLIP_RATIO times the median clip."""
    longest = max(lengths, key=lengths.get)
    values = np.array(list(lengths.values()))
    median = float(np.median(values))
    if lengths[longest] > LONG_CLIP_RATIO * median:
        typical = int(np.ceil(np.percentile(values, 95)))
        warnings.warn(f"{path}: every audio clip is padded to the longest, {longest} "
                      f"({lengths[longest] / rate:.2f} s), over {LONG_CLIP_RATIO}x the median clip "
                      f"({median / rate:.2f} s): pass num_samples= to crop the long ones (e.g. "
                      f"num_samples={typical}, which keeps 95 % of the clips whole)", stacklevel=6)


def _audio_options(audio_root, sample_rate, num_samples, resample) -> dict:
    for argument, value in (("sample_rate", sample_rate), ("num_samples", num_samples)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"`{argument}` must be a positive integer or None. Received: {argument}={value!r}")
    if not isinstance(resample, bool):
        raise ValueError(f"`resample` must be True or False. Received: resample={resample!r}")
    return {"root": audio_root, "sample_rate": None if sample_rate is None else int(sample_rate),
            "num_samples": None if num_samples is None else int(num_samples), "resample": resample}


def _class_ids(parsed, columns: _Columns, known, class_names):
    """(label ids or None, class names): the given names, else the labels found, sorted."""
    if columns.label is None:
        return None, tuple(str(c) for c in class_names) if class_names is not None else ()
    if known is None:
        class_names = tuple(sorted({row.label for row in parsed}, key=_label_sort_key))
        known = {name: i for i, name in enumerate(class_names)}
    return [known[row.label] for row in parsed], tuple(str(c) for c in class_names)


def _dataset(parsed, columns: _Columns, labels, size, clips, deterministic):
    """Unbatched ``(features, label)`` (or features): image files read, decoded and resized, WAV files read as
    `clips` = (sample rate, num_samples, resample) says, in a parallel map."""
    sliced = {"features": {
        **{key: tf.constant([row.images[key] for row in parsed], tf.string) for key in columns.images},
        **{key: tf.constant([row.texts[key] for row in parsed], tf.string) for key in columns.texts},
        **{key: tf.constant([row.audios[key] for row in parsed], tf.string) for key in columns.audios}}}
    if labels is not None:
        sliced["label"] = tf.constant(labels, tf.int64)

    def feature(key, value):
        if key in columns.images:
            return resize_image(decode_image(tf.io.read_file(value)), size)
        if key in columns.audios:
            return _read_clip(value, *clips)
        return value

    def to_model_inputs(item):
        features = {key: feature(key, value) for key, value in item["features"].items()}
        return (features, item["label"]) if "label" in item else features

    return tf.data.Dataset.from_tensor_slices(sliced).map(
        to_model_inputs, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


@tf.autograph.experimental.do_not_convert  # plain TensorFlow ops: nothing for autograph to convert
def _read_clip(path, sample_rate, num_samples, resample):
    """A WAV file's path (a string tensor) -> float32 ``(num_samples,)``: read, mixed down and resampled by
    `mmzoo.data.wav.read_clip` (in Python: TensorFlow decodes 16-bit PCM only and cannot resample), then cropped
    or zero-padded by `fit_length`. The file was checked up front; one changed since then fails naming it
    (inside `tf.numpy_function` every exception reaches the user wrapped in TensorFlow's error)."""

    def read(file):
        file = os.fsdecode(file)
        try:
            return read_clip(file, sample_rate=sample_rate, resample_rate=resample)
        except (WavError, OSError) as e:
            reason = e.reason if isinstance(e, WavError) else e.strerror or e
            raise ValueError(f"audio file {file} changed after the data was loaded (it was checked then): {reason}. "
                             "Load the data again.") from None

    clip = tf.numpy_function(read, [path], tf.float32, stateful=False)
    clip.set_shape([None])
    return fit_length(clip, num_samples)


def _common_size(path, shapes):
    distinct = sorted(shapes)
    if len(distinct) > 1:
        raise ValueError(f"The images of {path} have different sizes ({distinct[0]}, {distinct[1]}, ...): "
                         "pass `image_size` to resize them.")
    return distinct[0]


def _known_classes(class_names):
    if class_names is None:
        return None
    known = {str(name): i for i, name in enumerate(class_names)}
    if len(known) != len(class_names):
        raise ValueError(f"`class_names` has duplicates. Received: class_names={list(class_names)!r}")
    return known


@dataclasses.dataclass
class _Checked:
    """What `_checked_rows` finds: the good rows, the skipped ones, the images' sizes, the audio's format."""

    rows: list
    bad: list
    shapes: set
    sample_rate: int | None
    num_samples: int | None


def _checked_rows(path, records, *, columns, roots, known, skip_bad_rows, check_images, audio) -> _Checked:
    """Every good row (parsed, images and WAV files checked), the skipped rows, the images' sizes and the audio
    features' rate and length."""
    reject = _Rejections(path, skip_bad_rows)
    parsed = _parse_rows(records, columns, roots, known, reject)
    parsed, shapes = _check_image_files(parsed, columns, check_images, reject)
    parsed = _check_audio_files(parsed, columns, reject)
    parsed, sample_rate, num_samples = _audio_format(path, parsed, columns, audio, reject)
    bad = sorted(reject.bad)
    if not parsed:
        raise DataError(f"{path}: all {len(records)} rows are bad (first: row {bad[0][0]}: {bad[0][1]}).", path=path)
    if bad:
        reasons = "; ".join(f"row {r}: {why}" for r, why in bad[:3])
        warnings.warn(f"Skipped {len(bad)} of {len(records)} rows of {path}: {reasons}"
                      f"{' ...' if len(bad) > 3 else ''}", SkippedRowsWarning, stacklevel=4)
    return _Checked(parsed, bad, shapes, sample_rate, num_samples)


def _file_columns(path, header, records, arguments: _ColumnArguments) -> _Columns:
    """The columns read from the file: `header` (None for JSONL: the keys its objects have) resolved and
    checked. A file without data rows is an error, after a missing column."""
    if header is None:  # JSONL: a key that no row has is a missing column, not a bad row.
        keys = {key for _, _, record in records if isinstance(record, dict) for key in record}
        header = sorted(keys) if keys else None
    first = next((record for _, _, record in records if isinstance(record, dict)), None)
    columns = _resolve_columns(arguments, header, first)
    if header is not None:
        _check_columns(path, header, columns)
    if not records:
        raise DataError(f"{path} has no data rows.", path=path)
    return columns


SUBSETS = ("training", "validation", "both")


def _check_holdout(validation_split, subset):
    """(fraction, subset) checked, or None when no rows are held out."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0 <= validation_split < 1:
        raise ValueError("`validation_split` must be a fraction in [0, 1). "
                         f"Received: validation_split={validation_split!r}")
    if not validation_split:
        if subset is not None:
            raise ValueError(f"`subset` goes with a `validation_split` above 0. Received: subset={subset!r}, "
                             f"validation_split={validation_split!r}")
        return None
    if subset not in SUBSETS:
        raise ValueError(f"`subset` must be one of {', '.join(map(repr, SUBSETS))} with a validation_split. "
                         f"Received: subset={subset!r}")
    return float(validation_split), subset


def _split_rows(parsed, fraction, seed):
    """(training rows, validation rows): a seeded random `fraction` held out, at least one row each.

    Rows are held out with every other row that reads the same image or WAV files (several questions about one
    image): otherwise validation would ask about images the model trained on, and early stopping would choose its
    epoch on an optimistic score. Where one set of files is in every row, rows are held out one by one."""
    if len(parsed) < 2:
        raise ValueError(f"validation_split={fraction} needs at least 2 rows. Received: {len(parsed)} good row(s)")
    groups = {}
    for i, row in enumerate(parsed):
        media = tuple(sorted({*row.images.values(), *row.audios.values()}))
        groups.setdefault(media or i, []).append(i)
    if len(groups) < 2:
        groups = {i: [i] for i in range(len(parsed))}
    members = list(groups.values())
    wanted = min(len(parsed) - 1, max(1, round(fraction * len(parsed))))
    validation = set()
    for group in np.random.default_rng(0 if seed is None else seed).permutation(len(members)):
        if len(validation) + len(members[group]) <= wanted:  # groups that would overshoot are passed over
            validation.update(members[group])
    if not validation:  # every group is larger than the fraction: the smallest one
        validation.update(min(members, key=len))
    return ([row for i, row in enumerate(parsed) if i not in validation],
            [row for i, row in enumerate(parsed) if i in validation])


def _load(path, header, records, *, columns: _ColumnArguments, audio, image_root, class_names, image_size,
          batch_size, shuffle, seed, cache, skip_bad_rows, check_images, max_tokens, drop_remainder, with_info,
          holdout):
    size = _as_size(image_size)
    columns = _file_columns(path, header, records, columns)
    if columns.images and not check_images and size is None:
        raise ValueError("`image_size` is required with check_images=False (the images are not opened up front).")
    folder = os.path.dirname(os.path.abspath(path))
    roots = tuple(os.fspath(root) if root is not None else folder for root in (image_root, audio["root"]))
    known = _known_classes(class_names)
    checked = _checked_rows(path, records, columns=columns, roots=roots, known=known, skip_bad_rows=skip_bad_rows,
                            check_images=check_images, audio=audio)
    parsed, bad = checked.rows, checked.bad
    if columns.images and size is None:
        size = _common_size(path, checked.shapes)
    clips = (checked.sample_rate, checked.num_samples, audio["resample"])
    _, class_names = _class_ids(parsed, columns, known, class_names)  # every row's labels, held-out ones too
    known = _known_classes(class_names)
    subsets = {"training": parsed}
    if holdout is not None:
        subsets["training"], subsets["validation"] = _split_rows(parsed, holdout[0], seed)
    wanted = ["training"] if holdout is None else ["training", "validation"] if holdout[1] == "both" else [holdout[1]]

    def dataset(name):
        rows, shuffled = subsets[name], shuffle and name == "training"
        labels, _ = _class_ids(rows, columns, known, class_names)
        ds = _dataset(rows, columns, labels, size, clips,
                      deterministic=True if not shuffled or seed is not None else None)
        # A cache file prefix of each subset's own: two datasets writing one cache would corrupt it.
        own_cache = f"{cache}_{name}" if isinstance(cache, str) and cache != "auto" and holdout is not None else cache
        return finish(ds, batch_size=batch_size, shuffle=shuffled, cache=own_cache, seed=seed,
                      drop_remainder=drop_remainder, num_examples=len(rows), image_size=size or (0, 0),
                      num_images=len(columns.images), audio_samples=len(columns.audios) * (checked.num_samples or 0))

    datasets = [dataset(name) for name in wanted]
    if not with_info:
        return datasets[0] if len(datasets) == 1 else tuple(datasets)
    texts = [row.texts[key] for row in subsets["training"] for key in columns.texts]
    info = DataInfo(
        name=path, split=None, class_names=class_names,
        vocabulary=adapt_vocabulary(texts, max_tokens=max_tokens) if texts else (), image_size=size,
        num_examples=len(subsets[wanted[0]]), num_skipped=len(bad), skipped=tuple(bad),
        feature_keys={**columns.images, **columns.texts, **columns.audios, "label": columns.label},
        input_kinds=columns.kinds, sample_rate=checked.sample_rate, num_samples=checked.num_samples)
    return (*datasets, info)
