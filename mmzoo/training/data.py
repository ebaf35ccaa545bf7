"""The data `mmzoo.train` takes — a TFDS name, .csv/.jsonl files or tf.data datasets — as batched datasets of raw
inputs and what is known about them."""

from __future__ import annotations

import dataclasses
import os
import warnings

from mmzoo.training.errors import OptionError
from mmzoo.training.options import check_file_only, is_file_data


@dataclasses.dataclass
class TrainingData:
    """Batched datasets of raw ``({"image", "text"}, label)`` and what is known about them (`load_data`)."""

    train: object
    validation: object
    test: object
    name: str
    test_source: str | None
    info: object = None  # a `mmzoo.data.DataInfo` for TFDS and .csv/.jsonl data
    tfds_name: str | None = None  # the TFDS name, where object annotations may come from
    skipped: list = dataclasses.field(default_factory=list)  # one line per file that had rows left out

    @property
    def num_examples(self):
        return self.info.num_examples if self.info is not None else None

    def steps_per_epoch(self, batch_size):
        """Batches per epoch, or None when unknown."""
        if self.num_examples:
            return -(-self.num_examples // batch_size)
        cardinality = int(self.train.cardinality())
        return cardinality if cardinality > 0 else None


def load_data(data, *, validation_data=None, test_data=None, train_split="train", validation_split="validation",
              test_split="test", data_dir=None, batch_size=32, image_size=None, seed=None, class_names=None,
              image_column="image", text_column="text", skip_bad_rows=False, encoding="utf-8",
              validation_fraction=0.0, audio_column="audio", sample_rate=None, num_samples=None):
    """`TrainingData` from a TFDS name, a .csv/.jsonl file or tf.data datasets, as `train` takes them.

    A TFDS name loads `train_split` (shuffled with `seed`), `validation_split` and `test_split` (None: none).
    A .csv/.jsonl file is the training data (shuffled with `seed`); `validation_data` and `test_data` are files
    with the same labels and columns (`test_data` defaults to the validation file); `image_column` and
    `text_column` name the columns of every file, as `mmzoo.data.from_csv` takes them (one name each: the inputs
    "image" and "text"; lists: inputs named after their columns). Without a validation file,
    `validation_fraction` of the training file's rows are held out as validation data (`from_csv`'s
    `validation_split`, split with `seed`), and are the test data too unless `test_data` is given. A
    `tf.data.Dataset` is used as it is, and so
    are `validation_data` and `test_data` (`test_data` defaults to `validation_data`). `class_names` fixes the label
    ids of a file (default: its labels, sorted). `skip_bad_rows` and `encoding` go to every file's loader; the
    rows left out are reported in `TrainingData.skipped` (one line per file) instead of as warnings.

    Audio: `audio_column` names the files' WAV columns (`from_csv`'s default finds them). `sample_rate` and
    `num_samples` (None: the data's own) are what the model declares: a file's clips are resampled and padded to
    them; TFDS audio is padded to `num_samples`, and keeps its rate (`mmzoo.train` refuses another). Every file
    and split gets the training data's rate and length.
    """
    import tensorflow as tf

    check_file_only(data, skip_bad_rows=skip_bad_rows, encoding=encoding)
    if isinstance(data, tf.data.Dataset):
        for argument, value in (("data", data), ("validation_data", validation_data), ("test_data", test_data)):
            if value is not None and not isinstance(value, tf.data.Dataset):
                raise OptionError(argument, value, "expected a tf.data.Dataset (as `data` is) or None")
            if value is not None:
                _check_batched(argument, value)
        test, source = (test_data, "test_data") if test_data is not None else (validation_data, "validation_data")
        return TrainingData(data, validation_data, test, "a tf.data.Dataset", source if test is not None else None)
    if not isinstance(data, (str, os.PathLike)):
        raise OptionError("data", data, "expected a TFDS name, a .csv/.jsonl file or a tf.data.Dataset")
    if is_file_data(data):
        options = dict(image_column=image_column, text_column=text_column, audio_column=audio_column,
                       skip_bad_rows=skip_bad_rows, encoding=encoding)
        return _load_files(os.fspath(data), validation_data, test_data, batch_size=batch_size, image_size=image_size,
                           seed=seed, class_names=class_names, options=options,
                           validation_fraction=0.0 if validation_data else validation_fraction,
                           audio=dict(sample_rate=sample_rate, num_samples=num_samples))
    import mmzoo.data

    common = dict(batch_size=batch_size, image_size=image_size, data_dir=data_dir)
    train, info = mmzoo.data.load(data, train_split, seed=seed, with_info=True, num_samples=num_samples, **common)
    common["num_samples"] = info.num_samples  # every split padded alike
    validation = mmzoo.data.load(data, validation_split, **common) if validation_split else None
    test = mmzoo.data.load(data, test_split, **common) if test_split else None
    return TrainingData(train, validation, test, info.name, f"{data} {test_split}" if test_split else None, info,
                        tfds_name=data)


def _check_batched(argument, dataset):
    """A dataset of `(features dict, label)` batches, else one line now rather than a shape error inside `fit`."""
    spec = dataset.element_spec
    features = spec[0] if isinstance(spec, tuple) and len(spec) in (2, 3) else None
    ranks = [s.shape.rank for s in features.values()] if isinstance(features, dict) else []
    if not ranks or any(rank is None or rank < 1 for rank in ranks) or spec[1].shape.rank is None \
            or spec[1].shape.rank < 1:
        raise OptionError(argument, dataset, "expected batches of (features dict, label), e.g. "
                          "dataset.batch(32); received elements " + repr(spec)[:200])


def _load_files(path, validation_path, test_path, *, batch_size, image_size, seed, class_names, options,
                validation_fraction=0.0, audio=None):
    """`options`: the loaders' column, skip_bad_rows and encoding arguments, the same for every file; `audio`:
    the sample_rate and num_samples to load the training file's audio at (None: its own)."""
    skipped = []
    common = dict(image_size=image_size, batch_size=batch_size, seed=seed, class_names=class_names,
                  with_info=True, skipped=skipped, **(audio or {}), **options)
    validation = test = None
    if validation_fraction:
        train, validation, info = load_file(path, shuffle=True, validation_split=validation_fraction, subset="both",
                                            **common)
        validation_path = f"validation rows: {validation_fraction:.0%} of {path} held out"
    else:
        train, info = load_file(path, shuffle=True, **common)
    # The training file's classes, image size and audio format: every file feeds the same model.
    common = dict(image_size=image_size or info.image_size, batch_size=batch_size, class_names=list(info.class_names),
                  skipped=skipped, sample_rate=info.sample_rate, num_samples=info.num_samples, **options)
    if validation is None and validation_path:
        validation = load_file(validation_path, **common)
    if test_path:
        test = load_file(test_path, **common)
    else:
        test, test_path = validation, validation_path
    return TrainingData(train, validation, test, info.name, None if test is None else os.fspath(test_path), info,
                        skipped=skipped)


def load_file(path, *, skipped=None, **options):
    """`mmzoo.data.from_csv` or `from_jsonl`, by the file's suffix. With a list as `skipped`, the loader's warning
    about rows left out (``skip_bad_rows=True``) is appended to it, one line, instead of being issued."""
    import mmzoo.data
    from mmzoo.data.own_data import SkippedRowsWarning

    loader = mmzoo.data.from_jsonl if str(path).lower().endswith(".jsonl") else mmzoo.data.from_csv
    if skipped is None:
        return loader(path, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRowsWarning)
        result = loader(path, **options)
    for warning in caught:
        if issubclass(warning.category, SkippedRowsWarning):
            skipped.append(str(warning.message))
        else:  # not ours to swallow
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return result
