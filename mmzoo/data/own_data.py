"""Your own image + text data from a CSV or JSONL file, as the same datasets `mmzoo.data.load` gives.

    train, info = mmzoo.data.from_csv("data/train.csv", image_size=64, shuffle=True, with_info=True)
    val = mmzoo.data.from_csv("data/val.csv", image_size=64, class_names=info.class_names)

Each row names an image file (relative to `image_root`, or to the file's own folder), a text and a label. All
rows are checked in Python before any tf.data runs: a missing or undecodable image, a missing value, or a label
outside `class_names` raises a `DataError` naming the file and the row (or, with ``skip_bad_rows=True``, the row
is left out and counted). Nothing bad reaches TensorFlow's graph.
"""

from __future__ import annotations

import concurrent.futures
import csv
import json
import os
import warnings
from typing import Iterator, Sequence

import tensorflow as tf

from mmzoo.data.info import DataInfo, _as_size, adapt_vocabulary
from mmzoo.data.pipeline import AUTOTUNE, finish, resize_uint8

__all__ = ["DataError", "from_csv", "from_jsonl"]


class DataError(ValueError):
    """Bad input data. `path` is the data file; `row` the 1-based data row (``None`` for the whole file)."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, row: int | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.row = row


class _BadRow(Exception):
    pass


def from_csv(
    path: str | os.PathLike,
    *,
    image_column: str = "image",
    text_column: str = "text",
    label_column: str | None = "label",
    image_root: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
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
    with_info: bool = False,
):
    """A batched ``tf.data.Dataset`` of ``({"image", "text"}, label)`` from a CSV file with a header row.

    Args:
        path: the CSV file.
        image_column, text_column, label_column: column names; ``label_column=None`` for unlabelled data
            (the dataset then yields the features alone).
        image_root: folder the image paths are relative to; default the CSV file's folder. Absolute paths
            are used as they are.
        class_names: the label names, in order. Give the training set's names when loading a validation or
            test file, so labels mean the same ids; a label outside them is an error. Default: the labels
            found in this file, sorted (numerically when all are integers).
        image_size: ``int`` or ``(height, width)`` to resize to. Default: the images' size, if all share one.
        batch_size: examples per batch; ``None`` for unbatched examples.
        shuffle: shuffle the examples (every epoch); `seed` makes the order repeatable.
        cache: ``"auto"`` keeps decoded, resized images in memory when they take at most 2 GiB; ``True`` or
            ``False`` force it; a string caches to that file prefix.
        skip_bad_rows: leave out rows with a missing or corrupt image, a missing value or an unknown label,
            warn with how many were skipped, and list them in ``DataInfo.skipped``. Default: raise.
        check_images: decode every image once up front (the check that finds corrupt files). With ``False``
            only existence is checked, and `image_size` is required.
        max_tokens: keep only the most frequent tokens in ``DataInfo.vocabulary``.
        drop_remainder: drop the last, smaller batch.
        delimiter, encoding: of the CSV file.
        with_info: also return a `DataInfo` (class names, vocabulary of this file's texts, image size,
            number of examples, skipped rows).

    Returns:
        the dataset, or ``(dataset, DataInfo)`` when `with_info` is true.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: an empty file, a missing column, or (unless `skip_bad_rows`) a bad row.
    """
    path = _existing_file(path)

    def rows():
        with open(path, newline="", encoding=encoding) as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            try:
                columns = reader.fieldnames
            except csv.Error as e:
                raise DataError(f"{path}: not a readable CSV file ({e}).", path=path) from None
            if not columns:
                raise DataError(f"{path} is empty: it needs a header row and at least one data row.", path=path)
            _check_columns(path, columns, image_column, text_column, label_column)
            row = 0
            while True:  # noqa: SIM113 (csv.Error can come from next())
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    row += 1
                    yield row, f"line {reader.line_num}", _BadRow(f"malformed CSV ({e})")
                    continue
                row += 1
                yield row, f"line {reader.line_num}", record

    return _load(path, rows(), image_column=image_column, text_column=text_column, label_column=label_column,
                 image_root=image_root, class_names=class_names, image_size=image_size, batch_size=batch_size,
                 shuffle=shuffle, seed=seed, cache=cache, skip_bad_rows=skip_bad_rows, check_images=check_images,
                 max_tokens=max_tokens, drop_remainder=drop_remainder, with_info=with_info, all_keys=False)


def from_jsonl(
    path: str | os.PathLike,
    *,
    image_column: str = "image",
    text_column: str = "text",
    label_column: str | None = "label",
    image_root: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
    batch_size: int | None = 32,
    shuffle: bool = False,
    seed: int | None = None,
    cache: bool | str = "auto",
    skip_bad_rows: bool = False,
    check_images: bool = True,
    max_tokens: int | None = None,
    drop_remainder: bool = False,
    encoding: str = "utf-8",
    with_info: bool = False,
):
    """Like `from_csv`, for a JSON Lines file: one JSON object per line, e.g.
    ``{"image": "img/0.png", "text": "what color is the circle?", "label": "red"}``. Blank lines are ignored;
    a line that is not a JSON object is a bad row."""
    path = _existing_file(path)

    def rows():
        with open(path, encoding=encoding) as f:
            row = 0
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                row += 1
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    yield row, f"line {line_number}", _BadRow(f"not valid JSON ({e.msg})")
                    continue
                if not isinstance(record, dict):
                    yield row, f"line {line_number}", _BadRow(
                        f"expected a JSON object, got {type(record).__name__}")
                    continue
                yield row, f"line {line_number}", record

    return _load(path, rows(), image_column=image_column, text_column=text_column, label_column=label_column,
                 image_root=image_root, class_names=class_names, image_size=image_size, batch_size=batch_size,
                 shuffle=shuffle, seed=seed, cache=cache, skip_bad_rows=skip_bad_rows, check_images=check_images,
                 max_tokens=max_tokens, drop_remainder=drop_remainder, with_info=with_info, all_keys=True)


# ----------------------------------------------------------------------------------------------------------


def _existing_file(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data file not found: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder; expected a CSV or JSONL file.", path=path)
    return path


def _check_columns(path, columns, image_column, text_column, label_column):
    wanted = {"image_column": image_column, "text_column": text_column, "label_column": label_column}
    missing = {arg: col for arg, col in wanted.items() if col is not None and col not in columns}
    if missing:
        names = ", ".join(f"{col!r}" for col in missing.values())
        hint = ", ".join(f"{arg}=..." for arg in missing)
        raise DataError(f"{path} has no column {names}. Its columns are {list(columns)}; name yours with {hint}.",
                        path=path)


def _label_sort_key(name: str):
    try:
        return (0, int(name), name)
    except ValueError:
        return (1, 0, name)


def _value(record, column, what):
    value = record.get(column)
    if value is None:
        raise _BadRow(f"no {what} (column {column!r} is missing or null)")
    if isinstance(value, (dict, list)):
        raise _BadRow(f"the {what} in column {column!r} must be a string, got {type(value).__name__}")
    return str(value)


def _read_image_shape(full_path: str) -> tuple[int, int]:
    """(height, width) of an image file, decoding it fully; raises _BadRow with a readable reason."""
    try:
        with open(full_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise _BadRow(f"image file not found: {full_path}") from None
    except OSError as e:
        raise _BadRow(f"image file cannot be read: {full_path} ({e.strerror or e})") from None
    if not data:
        raise _BadRow(f"image file is empty: {full_path}")
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError, ValueError) as e:
        message = getattr(e, "message", str(e)).strip().splitlines()[0][:200]
        raise _BadRow(f"image file is corrupt or not an image (JPEG, PNG, GIF, BMP or WebP): {full_path} "
                      f"({message})") from None
    return int(image.shape[0]), int(image.shape[1])


def _load(path, rows: Iterator, *, image_column, text_column, label_column, image_root, class_names, image_size,
          batch_size, shuffle, seed, cache, skip_bad_rows, check_images, max_tokens, drop_remainder, with_info,
          all_keys):
    size = _as_size(image_size)
    if not check_images and size is None:
        raise ValueError("`image_size` is required with check_images=False (the images are not opened up front).")
    root = os.fspath(image_root) if image_root is not None else os.path.dirname(os.path.abspath(path))
    known = None if class_names is None else {str(name): i for i, name in enumerate(class_names)}
    if known is not None and len(known) != len(class_names):
        raise ValueError(f"`class_names` has duplicates. Received: class_names={list(class_names)!r}")

    bad: list[tuple[int, str]] = []

    def reject(row, where, reason):
        message = f"{path}, row {row} ({where}): {reason}"
        if not skip_bad_rows:
            raise DataError(message + ". Fix the row, or pass skip_bad_rows=True to leave such rows out.",
                            path=path, row=row)
        bad.append((row, reason))

    # 1. Parse every row (values, label, image path).
    records = list(rows)
    total = len(records)
    if total == 0:
        raise DataError(f"{path} has no data rows.", path=path)
    if all_keys:  # JSONL: a key that no row has is a missing column, not a bad row.
        seen_keys = {key for _, _, record in records if isinstance(record, dict) for key in record}
        if seen_keys:
            _check_columns(path, sorted(seen_keys), image_column, text_column, label_column)
    parsed = []  # (row, where, full image path, text, label name)
    for row, where, record in records:
        if isinstance(record, _BadRow):
            reject(row, where, str(record))
            continue
        try:
            image = _value(record, image_column, "image path")
            if not image.strip():
                raise _BadRow(f"empty image path in column {image_column!r}")
            text = _value(record, text_column, "text")
            label = None
            if label_column is not None:
                label = _value(record, label_column, "label").strip()
                if not label:
                    raise _BadRow(f"empty label in column {label_column!r}")
                if known is not None and label not in known:
                    shown = list(known)[:20]
                    raise _BadRow(f"label {label!r} is not one of the {len(known)} class names {shown}"
                                  f"{' ...' if len(known) > 20 else ''} (pass the training set's class_names)")
        except _BadRow as e:
            reject(row, where, str(e))
            continue
        full = image if os.path.isabs(image) else os.path.join(root, image)
        parsed.append((row, where, os.path.normpath(full), text, label))

    # 2. Check the images (in threads: decoding releases the GIL).
    shapes: dict[int, tuple[int, int]] = {}
    if check_images:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            futures = {pool.submit(_read_image_shape, full): i for i, (_, _, full, _, _) in enumerate(parsed)}
            results = {}
            for future, i in futures.items():
                try:
                    results[i] = future.result()
                except _BadRow as e:
                    results[i] = e
        good = []
        for i, item in enumerate(parsed):
            if isinstance(results[i], _BadRow):
                reject(item[0], item[1], str(results[i]))
            else:
                shapes[item[0]] = results[i]
                good.append(item)
        parsed = good
    else:
        good = []
        for item in parsed:
            if not os.path.isfile(item[2]):
                reject(item[0], item[1], f"image file not found: {item[2]}")
            else:
                good.append(item)
        parsed = good

    if not parsed:
        raise DataError(f"{path}: all {total} rows are bad (first: row {bad[0][0]}: {bad[0][1]}).", path=path)
    bad.sort()
    if bad:
        reasons = "; ".join(f"row {r}: {why}" for r, why in bad[:3])
        warnings.warn(f"Skipped {len(bad)} of {total} rows of {path}: {reasons}{' ...' if len(bad) > 3 else ''}",
                      stacklevel=3)

    if size is None:
        distinct = sorted(set(shapes.values()))
        if len(distinct) > 1:
            raise ValueError(f"The images of {path} have different sizes ({distinct[0]}, {distinct[1]}, ...): "
                             "pass `image_size` to resize them.")
        size = distinct[0]

    # 3. Labels.
    if label_column is not None:
        if known is None:
            class_names = tuple(sorted({item[4] for item in parsed}, key=_label_sort_key))
            known = {name: i for i, name in enumerate(class_names)}
        labels = [known[item[4]] for item in parsed]
    class_names = tuple(str(c) for c in class_names) if class_names is not None else ()

    # 4. The dataset.
    paths = [item[2] for item in parsed]
    texts = [item[3] for item in parsed]
    sliced = {"path": tf.constant(paths, tf.string), "text": tf.constant(texts, tf.string)}
    if label_column is not None:
        sliced["label"] = tf.constant(labels, tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(sliced)

    def to_model_inputs(item):
        image = tf.io.decode_image(tf.io.read_file(item["path"]), channels=3, expand_animations=False)
        same = tf.logical_and(tf.equal(tf.shape(image)[0], size[0]), tf.equal(tf.shape(image)[1], size[1]))
        image = tf.cond(same, lambda: image, lambda: resize_uint8(image, size))
        image = tf.ensure_shape(image, (*size, 3))
        features = {"image": image, "text": item["text"]}
        return (features, item["label"]) if "label" in item else features

    ds = ds.map(to_model_inputs, num_parallel_calls=AUTOTUNE,
                deterministic=True if not shuffle or seed is not None else None)
    ds = finish(ds, batch_size=batch_size, shuffle=shuffle, cache=cache, seed=seed, drop_remainder=drop_remainder,
                num_examples=len(paths), image_size=size)
    if not with_info:
        return ds
    info = DataInfo(
        name=path, split=None, class_names=class_names,
        vocabulary=adapt_vocabulary(texts, max_tokens=max_tokens), image_size=size, num_examples=len(paths),
        num_skipped=len(bad), skipped=tuple(bad),
        feature_keys={"image": image_column, "text": text_column, "label": label_column})
    return ds, info
