"""Option groups shared by several commands (argparse parents; one new parser per command, so that each command's
defaults stay its own)."""

import argparse

from mmzoo.cli.arguments import auto_or, choice, non_negative_int, positive_float, positive_int
from mmzoo.cli.defaults import DEFAULT_BATCH_SIZE, DEFAULT_DATASET, DEFAULT_IMAGE_SIZE, DEFAULT_SEED
from mmzoo.training import AUTO_OBJECT_EPOCHS, SCHEDULES


def data_options(*, dataset=DEFAULT_DATASET, dataset_help=None, batch_size=DEFAULT_BATCH_SIZE, batch_size_help=None):
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--dataset", default=dataset, help=dataset_help or (
        f"a TFDS name (default: {DEFAULT_DATASET}, bundled, generated on first use in ~30 s) "
        "or a .csv/.jsonl file of image paths, texts and labels (see docs/data.md)"))
    parent.add_argument("--data-dir", default=None, help="TFDS data directory (default: TFDS' own, ~/tensorflow_datasets)")
    parent.add_argument("--batch-size", type=positive_int, default=batch_size,
                        help=batch_size_help or "examples per batch (default: %(default)s)")
    return parent


def file_options():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--skip-bad-rows", action="store_true",
                        help="with a .csv/.jsonl --dataset: leave out bad rows (missing or corrupt image, missing or "
                        "undecodable value, unknown label) of every file and say how many, instead of stopping")
    parent.add_argument("--encoding", default="utf-8",
                        help="with a .csv/.jsonl --dataset: the files' text encoding, e.g. cp1252, latin-1, utf-16 "
                        "(default: UTF-8, with or without a byte-order mark)")
    return parent


def split_options():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--val-data", default=None, help="with a .csv/.jsonl --dataset: the validation file")
    parent.add_argument("--test-data", default=None, help="with a .csv/.jsonl --dataset: the test file (default: the validation file)")
    parent.add_argument("--train-split", default="train", help="TFDS split to train on, slices allowed: 'train[:5%%]' (default: %(default)s)")
    parent.add_argument("--val-split", default="validation", help="TFDS validation split (default: %(default)s)")
    parent.add_argument("--test-split", default="test", help="TFDS test split (default: %(default)s)")
    return parent


def training_options(*, epochs, learning_rate, image_size=DEFAULT_IMAGE_SIZE, image_size_help=None, schedule=None):
    parent = argparse.ArgumentParser(add_help=False)
    if epochs == "auto":
        parent.add_argument("--epochs", type=auto_or(positive_int), default=epochs,
                            help="epochs, or 'auto': as many as show the model about 250,000 examples (25 for 10,000 "
                            "training examples, 5 for 50,000), within 3 to 50 (default: %(default)s)")
        parent.add_argument("--patience", type=auto_or(non_negative_int), default="auto",
                            help="stop after this many epochs without a better validation accuracy and keep the best "
                            "epoch's weights; 0 turns early stopping off; 'auto': a fifth of the epochs, at least 2, "
                            "for a .csv/.jsonl --dataset, off for TFDS data (default: %(default)s)")
    else:
        parent.add_argument("--epochs", type=positive_int, default=epochs, help="epochs (default: %(default)s)")
    parent.add_argument("--image-size", type=positive_int, default=image_size, help=image_size_help or
                        "images are resized to this many pixels square (default: %(default)s)")
    parent.add_argument("--learning-rate", type=positive_float, default=learning_rate,
                        help="Adam learning rate" + ("; the peak of the schedule" if schedule else "") + " (default: %(default)s)")
    if schedule:
        parent.add_argument("--schedule", type=choice("--schedule", SCHEDULES), default=schedule,
                            help="learning-rate schedule: 'cosine' decays from --learning-rate to 0 over all epochs, "
                            "'constant' keeps it (default: %(default)s)")
    parent.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed for weights and data order (default: %(default)s)")
    parent.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: %(default)s)")
    return parent


def object_options(tower, then):
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--object-epochs", type=non_negative_int, default=None,
        help=f"first pretrain {tower} for this many epochs to tell which object lies in each cell of its token grid, "
        f"from the dataset's object annotations (mmzoo.trainers.objects), then {then}; 0 turns it off (default: "
        f"{AUTO_OBJECT_EPOCHS} where the TFDS dataset has object annotations and the image tower gives tokens, "
        "as for the main job, and no --init; else 0)")
    return parent


def output_options(output_dir, contents, export_dir=None):
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--output-dir", default=None, help=f"where {contents} go (default: {output_dir})")
    if export_dir:
        export = parent.add_mutually_exclusive_group()
        export.add_argument("--export", default=None, metavar="DIR",
                            help=f"SavedModel directory; the next free version number is used (default: {export_dir})")
        export.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    return parent
