"""The `mmzoo` command line: it parses arguments and calls the library.

    mmzoo list                                   # recipes with their towers, fusion and parameter count
    mmzoo train                                  # the main job: bundled vqa data, default recipe, export, plot
    mmzoo train --strategy multiworker           # the same on several machines (TF_CONFIG on each)
    mmzoo pretrain                               # masked modelling on captions; then mmzoo train --init
    mmzoo distill --teacher runs/<recipe>/model.keras --student-recipe small_cnn_lstm_concat
    mmzoo evaluate --model runs/<recipe>/model.keras
    mmzoo export --model runs/<recipe>/model.keras --output saved_models/<name>
    mmzoo predict --model saved_models/<recipe> --image photo.png --text "what color is the circle?"
    mmzoo train --dataset views.csv --image-column front,side --text-column question \\
                --towers front=small_cnn,side=small_cnn,question=gru --recipe small_cnn_lstm_concat
    mmzoo predict --model saved_models/small_cnn_lstm_concat --input front=f.png --input side=s.png \\
                  --input question="what is on the table?"

`mmzoo train` is `mmzoo.train` (mmzoo/training.py). It backs up the training state after every epoch: after an
interruption (even `kill -9`) the same command continues from the last completed epoch. Bad arguments print one
line on stderr and exit with status 2. See docs/cli.md.

Keras and TensorFlow are imported inside the commands, so `mmzoo --help` does not wait for them.
"""

import argparse
import json
import logging
import os
import re
import sys

from mmzoo.distribute import STRATEGIES
from mmzoo.run_files import CSV_LOG, KERAS_MODEL, OBJECT_WEIGHTS
from mmzoo.stderr_filter import filtered_stderr
from mmzoo.training import AUTO_OBJECT_EPOCHS, DEFAULT_COLUMNS, SCHEDULES, OptionError, TrainingFailed

# The main job: what `mmzoo train` runs without arguments.
DEFAULT_RECIPE = "coord_cnn_gru_glimpse"
DEFAULT_DATASET = "mmzoo_shapes/vqa"
DEFAULT_EPOCHS = "auto"  # mmzoo.run_length.auto_epochs: 25 for the bundled data's 10,000 training examples
DEFAULT_BATCH_SIZE = 64
DEFAULT_IMAGE_SIZE = 64
DEFAULT_LEARNING_RATE = 3e-3
DEFAULT_SCHEDULE = "cosine"
DEFAULT_SEED = 0
DEFAULT_PRETRAIN_RECIPE = "small_cnn_bilstm_attention"
DEFAULT_PRETRAIN_DATASET = "mmzoo_shapes/captions"
DEFAULT_STUDENT_RECIPE = "small_cnn_lstm_concat"
DEFAULT_CAPTION_RECIPE = "small_cnn_gru_captioner"
DEFAULT_CAPTION_DATASET = "mmzoo_shapes/captions"
# --epochs auto for captioning: the classifier's rule counts labelled examples, not caption tokens; 10 epochs is
# what the bundled captions' recipes were tuned with.
CAPTION_AUTO_EPOCHS = 10
DEFAULT_TRANSCRIBE_RECIPE = "mel_crnn_ctc"
DEFAULT_TRANSCRIBE_DATASET = "mmzoo_shapes/spoken_captions"
# 16, not 64: CTC needs updates more than large batches; the same 4 epochs take twice the steps of 32 for ~1.5x its
# CPU time (docs/transcription.md, on the spoken captions: test WER 11 % with 64; 0.46 / 0.61 / 32.7 % on seeds
# 0 / 1 / 2 with 32; 0.15 / 0.05 / 1.5 % with 16).
TRANSCRIBE_BATCH_SIZE = 16

# Library argument names whose flag is not the name with dashes.
_FLAGS = {"data": "--dataset", "validation_data": "--val-data", "validation_split": "--val-split",
          "validation_fraction": "--val-fraction",
          "export_dir": "--export", "model": "--recipe", "model_options['towers']": "--towers"}


class UsageError(ValueError):
    """A problem with the command line itself; reported in one line, exit status 2."""


# === Parsing ===


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (`mmzoo train: error: ...`), not usage + message."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(convert, ok, expected, flag=None):
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    if flag:
        parse.__name__ = flag.lstrip("-")
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")


def _auto_or(parse):
    """`parse`, or the word 'auto' (the library decides)."""

    def parse_or_auto(text):
        if text == "auto":
            return text
        try:
            return parse(text)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(str(error).replace("expected ", "expected 'auto' or ", 1)) from None

    parse_or_auto.__name__ = parse.__name__
    return parse_or_auto


def _fraction(flag, allow_zero=False, allow_one=False):
    low, high = ("[0" if allow_zero else "(0"), ("1]" if allow_one else "1)")

    def ok(value):
        return (0 <= value if allow_zero else 0 < value) and (value <= 1 if allow_one else value < 1)

    return _number(float, ok, f"a number in {low}, {high}", flag)


def _choice(flag, choices):
    return _number(str, lambda v: v in choices, f"one of {', '.join(choices)}", flag)


def _column_names(text):
    """--image-column/--text-column: comma-separated column names; '' for none."""
    names = [name.strip() for name in text.split(",")] if text.strip() else []
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas, got {text!r}")
    return names


def _towers(text):
    """--towers: NAME=TOWER,NAME=TOWER -> {name: tower}, in the order given (the order the fusion sees)."""
    towers = {}
    for item in text.split(","):
        name, _, tower = (part.strip() for part in item.partition("="))
        if not name or not tower:
            raise argparse.ArgumentTypeError(f"expected NAME=TOWER pairs separated by commas, got {text!r}")
        if name in towers:
            raise argparse.ArgumentTypeError(f"input {name!r} is named twice in {text!r}")
        towers[name] = tower
    return towers


def _named_value(text):
    """--input NAME=VALUE -> (name, value); the value may itself hold '='."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


# --- option groups shared by several commands (argparse parents; one new parser per command, so that each
# command's defaults stay its own) ---


def _data_options(*, dataset=DEFAULT_DATASET, dataset_help=None, batch_size=DEFAULT_BATCH_SIZE, batch_size_help=None):
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--dataset", default=dataset, help=dataset_help or (
        f"a TFDS name (default: {DEFAULT_DATASET}, bundled, generated on first use in ~30 s) "
        "or a .csv/.jsonl file of image paths, texts and labels (see docs/data.md)"))
    parent.add_argument("--data-dir", default=None, help="TFDS data directory (default: TFDS' own, ~/tensorflow_datasets)")
    parent.add_argument("--batch-size", type=_positive_int, default=batch_size,
                        help=batch_size_help or "examples per batch (default: %(default)s)")
    return parent


def _file_options():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--skip-bad-rows", action="store_true",
                        help="with a .csv/.jsonl --dataset: leave out bad rows (missing or corrupt image, missing or "
                        "undecodable value, unknown label) of every file and say how many, instead of stopping")
    parent.add_argument("--encoding", default="utf-8",
                        help="with a .csv/.jsonl --dataset: the files' text encoding, e.g. cp1252, latin-1, utf-16 "
                        "(default: UTF-8, with or without a byte-order mark)")
    return parent


def _split_options():
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--val-data", default=None, help="with a .csv/.jsonl --dataset: the validation file")
    parent.add_argument("--test-data", default=None, help="with a .csv/.jsonl --dataset: the test file (default: the validation file)")
    parent.add_argument("--train-split", default="train", help="TFDS split to train on, slices allowed: 'train[:5%%]' (default: %(default)s)")
    parent.add_argument("--val-split", default="validation", help="TFDS validation split (default: %(default)s)")
    parent.add_argument("--test-split", default="test", help="TFDS test split (default: %(default)s)")
    return parent


def _training_options(*, epochs, learning_rate, image_size=DEFAULT_IMAGE_SIZE, image_size_help=None, schedule=None):
    parent = argparse.ArgumentParser(add_help=False)
    if epochs == "auto":
        parent.add_argument("--epochs", type=_auto_or(_positive_int), default=epochs,
                            help="epochs, or 'auto': as many as show the model about 250,000 examples (25 for 10,000 "
                            "training examples, 5 for 50,000), within 3 to 50 (default: %(default)s)")
        parent.add_argument("--patience", type=_auto_or(_non_negative_int), default="auto",
                            help="stop after this many epochs without a better validation accuracy and keep the best "
                            "epoch's weights; 0 turns early stopping off; 'auto': a fifth of the epochs, at least 2, "
                            "for a .csv/.jsonl --dataset, off for TFDS data (default: %(default)s)")
    else:
        parent.add_argument("--epochs", type=_positive_int, default=epochs, help="epochs (default: %(default)s)")
    parent.add_argument("--image-size", type=_positive_int, default=image_size, help=image_size_help or
                        "images are resized to this many pixels square (default: %(default)s)")
    parent.add_argument("--learning-rate", type=_positive_float, default=learning_rate,
                        help="Adam learning rate" + ("; the peak of the schedule" if schedule else "") + " (default: %(default)s)")
    if schedule:
        parent.add_argument("--schedule", type=_choice("--schedule", SCHEDULES), default=schedule,
                            help="learning-rate schedule: 'cosine' decays from --learning-rate to 0 over all epochs, "
                            "'constant' keeps it (default: %(default)s)")
    parent.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed for weights and data order (default: %(default)s)")
    parent.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: %(default)s)")
    return parent


def _object_options(tower, then):
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--object-epochs", type=_non_negative_int, default=None,
        help=f"first pretrain {tower} for this many epochs to tell which object lies in each cell of its token grid, "
        f"from the dataset's object annotations (mmzoo.trainers.objects), then {then}; 0 turns it off (default: "
        f"{AUTO_OBJECT_EPOCHS} where the TFDS dataset has object annotations and the image tower gives tokens, "
        "as for the main job, and no --init; else 0)")
    return parent


def _output_options(output_dir, contents, export_dir=None):
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--output-dir", default=None, help=f"where {contents} go (default: {output_dir})")
    if export_dir:
        export = parent.add_mutually_exclusive_group()
        export.add_argument("--export", default=None, metavar="DIR",
                            help=f"SavedModel directory; the next free version number is used (default: {export_dir})")
        export.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    return parent


def build_parser():
    parser = _Parser(prog="mmzoo", description="Multimodal (image + text) model zoo for Keras.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_list, _add_train, _add_evaluate, _add_export, _add_pretrain, _add_distill, _add_predict,
                _add_caption, _add_transcribe, _add_robustness):
        add(commands)
    return parser


def _add_list(commands):
    listing = commands.add_parser(
        "list", help="list the registered recipes: towers, fusion, parameter count",
        description="The registered recipes with their image tower, text tower, fusion, number of parameters (for "
        "the bundled vqa data's classes and vocabulary) and description.")
    listing.add_argument("--no-params", dest="params", action="store_false", help="skip the parameter counts")
    listing.set_defaults(run=_list)


def _add_train(commands):
    train = commands.add_parser(
        "train", help="train a recipe, report test accuracy, export a SavedModel and plot the training curves",
        # --batch-size None, resolved per task in _train: a transcriber learns more per epoch from smaller batches.
        parents=[_data_options(batch_size=None, batch_size_help=f"examples per batch (default: {DEFAULT_BATCH_SIZE}; "
                               f"with --task transcribe: {TRANSCRIBE_BATCH_SIZE})"), _file_options(), _split_options(),
                 _training_options(epochs=DEFAULT_EPOCHS, learning_rate=DEFAULT_LEARNING_RATE, schedule=DEFAULT_SCHEDULE),
                 _object_options("the image tower", "train the rest with the tower frozen"),
                 _output_options("runs/<recipe>[_<data>]", "the backup, logs, model.keras and plot",
                                 "saved_models/<recipe>[_<data>]")],
        description="Train a recipe on the bundled data or your own CSV/JSONL (mmzoo.train), report test accuracy, "
        "save <output-dir>/model.keras, export a SavedModel, and write TensorBoard logs, a CSV log and a PNG of the "
        "training curves. The training state is backed up after every epoch: rerun the same command after an "
        "interruption to continue from the last completed epoch. With no arguments this is the main job: "
        f"{DEFAULT_RECIPE} on {DEFAULT_DATASET}.")
    # None, not the classifier default: with --task caption an explicit --recipe must be told from one not given.
    train.add_argument("--recipe", default=None, help=f"recipe to train, see `mmzoo list` (default: {DEFAULT_RECIPE}; "
                       f"with --task caption: {DEFAULT_CAPTION_RECIPE})")
    train.add_argument("--val-fraction", type=_auto_or(_fraction("--val-fraction", allow_zero=True)), default="auto",
                       help="with a .csv/.jsonl --dataset and no --val-data: the fraction of its rows held out for "
                       "validation and early stopping (and test, without --test-data); 'auto': 0.1 (default: "
                       "%(default)s)")
    train.add_argument("--task", type=_choice("--task", ("classify", "caption", "transcribe")), default="classify",
                       help="'classify' (answers), 'caption' (generate captions: a captioning recipe, default "
                       f"{DEFAULT_CAPTION_RECIPE}, on {DEFAULT_CAPTION_DATASET} or a .csv/.jsonl of image and caption "
                       f"columns; --epochs auto is {CAPTION_AUTO_EPOCHS}; see docs/captioning.md) or 'transcribe' "
                       f"(speech to text: a transcription recipe, default {DEFAULT_TRANSCRIBE_RECIPE}, on "
                       f"{DEFAULT_TRANSCRIBE_DATASET} or a .csv/.jsonl of WAV paths ('audio' column) and transcripts "
                       "('text', or --text-column); see docs/transcription.md); with 'caption' and 'transcribe', "
                       "--strategy, --patience, --val-fraction, --towers, --fusion, --object-epochs and "
                       "--train-image-tower do not apply (default: %(default)s)")
    train.add_argument(
        "--strategy", type=_choice("--strategy", STRATEGIES), default="default",
        help="tf.distribute strategy: 'default' (one device), 'mirrored' (all local GPUs, or the CPU), 'multiworker' "
        "(several machines, each runs the same command with its own TF_CONFIG; see docs/cli.md) (default: %(default)s)")
    train.add_argument("--train-image-tower", action="store_true",
                       help="after object pretraining, keep training the image tower with the rest instead of freezing it")
    train.add_argument("--init", default=None, metavar="MODEL.keras",
                       help="start from the towers and fusion of a model saved by `mmzoo pretrain` (same recipe; its vocabulary is used)")
    _model_input_options(train)
    train.set_defaults(run=_train)


def _model_input_options(train):
    inputs = train.add_argument_group(
        "inputs", "Which columns of a .csv/.jsonl --dataset the model reads, and a tower for each. One image and one "
        "text column are the inputs 'image' and 'text' of a recipe; with several columns, or with --towers, each "
        "input is named after its column.")
    inputs.add_argument("--image-column", type=_column_names, default=None, metavar="COLUMNS",
                        help="column(s) holding image paths, comma-separated; '' for none (default: image)")
    inputs.add_argument("--text-column", type=_column_names, default=None, metavar="COLUMNS",
                        help="column(s) holding texts, comma-separated; '' for none (default: text)")
    inputs.add_argument("--towers", type=_towers, default=None, metavar="NAME=TOWER,...",
                        help="one tower per input of the data, e.g. front=small_cnn,side=small_cnn,question=gru, "
                        "instead of the recipe's image and text towers (the recipe still gives the fusion and widths; "
                        "towers: mmzoo.list_towers())")
    inputs.add_argument("--fusion", default=None,
                        help="fusion joining the towers (default: the recipe's; none for a single tower); a fusion "
                        "other than the recipe's leaves out the options the recipe sets for its own")


def _add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate", help="accuracy of a trained model (.keras file or exported SavedModel) on a dataset split",
        parents=[_data_options(), _file_options()],
        description="Accuracy of a model on a split of a TFDS dataset or on a .csv/.jsonl file. --model is a "
        ".keras file (as `mmzoo train` saves in its output directory) or an exported SavedModel directory.")
    evaluate.add_argument("--model", required=True, help="a .keras file or a SavedModel (version or model) directory")
    evaluate.add_argument("--split", default="test", help="TFDS split (default: %(default)s); ignored for .csv/.jsonl")
    evaluate.set_defaults(run=_evaluate)


def _add_export(commands):
    exporter = commands.add_parser(
        "export", help="export a .keras model as a SavedModel for serving (TF Serving layout)",
        description="Export a .keras model (e.g. runs/<recipe>/model.keras) as a SavedModel. --output is a model "
        "directory (the next free version number is used) or a version directory such as saved_models/vqa/3.")
    exporter.add_argument("--model", required=True, help="the .keras file")
    exporter.add_argument("--output", required=True, help="model directory or version directory")
    exporter.add_argument("--overwrite", action="store_true", help="replace an existing version directory")
    exporter.set_defaults(run=_export)


def _add_pretrain(commands):
    pretrain = commands.add_parser(
        "pretrain", help="masked modelling: pretrain a recipe's towers and fusion on captions (mmzoo.trainers.MaskedPretrainer)",
        parents=[_data_options(dataset=DEFAULT_PRETRAIN_DATASET, batch_size=32,
                               dataset_help="TFDS image + caption data (default: %(default)s)"),
                 _training_options(epochs=3, learning_rate=1e-3, image_size_help="image size in pixels (default: %(default)s)"),
                 _output_options("runs/pretrain_<recipe>", "model.keras and the CSV log")],
        description="Self-supervised pretraining (mmzoo.trainers.MaskedPretrainer): caption tokens are masked and "
        "predicted from the text after it attended to the image. Saves <output-dir>/model.keras, a classifier for "
        "--for-dataset's classes whose towers and fusion are pretrained (its head is not); fine-tune it with "
        "`mmzoo train --init <output-dir>/model.keras`. The recipe needs a token-level fusion (attention, coattention).")
    pretrain.add_argument("--recipe", default=DEFAULT_PRETRAIN_RECIPE, help="recipe to pretrain (default: %(default)s)")
    pretrain.add_argument("--for-dataset", default=DEFAULT_DATASET, help="TFDS data the model will be fine-tuned on: its classes, and its words join the vocabulary (default: %(default)s)")
    pretrain.add_argument("--train-split", default="train", help="split to pretrain on (default: %(default)s)")
    pretrain.add_argument("--mask-rate", type=_fraction("--mask-rate"), default=0.15, help="fraction of caption tokens masked and predicted (default: %(default)s)")
    pretrain.add_argument("--image-mask-rate", type=_fraction("--image-mask-rate", allow_zero=True), default=0.0, help="fraction of image regions blanked and predicted; 0 turns it off (default: %(default)s)")
    pretrain.set_defaults(run=_pretrain)


def _add_distill(commands):
    distill = commands.add_parser(
        "distill", help="knowledge distillation: train a student recipe from a teacher model (mmzoo.trainers.Distiller)",
        parents=[_data_options(), _file_options(), _split_options(),
                 _training_options(epochs=5, learning_rate=1e-3, image_size=None, schedule="constant",
                                   image_size_help="image size in pixels (default: the teacher's)"),
                 _object_options("the student's image tower", "distil into the rest with the tower frozen"),
                 _output_options("runs/distill_<student-recipe>", "model.keras and the CSV log",
                                 "saved_models/<student-recipe>_distilled")],
        description="Train a student recipe on labels and on a frozen teacher's softened predictions "
        "(mmzoo.trainers.Distiller): loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * "
        "KL(teacher / T || student / T). The teacher is a .keras file (e.g. runs/<recipe>/model.keras) or an exported "
        "SavedModel. Reports the student's test accuracy, saves <output-dir>/model.keras and exports the student.")
    distill.add_argument("--teacher", required=True, help="the teacher: a .keras file or an exported SavedModel directory")
    distill.add_argument("--student-recipe", default=DEFAULT_STUDENT_RECIPE, help="recipe of the student (default: %(default)s)")
    distill.add_argument("--alpha", type=_fraction("--alpha", allow_zero=True, allow_one=True), default=0.2, help="weight of the label loss in [0, 1] (default: %(default)s)")
    distill.add_argument("--temperature", type=_positive_float, default=4.0, help="softening temperature T > 0 (default: %(default)s)")
    distill.set_defaults(run=_distill)


def _add_predict(commands):
    predict = commands.add_parser(
        "predict", help="answer one example with an exported or .keras model; prints the label and its probability",
        description="Run a model (an exported SavedModel, or a .keras file as `mmzoo train` saves) on one example: "
        "an image file (JPEG, PNG, GIF or BMP) for each image input, a text for each text input and a WAV file for "
        "each audio input. --image, --text and --audio feed the inputs named 'image', 'text' and 'audio' (--audio: "
        "or the model's one audio input, whatever its name); --input NAME=VALUE feeds any input. Prints the "
        "predicted label and its probability, tab-separated.")
    predict.add_argument("--model", required=True, help="SavedModel version directory, model directory (highest "
                         "version) or .keras file")
    predict.add_argument("--image", default=None, help="image file (JPEG, PNG, GIF, BMP) for the input 'image'")
    predict.add_argument("--text", default=None, help="the text for the input 'text', e.g. a question")
    predict.add_argument("--audio", default=None, help="WAV file for the input 'audio' (or the model's one audio "
                         "input): PCM 8/16/24/32-bit or float, mono or stereo (mixed down), at the model's sampling "
                         "rate; cropped or zero-padded at the end to the model's clip length")
    predict.add_argument("--resample", action="store_true", help="resample WAV files of another sampling rate to "
                         "the model's (as mmzoo.data reads a CSV's audio); without it such a file is an error")
    predict.add_argument("--input", dest="inputs", action="append", type=_named_value, default=[], metavar="NAME=VALUE",
                         help="an input by name: an image file for an image input, the text for a text input, a WAV "
                         "file for an audio input; once per input (e.g. --input front=front.png "
                         "--input question='how many?')")
    predict.set_defaults(run=_predict)


def _add_robustness(commands):
    robustness = commands.add_parser(
        "robustness", help="accuracy of a .keras model with each input absent and under noise (docs/robustness.md)",
        parents=[_data_options(), _file_options()],
        description="Accuracy of a .keras classifier on a dataset split with each input absent, and under seeded "
        "noise at levels 0 ... 1 for each input (images: Gaussian noise, blur, occlusion, grey-scale; texts: "
        "character swaps, dropped and replaced words); prints the table with relative robustness (area under "
        "each curve) and, with --reference, effective robustness against it (late fusion of the same towers), "
        "and writes a PNG of accuracy against noise level.")
    robustness.add_argument("--model", required=True, help="a .keras file (as `mmzoo train` saves)")
    robustness.add_argument("--reference", default=None,
                            help="a .keras late-fusion model of the same towers, for effective robustness")
    robustness.add_argument("--split", default="test", help="TFDS split (default: %(default)s); ignored for .csv/.jsonl")
    robustness.add_argument("--levels", type=_positive_int, default=11,
                            help="noise levels evenly spaced over 0 ... 1, ends included (default: %(default)s)")
    robustness.add_argument("--max-examples", type=_positive_int, default=None,
                            help="use at most this many examples (default: all of the split)")
    robustness.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the noise (default: %(default)s)")
    robustness.add_argument("--plot", default="robustness.png",
                            help="where to write the PNG (default: %(default)s)")
    robustness.set_defaults(run=_robustness)


def _robustness(args):
    from mmzoo.robustness import evaluate_robustness

    if args.levels < 2:
        raise UsageError(f"--levels {args.levels}: expected 2 or more levels (0 and 1 at least)")
    model, kind = _load_any_model(args.model)
    reference = None if args.reference is None else _load_any_model(args.reference)[0]
    if kind != "keras" or (reference is not None and not hasattr(reference, "modalities")):
        raise UsageError("--model and --reference must be .keras files (an export has no presence flags to set)")
    inputs = _keras_input_kinds(model)
    data, _, source = _evaluation_data(args, inputs, _keras_image_size(model, args.model), model.class_names,
                                       _model_audio(model, kind))
    levels = [round(i / (args.levels - 1), 4) for i in range(args.levels)]
    report = evaluate_robustness(model, data, levels=levels, reference=reference, max_examples=args.max_examples,
                                 seed=args.seed, batch_size=args.batch_size)
    print(f"On {source}:\n{report.table()}")
    print(f"Plot: {report.plot(args.plot)}")
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    _quiet_known_noise()
    with filtered_stderr():
        return _run(args)


def _run(args):
    """args.run(args), its exit status, and the errors a user can act on as one line each."""
    try:
        return args.run(args)
    except (ValueError, TrainingFailed, OSError) as error:  # OSError: every file problem, a path named
        print(f"mmzoo {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        # A check inside a graph that fails while data is read (an image over the decoding limits) surfaces as
        # TensorFlow's InvalidArgumentError; its first line is the check's message.
        if not _is_tensorflow_argument_error(error):
            raise
        print(f"mmzoo {args.command}: error: {str(error.message).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " Run the same command again to continue from the last completed epoch." if args.command == "train" else ""
        # On a line of its own: a progress bar may have been drawn up to the interruption.
        print(f"\nmmzoo {args.command}: interrupted.{hint}", file=sys.stderr)
        return 130


class _DropMessage(logging.Filter):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def filter(self, record):
        return self.text not in record.getMessage()


# tensorflow-datasets 4.9 logs this deprecation of its own API from inside its builders, once per feature and split:
# ten lines a run that the user cannot act on.
_TFDS_DTYPE_DEPRECATION = _DropMessage("`FeatureConnector.dtype` is deprecated")


def _quiet_known_noise():
    """Silence start-up messages a user cannot act on, each at its source; warnings and errors stay visible.

    `TF_CPP_MIN_LOG_LEVEL=1` (read when TensorFlow is first imported; a value the user set wins) drops
    TensorFlow's C++ INFO lines once its logging is set up, such as the tf.data buffer size notes; its warnings and
    errors still show. The few lines it writes while being imported (the oneDNN notice, CUDA stubs) come before
    abseil's logging is initialised, which then prints every level whatever the setting (an open abseil-cpp
    issue): `mmzoo.stderr_filter` drops those.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    absl_logger = logging.getLogger("absl")
    if _TFDS_DTYPE_DEPRECATION not in absl_logger.filters:
        absl_logger.addFilter(_TFDS_DTYPE_DEPRECATION)


def _is_tensorflow_argument_error(error):
    tensorflow = sys.modules.get("tensorflow")  # never imported here: if TensorFlow did not run, nothing failed in it
    return tensorflow is not None and isinstance(error, tensorflow.errors.InvalidArgumentError)


def _one_line(error):
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


def _run_name(args):
    """The default output and export folders' name: the recipe, and for data other than the default the data
    too, so that the same recipe on other data neither resumes the other run's backup nor becomes a new version
    of the model served for the other data."""
    if args.dataset == DEFAULT_DATASET:
        return args.recipe
    data = os.path.splitext(os.path.basename(args.dataset))[0] if _is_data_file(args.dataset) else args.dataset
    return f"{args.recipe}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', data).strip('_.')}"


def _is_data_file(dataset):
    return dataset.lower().endswith((".csv", ".jsonl"))


def _export_dir(args, default_name):
    """--export, --no-export or the default saved_models/<default_name>."""
    if args.no_export:
        return None
    return args.export or os.path.join("saved_models", default_name)


# === list ===


LIST_IMAGE_SIZE = 32  # the towers are convolutional: their parameter count does not depend on the image size
LIST_KINDS = ("image", "text", "audio")  # the tower columns of `mmzoo list`


def _recipe_towers_by_kind(recipe):
    """{kind: the recipe's towers of that input kind, joined by '+', or '-'} from `towers` or the two-input
    shorthand `image_tower`/`text_tower`."""
    from mmzoo.towers import get_tower

    towers = recipe.get("towers") or {"image": recipe.get("image_tower"), "text": recipe.get("text_tower")}
    names = [spec.get("tower") if isinstance(spec, dict) else spec for spec in towers.values()]
    by_kind = {kind: [] for kind in LIST_KINDS}
    for name in filter(None, names):
        by_kind.setdefault(get_tower(name).kind, []).append(name)
    return {kind: "+".join(found) or "-" for kind, found in by_kind.items()}


def _list(args):
    from mmzoo.recipes import describe_recipe, get_recipe, list_models

    names = list_models()
    counts = _parameter_counts(names) if args.params else {}
    header = ("recipe", "image tower", "text tower", "audio tower", "fusion") + (("params",) if args.params else ())
    rows = [header]
    for name in names:
        recipe = get_recipe(name)
        towers = _recipe_towers_by_kind(recipe)
        row = (name, *(towers[kind] for kind in LIST_KINDS), str(recipe.get("fusion") or "-"))
        rows.append(row + ((f"{counts[name]:,}",) if args.params else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        cells = [cell.rjust(width) if j == 5 else cell.ljust(width) for j, (cell, width) in enumerate(zip(row, widths))]
        print("  ".join(cells) + "  " + ("description" if i == 0 else describe_recipe(row[0])))
    if args.params:
        from mmzoo.data import bundled

        print(f"\nparams: trainable and non-trainable, built for {bundled.VQA_NUM_CLASSES} classes and a "
              f"{bundled.VQA_VOCABULARY_SIZE}-word vocabulary (the bundled {bundled.VQA}); the image towers' counts do "
              "not depend on the image size.")
    return 0


def _parameter_counts(names):
    """{recipe: number of parameters}, building each distinct image tower only once.

    Building ten ResNet50 graphs would take a minute on a small CPU. Each image tower is built once for its
    parameter count and output shape (remembered in a cache file, so later listings skip even that); every recipe
    is then built around a parameter-free stand-in with that output shape (so its fusion sees the real feature
    width), and the two counts are added.
    """
    import mmzoo.towers.image as image_towers
    from mmzoo.recipes import build_model, get_recipe

    cache_path, version, towers = _tower_count_cache()
    known = len(towers)
    real_builder = image_towers.build_image_tower

    def stand_in(tower, *, image_size, output, name, **kwargs):
        if tower not in towers or kwargs.get("weights") is not None:
            real = real_builder(tower, image_size=image_size, output="tokens", name=name, **kwargs)
            towers[tower] = [real.count_params(), list(real.output.shape[1:])]
        return _parameter_free_tower(image_size, *towers[tower][1], tokens=output == "tokens", name=name)

    from mmzoo.data import bundled

    vocabulary = [f"word{i}" for i in range(bundled.VQA_VOCABULARY_SIZE)]
    counts = {}
    image_towers.build_image_tower = stand_in
    try:
        for name in names:
            model = build_model(name, num_classes=bundled.VQA_NUM_CLASSES, vocabulary=vocabulary,
                                image_size=LIST_IMAGE_SIZE)
            image = _recipe_towers_by_kind(get_recipe(name))["image"]
            counts[name] = model.count_params() + sum(towers[tower][0] for tower in image.split("+") if tower != "-")
    finally:
        image_towers.build_image_tower = real_builder
    if len(towers) > known:
        _write_json(cache_path, {version: towers})
    return counts


def _parameter_free_tower(image_size, steps, width, *, tokens, name):
    """pixels -> (batch, width) or (batch, steps, width) zeros-and-means, without a single weight."""
    import keras

    pixels = keras.Input((image_size, image_size, 3))
    x = keras.layers.GlobalAveragePooling2D()(pixels)  # (batch, 3) -> (batch, width), no weights
    x = keras.layers.Reshape((3, 1))(x)
    x = keras.layers.ZeroPadding1D((0, width - 3))(x)
    x = keras.layers.Reshape((width,))(x)
    if tokens:
        x = keras.layers.RepeatVector(steps)(x)
    return keras.Model(pixels, x, name=name)


def _tower_count_cache():
    """(cache file, key of this mmzoo/Keras/tower source, {tower: [parameters, tokens output shape]} cached)."""
    import hashlib

    import keras

    import mmzoo
    import mmzoo.towers.image

    cache_path = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmzoo", "tower_parameters.json")
    with open(mmzoo.towers.image.__file__, "rb") as f:  # edited towers are counted again
        source = hashlib.sha1(f.read()).hexdigest()[:12]
    version = f"mmzoo {mmzoo.__version__}, keras {keras.__version__}, towers {source}, {LIST_IMAGE_SIZE} px"
    cache = _read_json(cache_path)
    return cache_path, version, dict(cache.get(version, {})) if isinstance(cache, dict) else {}


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_json(path, value):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(value, f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass  # a read-only home: count again next time


# === train ===


def _train(args):
    from mmzoo.training import train

    args.batch_size = args.batch_size or (TRANSCRIBE_BATCH_SIZE if args.task == "transcribe" else DEFAULT_BATCH_SIZE)
    if args.task == "caption":
        return _train_captioner(args)
    if args.task == "transcribe":
        return _train_transcriber(args)
    args.recipe = args.recipe or DEFAULT_RECIPE
    model_options = {}
    if args.towers is not None:
        model_options["towers"] = args.towers
    if args.fusion is not None:
        model_options["fusion"] = None if args.fusion.lower() == "none" else args.fusion
    result = train(
        args.recipe, args.dataset, validation_data=args.val_data, test_data=args.test_data,
        train_split=args.train_split, validation_split=args.val_split, test_split=args.test_split,
        data_dir=args.data_dir, **_columns(args), skip_bad_rows=args.skip_bad_rows, encoding=args.encoding,
        epochs=args.epochs, patience=args.patience, validation_fraction=args.val_fraction, batch_size=args.batch_size,
        image_size=args.image_size, learning_rate=args.learning_rate, schedule=args.schedule, seed=args.seed,
        strategy=args.strategy, object_epochs="auto" if args.object_epochs is None else args.object_epochs,
        train_image_tower=args.train_image_tower, init=args.init, model_options=model_options or None,
        output_dir=args.output_dir or os.path.join("runs", _run_name(args)),
        export_dir=_export_dir(args, _run_name(args)), verbose=args.verbose)
    if result.is_chief and result.paths["export"]:
        from mmzoo.data import bundled

        # A question the bundled data's models can answer; for other data, the user's own.
        text = bundled.EXAMPLE_QUESTION if args.dataset.split(":")[0] == bundled.VQA else "TEXT"
        example = _predict_example(result.model, text)
        print(f'  try it          mmzoo predict --model {result.paths["export"]} {example}')
    return 0


def _columns(args):
    """image_column and text_column for mmzoo.train; none when neither flag is given (the library's defaults,
    which TFDS data accepts too). With --towers every input is named after its column, one column or several."""
    given = {"image_column": args.image_column, "text_column": args.text_column}
    if all(names is None for names in given.values()):
        return {}
    columns = {}
    for argument, default in DEFAULT_COLUMNS.items():
        names = [default] if given[argument] is None else given[argument]
        if not names:
            columns[argument] = None
        elif len(names) == 1 and args.towers is None:
            columns[argument] = names[0]  # the recipes' inputs "image" and "text", whatever the column is called
        else:
            columns[argument] = names
    return columns


def _predict_example(model, text):
    """The `mmzoo predict` arguments for `model`'s inputs, placeholders for the values."""
    placeholders = {"image": "{}.png", "audio": "{}.wav"}
    parts = []
    for name, modality in model.modalities.items():
        value = placeholders[modality.kind].format(name.upper()) if modality.kind in placeholders else None
        if name == modality.kind:
            parts.append(f"--{name} {value}" if value else f'--text "{text}"')
        else:
            parts.append(f"--input {name}={value}" if value else f'--input {name}="TEXT"')
    return " ".join(parts)


# === pretrain ===


def _pretrain(args):
    import keras

    import mmzoo
    import mmzoo.data
    from mmzoo.run_files import has_nan_loss, read_csv_log
    from mmzoo.trainers import MaskedPretrainer

    mmzoo.get_recipe(args.recipe)
    output_dir = args.output_dir or os.path.join("runs", f"pretrain_{args.recipe}")
    keras.utils.set_random_seed(args.seed)
    common = dict(image_size=args.image_size, data_dir=args.data_dir)
    captions, info = mmzoo.data.load(args.dataset, args.train_split, batch_size=args.batch_size, seed=args.seed, with_info=True, **common)
    _, target = mmzoo.data.load(args.for_dataset, "train", batch_size=args.batch_size, with_info=True, **common)
    options = target.model_kwargs()  # the fine-tuning data's classes; both datasets' words
    options["vocabulary"] = list(dict.fromkeys(list(info.vocabulary) + list(target.vocabulary)))
    model = mmzoo.build_model(args.recipe, **options)
    pretrainer = MaskedPretrainer(model, mask_rate=args.mask_rate, image_mask_rate=args.image_mask_rate, seed=args.seed)
    pretrainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    print(f"Pretraining {args.recipe} on {info.name} {args.train_split} ({info.num_examples} examples) by masked modelling "
          f"for {args.epochs} epochs; writing to {output_dir}")
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, CSV_LOG)
    callbacks = [keras.callbacks.TerminateOnNaN(), keras.callbacks.CSVLogger(csv_path)]
    pretrainer.fit(captions, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose)
    if has_nan_loss(read_csv_log(csv_path)):
        raise TrainingFailed(f"the loss became NaN; try a smaller --learning-rate (it was {args.learning_rate})")
    model_path = os.path.join(output_dir, KERAS_MODEL)
    model.save(model_path)
    print(f"Saved the pretrained {args.recipe} (towers and fusion pretrained, head untrained) to {model_path}")
    print(f"  fine-tune it    mmzoo train --recipe {args.recipe} --dataset {args.for_dataset} --image-size {args.image_size} --init {model_path}")
    return 0


# === distill ===


def _distill(args):
    import keras

    import mmzoo
    from mmzoo import training
    from mmzoo.trainers.objects import pretrain_objects

    mmzoo.get_recipe(args.student_recipe)
    teacher, kind = _load_any_model(args.teacher)
    image_size = _distill_image_size(teacher, kind, args.image_size)
    output_dir = args.output_dir or os.path.join("runs", f"distill_{args.student_recipe}")
    keras.utils.set_random_seed(args.seed)
    data = training.load_data(
        args.dataset, validation_data=args.val_data, test_data=args.test_data, train_split=args.train_split,
        validation_split=args.val_split, test_split=args.test_split, data_dir=args.data_dir,
        batch_size=args.batch_size, image_size=image_size, seed=args.seed, skip_bad_rows=args.skip_bad_rows,
        encoding=args.encoding)
    for line in data.skipped:
        print(line)
    student = mmzoo.build_model(args.student_recipe, **data.info.model_kwargs())
    requested = "auto" if args.object_epochs is None else args.object_epochs
    object_epochs = training.resolve_object_epochs(requested, student, data, data_dir=args.data_dir)
    print(f"Distilling {args.teacher} into {args.student_recipe} on {data.name} ({data.num_examples} examples, "
          f"{image_size} px), alpha {args.alpha}, temperature {args.temperature}, {args.epochs} epochs; writing to {output_dir}")
    if object_epochs:
        # Seeing from the object annotations, answering from labels and teacher: without it a token-grid student
        # does not learn to find objects from 2 000 labelled examples, and no teacher helps it (docs/trainers.md).
        pretrain_objects(student, data.tfds_name, args.train_split, epochs=object_epochs, batch_size=args.batch_size,
                         image_size=image_size, seed=args.seed, data_dir=args.data_dir,
                         learning_rate=args.learning_rate, schedule=args.schedule,
                         cache=os.path.join(output_dir, OBJECT_WEIGHTS), verbose=args.verbose)
    _fit_student(args, teacher if kind == "keras" else args.teacher, student, data, output_dir)
    model_path = os.path.join(output_dir, KERAS_MODEL)
    student.save(model_path)
    export_dir = _export_dir(args, f"{args.student_recipe}_distilled")
    export_path = mmzoo.export_model(student, export_dir) if export_dir else None
    print(f"  student model   {model_path}")
    print(f"  SavedModel      {export_path or '(not exported: --no-export)'}")
    return 0


def _distill_image_size(teacher, kind, requested):
    """--image-size: the teacher's image size unless given; a different one is an error."""
    teacher_size = getattr(teacher, "image_size", None) if kind == "keras" else _exported_image_size(teacher)
    if requested is None:
        return teacher_size or DEFAULT_IMAGE_SIZE  # the data at the teacher's image size
    if teacher_size and requested != teacher_size:
        raise UsageError(f"--image-size {requested}: the teacher takes {teacher_size} px images; leave --image-size out")
    return requested


def _fit_student(args, teacher, student, data, output_dir):
    """Distil `teacher` into `student`; print the student's test accuracy."""
    import keras

    from mmzoo.run_files import has_nan_loss, read_csv_log
    from mmzoo.trainers import Distiller
    from mmzoo.schedules import learning_rate_schedule

    distiller = Distiller(teacher=teacher, student=student, alpha=args.alpha, temperature=args.temperature)
    steps = data.steps_per_epoch(args.batch_size)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(args.learning_rate, args.schedule, steps, args.epochs)))
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, CSV_LOG)
    callbacks = [keras.callbacks.TerminateOnNaN(), keras.callbacks.CSVLogger(csv_path)]
    distiller.fit(data.train, validation_data=data.validation, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose,
                  shuffle=False)  # shuffled in its pipeline; Keras warns when True is passed with a tf.data dataset
    if has_nan_loss(read_csv_log(csv_path)):
        raise TrainingFailed(f"the loss became NaN; try a smaller --learning-rate (it was {args.learning_rate})")
    student.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    if data.test is not None:
        accuracy = student.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
        print(f"Student test accuracy: {accuracy:.4f} ({data.test_source})")


# === evaluate ===


def _evaluate(args):
    import numpy as np

    model, kind = _load_any_model(args.model)
    if kind == "keras":
        inputs, class_names = _keras_input_kinds(model), model.class_names
        image_size = _keras_image_size(model, args.model)
    else:
        inputs, image_size, class_names = _exported_input_kinds(model), _exported_image_size(model), None
    data, info, source = _evaluation_data(args, inputs, image_size, class_names, _model_audio(model, kind))
    correct = total = 0
    names = np.array(info.class_names)
    for features, labels in data:
        labels = labels.numpy()
        features = {key: value for key, value in features.items() if key in inputs}  # e.g. a text-only model's
        if kind == "keras":
            predicted = np.argmax(np.asarray(model(features, training=False)), axis=-1)
            correct += int(np.sum(predicted == labels))
        else:
            outputs = model({key: value.numpy() for key, value in features.items()})
            if "label" in outputs:  # compare names: the export's class order need not be the data's
                correct += int(np.sum(outputs["label"] == names[labels]))
            else:
                correct += int(np.sum(np.argmax(outputs["probabilities"], axis=-1) == labels))
        total += len(labels)
    print(f"Accuracy: {correct / max(total, 1):.4f} on {source} ({info.num_examples} examples)")
    return 0


def _evaluation_data(args, inputs, image_size, class_names, audio=None):
    """(dataset, DataInfo, its description) with a feature for each of the model's `inputs`; `audio`: the
    model's audio format `{"sample_rate", "num_samples"}`, which a TFDS dataset's clips are padded to."""
    if _is_data_file(args.dataset):
        from mmzoo.training import load_file

        skipped = []
        data, info = load_file(args.dataset, image_size=image_size, batch_size=args.batch_size,
                               class_names=class_names, with_info=True, skip_bad_rows=args.skip_bad_rows,
                               encoding=args.encoding, skipped=skipped, **_input_columns(inputs))
        for line in skipped:
            print(line)
        return data, info, args.dataset
    if args.skip_bad_rows or args.encoding != "utf-8":
        raise UsageError(f"--dataset {args.dataset}: --skip-bad-rows and --encoding go with a .csv/.jsonl file")
    unknown = [name for name in inputs if name not in ("image", "text", "audio")]
    if unknown:
        raise UsageError(f"--dataset {args.dataset}: a TFDS dataset gives the inputs image, text and audio; the model "
                         f"takes {_describe(inputs)}: evaluate it on a .csv/.jsonl file with a column named after "
                         "each input")
    import mmzoo.data

    data, info = mmzoo.data.load(args.dataset, args.split, batch_size=args.batch_size, image_size=image_size,
                                 data_dir=args.data_dir, with_info=True,
                                 num_samples=audio["num_samples"] if "audio" in inputs and audio else None)
    if "audio" in inputs:
        _check_tfds_audio(args.dataset, info, audio)
    return data, info, f"{args.dataset} {args.split}"


def _check_tfds_audio(dataset, info, audio):
    """The dataset has audio at the model's rate (TensorFlow cannot resample in a pipeline)."""
    if "audio" not in info.input_kinds:
        raise UsageError(f"--dataset {dataset}: the model takes audio; the dataset has no Audio feature (inputs: "
                         f"{', '.join(info.input_kinds)})")
    if audio and info.sample_rate != audio["sample_rate"]:
        raise UsageError(f"--dataset {dataset}: its audio is sampled at {info.sample_rate} Hz; the model takes "
                         f"{audio['sample_rate']} Hz audio")


def _model_audio(model, kind):
    """{"sample_rate", "num_samples"} of a model's (or an export's) input named "audio", or None."""
    if kind != "keras":
        return model.audio_inputs().get("audio")
    modality = (getattr(model, "modalities", None) or {}).get("audio")
    if modality is None or modality.kind != "audio":
        return None
    return {key: modality.options[key] for key in ("sample_rate", "num_samples")}


def _input_columns(inputs):
    """The own-data loaders' column arguments that yield a feature for each input of `inputs` ({name: kind})."""
    images = [name for name, kind in inputs.items() if kind == "image"]
    texts = [name for name, kind in inputs.items() if kind == "text"]
    if set(images) <= {"image"} and set(texts) <= {"text"}:  # single names: the features "image" and "text"
        return {"image_column": images[0] if images else None, "text_column": texts[0] if texts else None}
    return {"image_column": images, "text_column": texts}


def _describe(inputs):
    """{name: kind} -> 'front (image), question (text)'."""
    return ", ".join(f"{name} ({kind})" for name, kind in inputs.items())


def _keras_input_kinds(model):
    modalities = getattr(model, "modalities", None) or {"image": None, "text": None}
    return {name: getattr(modality, "kind", name) for name, modality in modalities.items()}


def _keras_image_size(model, path):
    """The one size of all of a .keras model's image inputs (the loaders resize every image column alike)."""
    sizes = {name: m.image_size for name, m in getattr(model, "modalities", {}).items() if m.kind == "image"}
    if len({str(size) for size in sizes.values()}) > 1:
        shown = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise UsageError(f"--model {path}: its image inputs take different sizes ({shown}); evaluate reads every "
                         "image column at one size: evaluate its export instead, which resizes each input itself")
    return next(iter(sizes.values()), getattr(model, "image_size", None))


def _load_any_model(path):
    if os.path.isdir(path):
        import mmzoo

        return mmzoo.load_exported(path), "exported"
    if not os.path.exists(path):
        raise FileNotFoundError(f"model not found: {path}")
    if not path.endswith(".keras"):
        raise UsageError(f"--model must be a .keras file or a SavedModel directory. Received: {path}")
    return _load_keras(path), "keras"


def _load_keras(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if not path.endswith(".keras"):
        raise UsageError(f"--model must be a .keras file (as `mmzoo train` saves). Received: {path}")
    from mmzoo.classifier import load_model

    return load_model(path)


def _exported_input_kinds(exported):
    """{input name: "image" | "text"} of an export, in the model's order where its metadata records it."""
    if exported.metadata is not None:
        return {name: spec["kind"] for name, spec in exported.metadata["inputs"].items()}
    images = exported.image_sizes()  # an export without metadata: its fixed-size pixel inputs
    return {name: "image" if name in images else "text" for name in exported.input_names()}


def _exported_image_size(exported):
    """The size of an export's first image input (it resizes every input to its own size), or None."""
    height, width = next(iter(exported.image_sizes().values()), (None, None))
    return height if height == width else (height, width)


# === export ===


def _export(args):
    import mmzoo

    model = _load_keras(args.model)
    path = mmzoo.export_model(model, args.output, overwrite=args.overwrite)
    print(f"Exported {args.model} to {path}")
    return 0


# === predict ===


def _predict(args):
    import numpy as np

    model, kind = _load_any_model(args.model)
    inputs = _keras_input_kinds(model) if kind == "keras" else _exported_input_kinds(model)
    audio = _audio_formats(model, kind)
    feeds = {}
    for name, (flag, value) in _predict_values(args, inputs).items():
        if inputs[name] == "image":
            feeds[name] = _read_image(flag, value, inputs)
        elif inputs[name] == "audio":
            feeds[name] = _read_audio(flag, value, inputs, *audio[name], resample=args.resample)
        else:
            feeds[name] = value
    probabilities, label = (_predict_keras(model, feeds, inputs) if kind == "keras"
                            else _predict_exported(model, feeds, inputs, args.model))
    print(f"{label}\t{float(np.max(probabilities)):.4f}")
    return 0


def _predict_exported(served, feeds, inputs, path):
    """(probabilities, the predicted label) of an export for one example: images as their encoded bytes (decoded
    and resized in its graph), audio as the waveform read here, texts as they are."""
    import tensorflow as tf

    request = {}
    for name, value in feeds.items():
        if inputs[name] == "image":
            request[f"{name}_bytes"] = [value]
        else:
            request[name] = [value] if inputs[name] == "text" else value[None]
    try:
        outputs = served.predict_image_bytes(request) if "image" in inputs.values() else served(request)
    except tf.errors.InvalidArgumentError:
        raise UsageError(f"{path}: could not decode the images given ({_taken(inputs)})") from None
    probabilities = outputs["probabilities"][0]
    return probabilities, str(outputs["label"][0]) if "label" in outputs else str(int(probabilities.argmax()))


def _predict_keras(model, feeds, inputs):
    """(probabilities, the predicted label) of a .keras classifier for one example: each image decoded and
    resized to its input's size by the functions its export uses, so both give the same answer."""
    import keras
    import numpy as np

    from mmzoo.heads import find_class_names
    from mmzoo.images import decode_image, resize_image

    batch = {}
    for name, value in feeds.items():
        if inputs[name] == "image":
            pixels = resize_image(decode_image(value), model.modalities[name].image_size)
            batch[name] = np.asarray(pixels, np.float32)[None]
        elif inputs[name] == "audio":
            batch[name] = value[None]
        else:
            batch[name] = np.array([value], dtype=object)
    logits = model(batch, training=False)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1))[0]
    names, best = find_class_names(model), int(probabilities.argmax())
    return probabilities, str(names[best]) if names else str(best)


def _audio_formats(model, kind):
    """{audio input: (sample_rate, num_samples)} of a .keras model or an export."""
    if kind == "keras":
        return {name: (int(m.options["sample_rate"]), int(m.options["num_samples"]))
                for name, m in getattr(model, "modalities", {}).items() if m.kind == "audio"}
    return {name: (audio["sample_rate"], audio["num_samples"]) for name, audio in model.audio_inputs().items()}


def _predict_values(args, inputs):
    """{input name: (the flag that gave it, its value)} from --input, --image, --text and --audio: each input of
    the model once, no other."""
    given = [(f"--input {name}=", name, value) for name, value in args.inputs]
    given += [(f"--{name} ", name, value) for name, value in (("image", args.image), ("text", args.text))
              if value is not None]
    if args.audio is not None:
        given.append(("--audio ", _audio_flag_input(args.audio, inputs), args.audio))
    values = {}
    for flag, name, value in given:
        if name in values:
            raise UsageError(f"{flag}{value}: input {name!r} is given twice (also {''.join(values[name])}); "
                             f"{_taken(inputs)}")
        if name not in inputs:
            raise UsageError(f"{flag}{value}: the model has no input {name!r}; {_taken(inputs)}")
        values[name] = (flag, value)
    missing = [name for name in inputs if name not in values]
    if missing:
        flags = "/".join(f"--{name}" for name in inputs if name in ("image", "text", "audio"))
        how = "--input NAME=VALUE" + (f" (or {flags})" if set(inputs) <= {"image", "text", "audio"} else "")
        raise UsageError(f"no value for input(s) {', '.join(missing)}: {_taken(inputs)}; give each with {how}")
    return values


def _audio_flag_input(path, inputs):
    """The input --audio feeds: 'audio', else the model's only audio input; a model without one is an error."""
    audio = [name for name, kind in inputs.items() if kind == "audio"]
    if "audio" in inputs or len(audio) > 1:
        return "audio"  # several audio inputs: each by name (--input NAME=FILE.wav)
    if not audio:
        raise UsageError(f"--audio {path}: the model has no audio input; {_taken(inputs)}")
    return audio[0]


def _taken(inputs):
    what = {"image": "an image file", "audio": "a WAV file"}
    described = ", ".join(f"{name} ({what.get(kind, 'a text')})" for name, kind in inputs.items())
    return f"the model takes {described}"


def _read_audio(flag, path, inputs, sample_rate, num_samples, *, resample=False):
    """float32 (num_samples,) of a WAV file, as the model's audio input takes it (`mmzoo.audio_files.load_clip`),
    checked here so that a bad file is named by its input. Another sampling rate is an error unless `resample`;
    a clip longer than the model's is cropped, and stderr says so."""
    from mmzoo.audio_files import WavError, load_clip, wav_info

    try:
        info = wav_info(path)
        if info.sample_rate != sample_rate and not resample:
            raise UsageError(f"{flag}{path}: a WAV file sampled at {info.sample_rate} Hz; the model takes "
                             f"{sample_rate} Hz audio (give --resample to resample it)")
        clip = load_clip(path, sample_rate=sample_rate, num_samples=num_samples)
    except FileNotFoundError:
        raise UsageError(f"{flag}{path}: audio file not found; {_taken(inputs)}") from None
    except WavError as error:
        raise UsageError(f"{flag}{path}: {error.reason}") from None
    except OSError as error:
        raise UsageError(f"{flag}{path}: audio file cannot be read: {error.strerror or error}") from None
    if info.duration > num_samples / sample_rate:
        print(f"mmzoo predict: {path} is {info.duration:.2f} s long; the model hears its first "
              f"{num_samples / sample_rate:.2f} s", file=sys.stderr)
    return clip


def _read_image(flag, path, inputs):
    """The bytes of an image file, checked here so that a bad file is named by its input: a regular file within
    the limits of `mmzoo.images` (exports made before those limits do not check them), then decoded once."""
    import tensorflow as tf

    from mmzoo.images import SUPPORTED, ImageFileError, decode_image, read_image_file

    try:
        encoded = read_image_file(path)
    except FileNotFoundError:
        raise UsageError(f"{flag}{path}: image file not found; {_taken(inputs)}") from None
    except ImageFileError as error:
        raise UsageError(f"{flag}{path}: {error.reason}") from None
    except OSError as error:
        raise UsageError(f"{flag}{path}: image file cannot be read: {error.strerror or error}") from None
    try:
        decode_image(tf.constant(encoded))
    except tf.errors.InvalidArgumentError:
        raise UsageError(f"{flag}{path}: not a {SUPPORTED} image, or a corrupt one") from None
    return encoded


# === caption ===


def _add_caption(commands):
    caption = commands.add_parser(
        "caption", help="caption an image with a trained captioner; prints the caption",
        description="Caption an image file (JPEG, PNG, GIF, BMP or WebP) with a captioner exported by `mmzoo train "
        "--task caption` (a SavedModel directory: its decoding as exported) or saved as .keras (--strategy, "
        "--num-beams apply). Prints the caption and its log-probability, tab-separated.")
    caption.add_argument("--model", required=True, help="SavedModel version or model directory, or a .keras file")
    caption.add_argument("--image", required=True, action="append", help="image file; repeat for several")
    caption.add_argument("--strategy", type=_choice("--strategy", ("greedy", "beam")), default="greedy",
                         help="with a .keras model: greedy or beam-search decoding (default: %(default)s)")
    caption.add_argument("--num-beams", type=_positive_int, default=4, help="beams of --strategy beam (default: %(default)s)")
    caption.set_defaults(run=_caption)


def _caption(args):
    import numpy as np

    if not os.path.exists(args.model):
        raise FileNotFoundError(f"model not found: {args.model}")
    encoded = [_read_image("--image ", path, {"image": "image"}) for path in args.image]
    if os.path.isdir(args.model):
        import mmzoo

        served = mmzoo.load_exported(args.model)
        if (served.metadata or {}).get("task") != "caption":
            raise UsageError(f"--model {args.model}: not a captioner's export (use `mmzoo predict` for classifiers)")
        outputs = served.predict_image_bytes({"image_bytes": encoded})
        captions = [caption.decode("utf-8") for caption in outputs["caption"]]
    else:
        import tensorflow as tf

        from mmzoo.captioning.training import load_captioner
        from mmzoo.images import decode_image, resize_image

        model = load_captioner(args.model)
        pixels = np.stack([resize_image(decode_image(tf.constant(data)), model.image_size).numpy() for data in encoded])
        outputs = model.generate(pixels, strategy=args.strategy, num_beams=args.num_beams)
        captions = list(outputs["caption"])
    for caption, log_probability in zip(captions, outputs["log_probability"]):
        print(f"{caption}\t{log_probability:.4f}")
    return 0


# The classifier-only flags of `mmzoo train` and the value each has when not given.
_NOT_FOR_CAPTIONS = (("--strategy", "strategy", "default"), ("--patience", "patience", "auto"),
                     ("--val-fraction", "val_fraction", "auto"), ("--towers", "towers", None),
                     ("--fusion", "fusion", None), ("--object-epochs", "object_epochs", None),
                     ("--train-image-tower", "train_image_tower", False))


def _train_captioner(args):
    from mmzoo.captioning.training import train_captioner

    for flag, attribute, unset in _NOT_FOR_CAPTIONS:
        if getattr(args, attribute) != unset:
            raise UsageError(f"{flag} does not apply to --task caption (it trains a classifier); leave it out")
    args.recipe = args.recipe or DEFAULT_CAPTION_RECIPE
    args.dataset = DEFAULT_CAPTION_DATASET if args.dataset == DEFAULT_DATASET else args.dataset
    name = _run_name(args)
    columns = {"image_column": (args.image_column or ["image"])[0],
               "caption_column": args.text_column[0] if args.text_column else None}
    result = train_captioner(
        args.recipe, args.dataset, validation_data=args.val_data, test_data=args.test_data,
        train_split=args.train_split, validation_split=args.val_split, test_split=args.test_split,
        data_dir=args.data_dir, **columns, skip_bad_rows=args.skip_bad_rows, encoding=args.encoding,
        batch_size=args.batch_size, epochs=CAPTION_AUTO_EPOCHS if args.epochs == "auto" else args.epochs,
        image_size=args.image_size, learning_rate=args.learning_rate, schedule=args.schedule, seed=args.seed,
        init=args.init, output_dir=args.output_dir or os.path.join("runs", name),
        export_dir=_export_dir(args, name), verbose=args.verbose)
    for metric, value in result.test_metrics.items():
        print(f"  test {metric:<12}{value:.4f}")
    if not result.test_metrics:
        print("  no validation/test data: no caption metrics measured; give --val-data/--test-data")
    print(f"  model           {result.paths['model']}")
    if result.paths["export"]:
        print(f"  export          {result.paths['export']}")
        print(f"  try it          mmzoo caption --model {result.paths['export']} --image IMAGE.png")
    return 0



# === transcribe ===


def _add_transcribe(commands):
    transcribe = commands.add_parser(
        "transcribe", help="transcribe WAV files with a trained transcriber; prints each file's transcript",
        description="Transcribe speech in WAV files (PCM 8/16/24/32-bit or float, mono or stereo, mixed down) with "
        "a transcriber exported by `mmzoo train --task transcribe` (a SavedModel directory: its decoding as "
        "exported) or saved as .keras (--strategy, --beam-width apply). Prints one line per file: the file, "
        "its transcript and the transcript's log-probability, tab-separated.")
    transcribe.add_argument("--model", required=True, help="SavedModel version or model directory, or a .keras file")
    transcribe.add_argument("--audio", required=True, nargs="+", metavar="WAV", help="WAV file(s) to transcribe")
    transcribe.add_argument("--resample", action="store_true", help="resample WAV files of another sampling rate to "
                            "the model's (as mmzoo.data reads a CSV's audio); without it such a file is an error")
    transcribe.add_argument("--strategy", type=_choice("--strategy", ("greedy", "beam")), default="greedy",
                            help="with a .keras model: greedy or beam-search decoding (default: %(default)s)")
    transcribe.add_argument("--beam-width", type=_positive_int, default=16,
                            help="prefixes kept by --strategy beam (default: %(default)s)")
    transcribe.set_defaults(run=_transcribe)


def _transcribe(args):
    import numpy as np

    if not os.path.exists(args.model):
        raise FileNotFoundError(f"model not found: {args.model}")
    if os.path.isdir(args.model):
        import mmzoo

        served = mmzoo.load_exported(args.model)
        if (served.metadata or {}).get("task") != "transcribe":
            raise UsageError(f"--model {args.model}: not a transcriber's export (use `mmzoo predict` for classifiers)")
        audio = served.audio_inputs()["audio"]
        waveforms = _read_speech(args.audio, audio["sample_rate"], audio["num_samples"], args.resample)
        outputs = served({"audio": waveforms})
        transcripts = [text.decode("utf-8") for text in outputs["transcript"]]
    else:
        from mmzoo.transcription.training import load_transcriber

        model = load_transcriber(args.model)
        waveforms = _read_speech(args.audio, model.sample_rate, model.num_samples, args.resample)
        outputs = model.transcribe(waveforms, strategy=args.strategy, beam_width=args.beam_width)
        transcripts = list(outputs["transcript"])
    for path, transcript, log_probability in zip(args.audio, transcripts, np.asarray(outputs["log_probability"])):
        print(f"{path}\t{transcript}\t{log_probability:.4f}")
    return 0


def _read_speech(paths, sample_rate, num_samples, resample):
    """float32 [len(paths), num_samples]: each WAV file as the transcriber takes it (`mmzoo.data.wav.load_clip`),
    a bad file named by its path. Another sampling rate is an error unless `resample` (then stderr says so); a clip
    longer than the model's is cropped, and stderr says so."""
    import numpy as np

    from mmzoo.data.wav import WavError, load_clip, wav_info

    clips = []
    for path in paths:
        try:
            info = wav_info(path)
            if info.sample_rate != sample_rate and not resample:
                raise UsageError(f"--audio {path}: a WAV file sampled at {info.sample_rate} Hz; the model takes "
                                 f"{sample_rate} Hz audio (give --resample to resample it)")
            clips.append(load_clip(path, sample_rate=sample_rate, num_samples=num_samples))
        except FileNotFoundError:
            raise UsageError(f"--audio {path}: audio file not found") from None
        except WavError as error:
            raise UsageError(f"--audio {path}: {error.reason}") from None
        if info.sample_rate != sample_rate:
            print(f"mmzoo transcribe: {path} resampled from {info.sample_rate} Hz to {sample_rate} Hz", file=sys.stderr)
        if info.duration > num_samples / sample_rate:
            print(f"mmzoo transcribe: {path} is {info.duration:.2f} s long; the model hears its first "
                  f"{num_samples / sample_rate:.2f} s", file=sys.stderr)
    return np.stack(clips).astype(np.float32)


def _train_transcriber(args):
    from mmzoo.transcription.training import train_transcriber

    for flag, attribute, unset in _NOT_FOR_CAPTIONS + (("--init", "init", None), ("--image-column", "image_column", None)):
        if getattr(args, attribute) != unset:
            raise UsageError(f"{flag} does not apply to --task transcribe; leave it out")
    args.recipe = args.recipe or DEFAULT_TRANSCRIBE_RECIPE
    args.dataset = DEFAULT_TRANSCRIBE_DATASET if args.dataset == DEFAULT_DATASET else args.dataset
    name = _run_name(args)
    result = train_transcriber(
        args.recipe, args.dataset, validation_data=args.val_data, test_data=args.test_data,
        train_split=args.train_split, validation_split=args.val_split, test_split=args.test_split,
        data_dir=args.data_dir, text_column=args.text_column[0] if args.text_column else None,
        skip_bad_rows=args.skip_bad_rows, encoding=args.encoding, batch_size=args.batch_size, epochs=args.epochs,
        learning_rate=args.learning_rate, schedule=args.schedule, seed=args.seed,
        output_dir=args.output_dir or os.path.join("runs", name), export_dir=_export_dir(args, name),
        verbose=args.verbose)
    for metric, value in result.test_metrics.items():
        print(f"  test {metric:<12}{value:.4f}" if isinstance(value, float) else f"  test {metric:<12}{value}")
    if not result.test_metrics:
        print("  no validation/test data: no WER/CER measured; give --val-data/--test-data")
    print(f"  model           {result.paths['model']}")
    if result.paths["export"]:
        print(f"  export          {result.paths['export']}")
        print(f"  try it          mmzoo transcribe --model {result.paths['export']} --audio SPEECH.wav")
    return 0


if __name__ == "__main__":
    sys.exit(main())
