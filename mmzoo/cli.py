"""The `mmzoo` command line.

    mmzoo list                                   # recipes with their towers, fusion and parameter count
    mmzoo train                                  # the main job: bundled vqa data, default recipe, export, plot
    mmzoo train --strategy multiworker           # the same on several machines (TF_CONFIG on each)
    mmzoo pretrain                               # masked modelling on captions; then mmzoo train --init
    mmzoo distill --teacher runs/<recipe>/model.keras --student-recipe small_cnn_lstm_concat
    mmzoo evaluate --model runs/<recipe>/model.keras
    mmzoo export --model runs/<recipe>/model.keras --output saved_models/<name>
    mmzoo predict --model saved_models/<recipe> --image photo.png --text "what color is the circle?"

`mmzoo train` backs up the training state after every epoch: after an interruption (even `kill -9`) the same
command continues from the last completed epoch. Bad arguments print one line on stderr and exit with status 2.
See docs/cli.md.
"""

import argparse
import csv
import json
import os
import sys
import time


DEFAULT_RECIPE = "coord_cnn_gru_glimpse"
DEFAULT_DATASET = "mmzoo_shapes/vqa"
DEFAULT_EPOCHS = 25
DEFAULT_BATCH_SIZE = 64
DEFAULT_IMAGE_SIZE = 64
DEFAULT_LEARNING_RATE = 3e-3
DEFAULT_SCHEDULE = "cosine"
DEFAULT_SEED = 0
DEFAULT_OBJECT_EPOCHS = 4
TOWER_OUTPUT_CACHE_BYTES = 2 << 30  # held in memory at most: the frozen image tower's outputs for the training data
STRATEGIES = ("default", "mirrored", "multiworker")
DEFAULT_PRETRAIN_RECIPE = "small_cnn_bilstm_attention"
DEFAULT_PRETRAIN_DATASET = "mmzoo_shapes/captions"
DEFAULT_STUDENT_RECIPE = "small_cnn_lstm_concat"
SCHEDULES = ("cosine", "constant")
OWN_DATA_SUFFIXES = (".csv", ".jsonl")

# Files `mmzoo train` writes under --output-dir.
BACKUP_DIR = "backup"
LOG_DIR = "logs"
CSV_LOG = "training_log.csv"
PLOT = "training_curves.png"
KERAS_MODEL = "model.keras"
OBJECT_WEIGHTS = "image_tower_objects.weights.h5"


class UsageError(ValueError):
    """A problem with the command line itself; reported in one line, exit status 2."""


# === Parsing ===


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (`mmzoo train: error: ...`), not usage + message."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _int_at_least(minimum, expected):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "a non-negative integer")


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _choice(flag, choices):
    def parse(text):
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    parse.__name__ = flag.lstrip("-")
    return parse


def _fraction(flag, allow_zero=False, allow_one=False):
    low, high = ("[0" if allow_zero else "(0"), ("1]" if allow_one else "1)")

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not ((0 <= value if allow_zero else 0 < value) and (value <= 1 if allow_one else value < 1)):
            raise argparse.ArgumentTypeError(f"expected a number in {low}, {high}, got {text!r}")
        return value

    parse.__name__ = flag.lstrip("-")
    return parse


def _add_data_arguments(parser):
    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"a TFDS name (default: {DEFAULT_DATASET}, bundled, generated on first use in ~30 s) "
        "or a .csv/.jsonl file of image paths, texts and labels (see docs/data.md)",
    )
    parser.add_argument("--data-dir", default=None, help="TFDS data directory (default: TFDS' own, ~/tensorflow_datasets)")
    parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, help="examples per batch (default: %(default)s)")
    return parser


def build_parser():
    parser = _Parser(prog="mmzoo", description="Multimodal (image + text) model zoo for Keras.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        help="list the registered recipes: towers, fusion, parameter count",
        description="The registered recipes with their image tower, text tower, fusion, number of parameters (for "
        "the bundled vqa data's 14 classes and 36 words) and description.",
    )
    listing.add_argument("--no-params", dest="params", action="store_false", help="skip the parameter counts")
    listing.set_defaults(run=_list)

    train = commands.add_parser(
        "train",
        help="train a recipe, report test accuracy, export a SavedModel and plot the training curves",
        description="Train a recipe on the bundled data or your own CSV/JSONL, report test accuracy, save "
        "<output-dir>/model.keras, export a SavedModel, and write TensorBoard logs, a CSV log and a PNG of the "
        "training curves. The training state is backed up after every epoch: rerun the same command after an "
        "interruption to continue from the last completed epoch. With no arguments this is the main job: "
        f"{DEFAULT_RECIPE} on {DEFAULT_DATASET}.",
    )
    train.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe to train, see `mmzoo list` (default: %(default)s)")
    _add_data_arguments(train)
    train.add_argument("--val-data", default=None, help="with a .csv/.jsonl --dataset: the validation file")
    train.add_argument("--test-data", default=None, help="with a .csv/.jsonl --dataset: the test file (default: the validation file)")
    train.add_argument("--train-split", default="train", help="TFDS split to train on, slices allowed: 'train[:5%%]' (default: %(default)s)")
    train.add_argument("--val-split", default="validation", help="TFDS validation split (default: %(default)s)")
    train.add_argument("--test-split", default="test", help="TFDS test split (default: %(default)s)")
    train.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS, help="epochs (default: %(default)s)")
    train.add_argument("--image-size", type=_positive_int, default=DEFAULT_IMAGE_SIZE, help="images are resized to this many pixels square (default: %(default)s)")
    train.add_argument("--learning-rate", type=_positive_float, default=DEFAULT_LEARNING_RATE, help="Adam learning rate; the peak of the schedule (default: %(default)s)")
    train.add_argument(
        "--schedule",
        type=_choice("--schedule", SCHEDULES),
        default=DEFAULT_SCHEDULE,
        help="learning-rate schedule: 'cosine' decays from --learning-rate to 0 over all epochs, 'constant' keeps it (default: %(default)s)",
    )
    train.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed for weights and data order (default: %(default)s)")
    train.add_argument("--output-dir", default=None, help="where the backup, logs, model.keras and plot go (default: runs/<recipe>)")
    export = train.add_mutually_exclusive_group()
    export.add_argument("--export", default=None, metavar="DIR", help="SavedModel directory; the next free version number is used (default: saved_models/<recipe>)")
    export.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: %(default)s)")
    train.add_argument(
        "--strategy",
        type=_choice("--strategy", STRATEGIES),
        default="default",
        help="tf.distribute strategy: 'default' (one device), 'mirrored' (all local GPUs, or the CPU), 'multiworker' "
        "(several machines, each runs the same command with its own TF_CONFIG; see docs/cli.md) (default: %(default)s)",
    )
    train.add_argument(
        "--object-epochs",
        type=_non_negative_int,
        default=None,
        help="first pretrain the image tower for this many epochs to tell which object lies in each cell of its token "
        "grid, from the dataset's object annotations (mmzoo.trainers.objects), then train the rest with the tower "
        f"frozen; 0 turns it off (default: {DEFAULT_OBJECT_EPOCHS} where the TFDS dataset has object annotations and "
        "the recipe's image tower gives tokens, as for the main job, and no --init; else 0)",
    )
    train.add_argument("--train-image-tower", action="store_true", help="after object pretraining, keep training the image tower with the rest instead of freezing it")
    train.add_argument("--init", default=None, metavar="MODEL.keras", help="start from the towers and fusion of a model saved by `mmzoo pretrain` (same recipe; its vocabulary is used)")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy of a trained model (.keras file or exported SavedModel) on a dataset split",
        description="Accuracy of a model on a split of a TFDS dataset or on a .csv/.jsonl file. --model is a "
        ".keras file (as `mmzoo train` saves in its output directory) or an exported SavedModel directory.",
    )
    evaluate.add_argument("--model", required=True, help="a .keras file or a SavedModel (version or model) directory")
    _add_data_arguments(evaluate)
    evaluate.add_argument("--split", default="test", help="TFDS split (default: %(default)s); ignored for .csv/.jsonl")
    evaluate.set_defaults(run=_evaluate)

    exporter = commands.add_parser(
        "export",
        help="export a .keras model as a SavedModel for serving (TF Serving layout)",
        description="Export a .keras model (e.g. runs/<recipe>/model.keras) as a SavedModel. --output is a model "
        "directory (the next free version number is used) or a version directory such as saved_models/vqa/3.",
    )
    exporter.add_argument("--model", required=True, help="the .keras file")
    exporter.add_argument("--output", required=True, help="model directory or version directory")
    exporter.add_argument("--overwrite", action="store_true", help="replace an existing version directory")
    exporter.set_defaults(run=_export)

    pretrain = commands.add_parser(
        "pretrain",
        help="masked modelling: pretrain a recipe's towers and fusion on captions (mmzoo.trainers.MaskedPretrainer)",
        description="Self-supervised pretraining (mmzoo.trainers.MaskedPretrainer): caption tokens are masked and "
        "predicted from the text after it attended to the image. Saves <output-dir>/model.keras, a classifier for "
        "--for-dataset's classes whose towers and fusion are pretrained (its head is not); fine-tune it with "
        "`mmzoo train --init <output-dir>/model.keras`. The recipe needs a token-level fusion (attention, coattention).",
    )
    pretrain.add_argument("--recipe", default=DEFAULT_PRETRAIN_RECIPE, help="recipe to pretrain (default: %(default)s)")
    pretrain.add_argument("--dataset", default=DEFAULT_PRETRAIN_DATASET, help="TFDS image + caption data (default: %(default)s)")
    pretrain.add_argument("--for-dataset", default=DEFAULT_DATASET, help="TFDS data the model will be fine-tuned on: its classes, and its words join the vocabulary (default: %(default)s)")
    pretrain.add_argument("--train-split", default="train", help="split to pretrain on (default: %(default)s)")
    pretrain.add_argument("--data-dir", default=None, help="TFDS data directory (default: TFDS' own)")
    pretrain.add_argument("--mask-rate", type=_fraction("--mask-rate"), default=0.15, help="fraction of caption tokens masked and predicted (default: %(default)s)")
    pretrain.add_argument("--image-mask-rate", type=_fraction("--image-mask-rate", allow_zero=True), default=0.0, help="fraction of image regions blanked and predicted; 0 turns it off (default: %(default)s)")
    pretrain.add_argument("--epochs", type=_positive_int, default=3, help="epochs (default: %(default)s)")
    pretrain.add_argument("--batch-size", type=_positive_int, default=32, help="examples per batch (default: %(default)s)")
    pretrain.add_argument("--image-size", type=_positive_int, default=DEFAULT_IMAGE_SIZE, help="image size in pixels (default: %(default)s)")
    pretrain.add_argument("--learning-rate", type=_positive_float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    pretrain.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    pretrain.add_argument("--output-dir", default=None, help="where model.keras and the CSV log go (default: runs/pretrain_<recipe>)")
    pretrain.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras fit verbosity (default: %(default)s)")
    pretrain.set_defaults(run=_pretrain)

    distill = commands.add_parser(
        "distill",
        help="knowledge distillation: train a student recipe from a teacher model (mmzoo.trainers.Distiller)",
        description="Train a student recipe on labels and on a frozen teacher's softened predictions "
        "(mmzoo.trainers.Distiller): loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * "
        "KL(teacher / T || student / T). The teacher is a .keras file (e.g. runs/<recipe>/model.keras) or an exported "
        "SavedModel. Reports the student's test accuracy, saves <output-dir>/model.keras and exports the student.",
    )
    distill.add_argument("--teacher", required=True, help="the teacher: a .keras file or an exported SavedModel directory")
    distill.add_argument("--student-recipe", default=DEFAULT_STUDENT_RECIPE, help="recipe of the student (default: %(default)s)")
    distill.add_argument("--alpha", type=_fraction("--alpha", allow_zero=True, allow_one=True), default=0.2, help="weight of the label loss in [0, 1] (default: %(default)s)")
    distill.add_argument("--temperature", type=_positive_float, default=4.0, help="softening temperature T > 0 (default: %(default)s)")
    _add_data_arguments(distill)
    distill.add_argument("--train-split", default="train", help="TFDS split to train on (default: %(default)s)")
    distill.add_argument("--val-split", default="validation", help="TFDS validation split (default: %(default)s)")
    distill.add_argument("--test-split", default="test", help="TFDS test split (default: %(default)s)")
    distill.add_argument("--image-size", type=_positive_int, default=None, help="image size in pixels (default: the teacher's)")
    distill.add_argument("--epochs", type=_positive_int, default=5, help="epochs (default: %(default)s)")
    distill.add_argument("--learning-rate", type=_positive_float, default=1e-3, help="Adam learning rate; the peak of the schedule (default: %(default)s)")
    distill.add_argument(
        "--schedule",
        type=_choice("--schedule", SCHEDULES),
        default="constant",
        help="learning-rate schedule: 'cosine' decays from --learning-rate to 0 over all epochs, 'constant' keeps it (default: %(default)s)",
    )
    distill.add_argument(
        "--object-epochs",
        type=_non_negative_int,
        default=None,
        help="first pretrain the student's image tower for this many epochs on the dataset's object annotations, as "
        "`mmzoo train` does, then distil into the rest with the tower frozen; 0 turns it off (default: "
        f"{DEFAULT_OBJECT_EPOCHS} where the TFDS dataset has object annotations and the student's image tower gives "
        "tokens, else 0)",
    )
    distill.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    distill.add_argument("--output-dir", default=None, help="where model.keras and the CSV log go (default: runs/distill_<student-recipe>)")
    distill_export = distill.add_mutually_exclusive_group()
    distill_export.add_argument("--export", default=None, metavar="DIR", help="SavedModel directory for the student (default: saved_models/<student-recipe>_distilled)")
    distill_export.add_argument("--no-export", action="store_true", help="do not export the student")
    distill.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras fit verbosity (default: %(default)s)")
    distill.set_defaults(run=_distill, val_data=None, test_data=None, strategy="default", train_image_tower=False)

    predict = commands.add_parser(
        "predict",
        help="answer one image + text with an exported model; prints the label and its probability",
        description="Run an exported SavedModel on one image file (JPEG, PNG, GIF or BMP) and one text. Prints "
        "the predicted label and its probability, tab-separated.",
    )
    predict.add_argument("--model", required=True, help="SavedModel version directory, or model directory (highest version)")
    predict.add_argument("--image", required=True, help="image file (JPEG, PNG, GIF, BMP)")
    predict.add_argument("--text", required=True, help="the text, e.g. a question")
    predict.set_defaults(run=_predict)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"mmzoo {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " Run the same command again to continue from the last completed epoch." if args.command == "train" else ""
        print(f"mmzoo {args.command}: interrupted.{hint}", file=sys.stderr)
        return 130


# === list ===


# Parameter counts in `mmzoo list` are for the bundled mmzoo_shapes/vqa: 14 answers, 36 words.
LIST_NUM_CLASSES = 14
LIST_VOCABULARY_SIZE = 36
LIST_IMAGE_SIZE = 32  # the towers are convolutional: their parameter count does not depend on the image size


def _list(args):
    from mmzoo.recipes import describe_recipe, get_recipe, list_models

    names = list_models()
    counts = _parameter_counts(names) if args.params else {}
    header = ("recipe", "image tower", "text tower", "fusion") + (("params",) if args.params else ())
    rows = [header]
    for name in names:
        recipe = get_recipe(name)
        row = (name, str(recipe["image_tower"]), str(recipe["text_tower"]), str(recipe["fusion"]))
        rows.append(row + ((f"{counts[name]:,}",) if args.params else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        cells = [cell.rjust(width) if j == 4 else cell.ljust(width) for j, (cell, width) in enumerate(zip(row, widths))]
        print("  ".join(cells) + "  " + ("description" if i == 0 else describe_recipe(row[0])))
    if args.params:
        print(f"\nparams: trainable and non-trainable, built for {LIST_NUM_CLASSES} classes and a {LIST_VOCABULARY_SIZE}-word "
              "vocabulary (the bundled mmzoo_shapes/vqa); the image towers' counts do not depend on the image size.")
    return 0


def _parameter_counts(names):
    """{recipe: number of parameters}, building each distinct image tower only once.

    Building ten ResNet50 graphs would take a minute on a small CPU. Each image tower is built once for its
    parameter count and output shape (remembered in a cache file, so later listings skip even that); every recipe
    is then built around a parameter-free stand-in with that output shape (so its fusion sees the real feature
    width), and the two counts are added.
    """
    import keras

    import mmzoo
    import mmzoo.classifier as classifier
    from mmzoo.recipes import build_model, get_recipe

    real_builder = classifier.build_image_tower
    cache_path = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmzoo", "tower_parameters.json")
    import hashlib

    import mmzoo.towers.image

    with open(mmzoo.towers.image.__file__, "rb") as f:  # edited towers are counted again
        source = hashlib.sha1(f.read()).hexdigest()[:12]
    version = f"mmzoo {mmzoo.__version__}, keras {keras.__version__}, towers {source}, {LIST_IMAGE_SIZE} px"
    cache = _read_json(cache_path)
    towers = cache.get(version, {}) if isinstance(cache, dict) else {}  # tower -> [parameters, tokens output shape]
    known = len(towers)

    def stand_in(tower, *, image_size, output, name, **kwargs):
        if tower not in towers or kwargs.get("weights") is not None:
            real = real_builder(tower, image_size=image_size, output="tokens", name=name, **kwargs)
            towers[tower] = [real.count_params(), list(real.output.shape[1:])]
        steps, width = towers[tower][1]
        pixels = keras.Input((image_size, image_size, 3))
        x = keras.layers.GlobalAveragePooling2D()(pixels)  # (batch, 3) -> (batch, width), no weights
        x = keras.layers.Reshape((3, 1))(x)
        x = keras.layers.ZeroPadding1D((0, width - 3))(x)
        x = keras.layers.Reshape((width,))(x)
        if output == "tokens":
            x = keras.layers.RepeatVector(steps)(x)
        return keras.Model(pixels, x, name=name)

    vocabulary = [f"word{i}" for i in range(LIST_VOCABULARY_SIZE)]
    counts = {}
    classifier.build_image_tower = stand_in
    try:
        for name in names:
            model = build_model(name, num_classes=LIST_NUM_CLASSES, vocabulary=vocabulary, image_size=LIST_IMAGE_SIZE)
            tower = get_recipe(name)["image_tower"]
            counts[name] = model.count_params() + (towers[tower][0] if tower is not None else 0)
    finally:
        classifier.build_image_tower = real_builder
    if len(towers) > known:
        try:
            os.makedirs(os.path.dirname(cache_path), exist_ok=True)
            with open(cache_path + ".tmp", "w") as f:
                json.dump({version: towers}, f)
            os.replace(cache_path + ".tmp", cache_path)
        except OSError:
            pass  # a read-only home: count again next time
    return counts


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# === Data ===


def _is_own_data(dataset):
    return dataset.lower().endswith(OWN_DATA_SUFFIXES)


def _load_own(path, *, image_size, batch_size, shuffle=False, seed=None, class_names=None, with_info=False):
    import mmzoo.data

    loader = mmzoo.data.from_jsonl if path.lower().endswith(".jsonl") else mmzoo.data.from_csv
    return loader(
        path,
        image_size=image_size,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        class_names=class_names,
        with_info=with_info,
    )


def _training_data(args):
    """(train, validation or None, test or None, DataInfo, where the test accuracy comes from)."""
    import mmzoo.data

    if _is_own_data(args.dataset):
        train, info = _load_own(
            args.dataset, image_size=args.image_size, batch_size=args.batch_size, shuffle=True, seed=args.seed, with_info=True
        )
        names = list(info.class_names)
        val = test = None
        if args.val_data:
            val = _load_own(args.val_data, image_size=args.image_size, batch_size=args.batch_size, class_names=names)
        test_path = args.test_data or args.val_data
        if args.test_data:
            test = _load_own(args.test_data, image_size=args.image_size, batch_size=args.batch_size, class_names=names)
        else:
            test = val
        return train, val, test, info, test_path
    for flag, value in (("--val-data", args.val_data), ("--test-data", args.test_data)):
        if value:
            raise UsageError(f"{flag} goes with a .csv/.jsonl --dataset; {args.dataset!r} is a TFDS name (use --val-split/--test-split)")
    common = dict(batch_size=args.batch_size, image_size=args.image_size, data_dir=args.data_dir)
    train, info = mmzoo.data.load(args.dataset, args.train_split, seed=args.seed, with_info=True, **common)
    val = mmzoo.data.load(args.dataset, args.val_split, **common)
    test = mmzoo.data.load(args.dataset, args.test_split, **common)
    return train, val, test, info, f"{args.dataset} {args.test_split}"


# === train ===


def _train(args):
    run_training(args)
    return 0


def run_training(args):
    """`mmzoo train` with parsed `args`; returns the trained full model (raw inputs; shares the backbone's weights).

    The numeric backbone (`mmzoo.get_backbone`) is compiled and fitted inside the strategy's scope on datasets
    whose text the model's own vectorizer (`mmzoo.get_vectorizer`) turns into token ids in the tf.data pipeline:
    strings cannot be replicated by tf.distribute (DESIGN.md section 4). Under `--strategy multiworker` every
    worker runs this; only the chief writes the outputs, the other workers write theirs to a temporary directory
    that they remove at the end.
    """
    # The strategy first: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
    strategy, worker = _make_strategy(args.strategy)
    import keras

    import mmzoo

    mmzoo.get_recipe(args.recipe)  # unknown recipe: one line, before any data is built
    for flag in ("val_data", "test_data"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"--{flag.replace('_', '-')} file not found: {path}")
    chief_output_dir = args.output_dir or os.path.join("runs", args.recipe)
    export_dir = None if args.no_export else (args.export or os.path.join("saved_models", args.recipe))
    output_dir = chief_output_dir
    if not worker.is_chief:
        # As Keras' multi-worker guide does: a non-chief worker writes to a directory of its own (its backup lets
        # it resume too) and deletes what it wrote once training has finished.
        output_dir = os.path.join(chief_output_dir, f"workertemp_{worker.task_id}")
        export_dir = None if export_dir is None else os.path.join(output_dir, "export")
    say = print if worker.is_chief else (lambda *a, **k: None)
    started = time.perf_counter()

    keras.utils.set_random_seed(args.seed)
    train, val, test, info, test_source = _training_data(args)
    say(
        f"Training {args.recipe} on {info.name} ({info.num_examples} examples, {info.num_classes} classes, "
        f"{len(info.vocabulary)} words, {args.image_size} px) for {args.epochs} epochs"
        + (f" with {worker.description}" if args.strategy != "default" else "")
        + f"; writing to {output_dir}"
    )
    if not worker.is_chief:
        print(f"{worker.description}: training; the chief writes the outputs (this worker's backup: {output_dir})")
    steps_per_epoch = -(-info.num_examples // args.batch_size) if info.num_examples else None
    init = getattr(args, "init", None)
    pretrained = _load_keras(init) if init else None
    with strategy.scope():
        options = info.model_kwargs()
        if pretrained is not None:  # token ids must mean the same words as in pretraining
            options["vocabulary"] = mmzoo.get_vectorizer(pretrained).get_vocabulary(include_special_tokens=False)
        model = mmzoo.build_model(args.recipe, **options)
        if pretrained is not None:
            copied = _copy_pretrained(pretrained, model, init)
            say(f"Initialized {len(copied)} layers from {init}: {', '.join(copied)}")
    object_epochs = _object_epochs(args, model)
    if object_epochs:
        _pretrain_objects(args, model, strategy, output_dir, object_epochs, verbose=args.verbose if worker.is_chief else 0, say=say)
        if not args.train_image_tower:
            mmzoo.get_image_tower(model).trainable = False  # before compile: the optimizer then skips it
    # A frozen tower gives the same tokens every epoch: compute them once and fit the rest of the backbone on them
    # (on the bundled data 10 000 x 64 x 130 floats, 333 MB; larger data keeps running the tower every epoch).
    fit_on_tower_outputs = (bool(object_epochs) and not args.train_image_tower and args.strategy != "multiworker"
                    and _tower_output_bytes(model, info.num_examples) <= TOWER_OUTPUT_CACHE_BYTES)
    with strategy.scope():
        backbone = mmzoo.get_backbone(model)
        fitted = mmzoo.get_feature_model(model) if fit_on_tower_outputs else backbone
        optimizer = keras.optimizers.Adam(_learning_rate(args, steps_per_epoch))
        # One optimizer for both: the same trainable weights, and the saved model keeps the state that trained them.
        # Keras' Adam, not mmzoo's fused one: the main job's measured accuracy (docs/cli.md) was obtained with it.
        for compiled in {id(backbone): backbone, id(fitted): fitted}.values():
            mmzoo.compile_model(
                compiled,
                optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # the models return logits
                metrics=["accuracy"],
            )
    vectorize = _vectorize_text(mmzoo.get_vectorizer(model), sharded=args.strategy == "multiworker")
    train, val, test = (None if ds is None else vectorize(ds) for ds in (train, val, test))
    if args.strategy == "multiworker":
        _build_for_multiworker(backbone, strategy, train.element_spec)

    os.makedirs(output_dir, exist_ok=True)
    backup_dir = os.path.join(output_dir, BACKUP_DIR)
    csv_path = os.path.join(output_dir, CSV_LOG)
    resume_epoch = _resume_epoch(backup_dir)
    if resume_epoch >= args.epochs:
        # An earlier run was killed after its last epoch's backup but before it finished: nothing left to fit.
        say(f"Resuming: all {args.epochs} epochs were already completed; finishing the run.")
    elif resume_epoch:
        say(f"Resuming from the backup in {backup_dir}: epoch {resume_epoch + 1} of {args.epochs}.")
    _trim_csv_log(csv_path, resume_epoch)
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        # The CSV row of an epoch is written before its backup: a kill in between repeats that epoch, whose
        # earlier row `_trim_csv_log` drops on resume, instead of leaving a gap.
        keras.callbacks.CSVLogger(csv_path, append=True),
        keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True),
    ]
    tensorboard_note = None
    if worker.is_chief:
        tensorboard_note = _tensorboard_callback(callbacks, os.path.join(output_dir, LOG_DIR))
        if tensorboard_note:
            print(tensorboard_note)

    if fit_on_tower_outputs and resume_epoch < args.epochs:
        tower = mmzoo.get_image_tower(model)
        say("Computing the frozen image tower's outputs once for all epochs.")
        train = _with_tower_outputs(tower, train, batch_size=args.batch_size, shuffle_seed=args.seed)
        val = None if val is None else _with_tower_outputs(tower, val, batch_size=args.batch_size)
    fitted.fit(
        train,
        validation_data=val,
        epochs=args.epochs,
        callbacks=callbacks,
        verbose=args.verbose if worker.is_chief else 0,
    )
    log = _read_csv_log(csv_path)
    if log and any(_is_nan(row.get("loss")) for row in log):
        raise _TrainingFailed(f"the loss became NaN and training stopped; try a smaller --learning-rate (it was {args.learning_rate})")

    # Every worker evaluates and saves (evaluation and reading some variables are collective operations that
    # all workers must join); a non-chief's files go to its temporary directory.
    accuracy = None
    if test is not None:
        results = backbone.evaluate(test, verbose=0, return_dict=True)
        accuracy = results["accuracy"]
        say(f"Test accuracy: {accuracy:.4f} ({test_source}), loss {results['loss']:.4f}")
    else:
        say("No test data (give --val-data or --test-data with a .csv/.jsonl dataset); test accuracy not measured.")
    model_path = os.path.join(output_dir, KERAS_MODEL)
    model.save(model_path)
    export_path = mmzoo.export_model(model, export_dir) if export_dir else None
    if not worker.is_chief:
        import shutil

        shutil.rmtree(output_dir, ignore_errors=True)
        print(f"{worker.description}: done; removed {output_dir}")
        return model
    plot_path = _plot(log, os.path.join(output_dir, PLOT), title=f"{args.recipe} on {info.name}")

    minutes, seconds = divmod(time.perf_counter() - started, 60)
    print()
    print(f"Done in {int(minutes)} min {seconds:.0f} s.")
    if accuracy is not None:
        print(f"  test accuracy   {accuracy:.2%}")
    print(f"  keras model     {model_path}")
    print(f"  SavedModel      {export_path or '(not exported: --no-export)'}")
    print(f"  training curves {plot_path or '(not plotted: matplotlib is not installed)'}")
    print(f"  logs            {csv_path}" + (f", TensorBoard: tensorboard --logdir {os.path.join(output_dir, LOG_DIR)}" if not tensorboard_note else ""))
    if export_path:
        print(f'  try it          mmzoo predict --model {export_path} --image IMAGE.png --text "what color is the circle?"')
    return model


def _object_epochs(args, model):
    """--object-epochs, with its default resolved: on where the data has object annotations and the tower tokens."""
    from mmzoo.data.objects import has_object_annotations
    from mmzoo.trainers.objects import grid_size

    requested = getattr(args, "object_epochs", 0)
    if requested == 0:
        return 0
    reasons = []
    if _is_own_data(args.dataset):
        reasons.append(f"{args.dataset} is a .csv/.jsonl file, which has no object annotations")
    elif not has_object_annotations(args.dataset, data_dir=args.data_dir):
        reasons.append(f"{args.dataset} has no `objects` feature with boxes and class labels")
    try:
        grid_size(model)
    except ValueError:
        reasons.append(f"recipe {model.name}'s image tower gives no square token grid (its fusion pools the image)")
    if args.strategy == "multiworker":
        reasons.append("it is not supported with --strategy multiworker")
    if reasons:
        if requested is None:
            return 0
        raise UsageError(f"--object-epochs {requested}: object pretraining is not possible here: {'; '.join(reasons)}")
    if requested is None and getattr(args, "init", None):
        return 0  # the towers come pretrained from --init; keep them as they are unless asked
    return DEFAULT_OBJECT_EPOCHS if requested is None else requested


def _pretrain_objects(args, model, strategy, output_dir, epochs, *, verbose, say):
    """Object-grid pretraining of `model`'s image tower (mmzoo.trainers.objects). Its result is saved under
    `output_dir`, so a resumed run loads it instead of training it again."""
    import keras

    import mmzoo
    import mmzoo.data
    from mmzoo.trainers.objects import build_object_grid_model, grid_size

    tower = mmzoo.get_image_tower(model)
    path = os.path.join(output_dir, OBJECT_WEIGHTS)
    if os.path.isfile(path) and _readable_h5(path):
        tower.load_weights(path)
        say(f"Image tower: object pretraining loaded from {path} (an earlier run of this command).")
        return
    side = grid_size(model)
    objects, num_classes = mmzoo.data.load_object_grid(
        args.dataset, args.train_split, grid_size=side, batch_size=args.batch_size, image_size=args.image_size,
        seed=args.seed, data_dir=args.data_dir)
    with strategy.scope():
        grid_model = build_object_grid_model(model, num_classes)
        # Decayed like the main training (unknown cardinality, -2, keeps it constant): the last epochs refine.
        learning_rate = _learning_rate(args, int(objects.cardinality()), epochs=epochs)
        mmzoo.compile_model(
            grid_model,
            keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    say(f"Object pretraining of the image tower: {epochs} epoch(s), which of {num_classes - 1} object classes (or "
        f"none) has its centre in each of the {side}x{side} cells; the tower is then "
        + ("trained on with the rest." if args.train_image_tower else "frozen."))
    history = grid_model.fit(objects, epochs=epochs, verbose=verbose)
    say(f"Object pretraining: cell accuracy {history.history['accuracy'][-1]:.4f} in the last epoch.")
    os.makedirs(output_dir, exist_ok=True)
    partial = os.path.join(output_dir, "partial_" + OBJECT_WEIGHTS)
    tower.save_weights(partial)
    os.replace(partial, path)  # atomic: a kill leaves either no file or a whole one


def _copy_pretrained(source, target, path):
    """Copy every weighted backbone layer but the head from `source` into `target`, by name; their names."""
    import mmzoo

    source_backbone, target_backbone = mmzoo.get_backbone(source), mmzoo.get_backbone(target)
    copied = []
    for layer in source_backbone.layers:
        if not layer.weights or layer.name == "head":
            continue
        try:
            twin = target_backbone.get_layer(layer.name)
        except ValueError:
            raise UsageError(f"--init {path}: the model has a layer '{layer.name}' that recipe {target.name} lacks; pretrain the same recipe") from None
        if [w.shape for w in twin.weights] != [w.shape for w in layer.weights]:
            raise UsageError(f"--init {path}: layer '{layer.name}' has other shapes than in recipe {target.name} (different image size or recipe options?)")
        twin.set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied


def _learning_rate(args, steps_per_epoch, epochs=None):
    """--learning-rate under --schedule, over `epochs` (default --epochs) of `steps_per_epoch` steps."""
    if args.schedule == "constant" or not steps_per_epoch or steps_per_epoch < 0:
        return args.learning_rate
    import keras

    # Keyed on the optimizer's step count, which the backup restores: a resumed run continues the same curve.
    return keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=(epochs or args.epochs) * steps_per_epoch)


def _build_for_multiworker(backbone, strategy, element_spec):
    """Work around two Keras 3.15 failures of fit/evaluate under MultiWorkerMirroredStrategy (instance patches).

    1. The TensorFlow trainer builds the metrics and optimizer from the first distributed batch, which it
       averages with `strategy.reduce`; MultiWorkerMirroredStrategy reduces one tensor, not a dict of inputs
       ("Attempt to convert a value ({'image': PerReplica...}) to a Tensor"). Built here from the data's tensor
       specs, nothing is left for that step, which is skipped.
    2. It averages each step's logs across workers with `strategy.reduce("MEAN", v, axis=0)`, but the logs are
       scalars ("Invalid reduction dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388). The
       steps here return them with a batch axis of one, which that reduction averages back to a scalar.
    """
    from keras import ops

    with strategy.scope():
        backbone._symbolic_build(data_batch=element_spec)
    backbone._maybe_symbolic_build = lambda iterator=None, data_batch=None: None

    def with_batch_axis(step):
        def wrapped(data):
            logs = step(data)
            return {key: ops.reshape(value, (1,)) if len(value.shape) == 0 else value for key, value in logs.items()}

        return wrapped

    backbone.train_step = with_batch_axis(backbone.train_step)
    backbone.test_step = with_batch_axis(backbone.test_step)


def _tower_output_bytes(model, num_examples):
    import math

    import mmzoo

    if not num_examples:
        return math.inf  # unknown: do not risk it
    return num_examples * math.prod(mmzoo.get_image_tower(model).output.shape[1:]) * 4


def _with_tower_outputs(tower, ds, *, batch_size, shuffle_seed=None):
    """`ds` of ({"image", "token_ids"}, label) with each image replaced by `tower`'s output, computed in one pass and
    held in memory (what `mmzoo.get_feature_model` trains on); reshuffled every epoch when `shuffle_seed` is given."""
    import numpy as np
    import tensorflow as tf

    forward = tf.function(lambda images: tower(images, training=False))
    columns = {"image": [], "token_ids": [], "label": []}
    for features, label in ds:
        columns["image"].append(forward(features["image"]).numpy())
        columns["token_ids"].append(features["token_ids"].numpy())
        columns["label"].append(label.numpy())
    columns = {key: np.concatenate(parts) for key, parts in columns.items()}
    label = columns.pop("label")
    cached = tf.data.Dataset.from_tensor_slices((columns, label))
    if shuffle_seed is not None:
        cached = cached.shuffle(len(label), seed=shuffle_seed, reshuffle_each_iteration=True)
    return cached.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _vectorize_text(vectorizer, *, sharded):
    """A function mapping a dataset of ({"image", "text"}, label) to ({"image", "token_ids"}, label)."""
    import tensorflow as tf

    def to_token_ids(features, label):
        return {"image": features["image"], "token_ids": vectorizer(features["text"])}, label

    def vectorize(ds):
        ds = ds.map(to_token_ids, num_parallel_calls=tf.data.AUTOTUNE)
        if sharded:
            # Every worker builds the same, identically seeded pipeline and keeps its share of the batches
            # (mmzoo_shapes has fewer files than a cluster may have workers, so sharding by file is out).
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            ds = ds.with_options(options)
        return ds

    return vectorize


class _Worker:
    """Where this process stands in a cluster: chief or not, and a name for messages."""

    def __init__(self, is_chief=True, task_type=None, task_id=0, num_workers=1, replicas=1):
        self.is_chief, self.task_type, self.task_id, self.num_workers = is_chief, task_type, task_id, num_workers
        self.replicas = replicas

    @property
    def description(self):
        if self.task_type is None:
            return f"MirroredStrategy ({self.replicas} replica{'s' if self.replicas != 1 else ''})"
        return f"{self.task_type} {self.task_id} of a {self.num_workers}-worker cluster"


def _make_strategy(name):
    """(tf.distribute strategy, _Worker) for --strategy `name`."""
    if name == "multiworker":
        cluster, task_type, task_id = _read_tf_config()
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy(), _Worker()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        return strategy, _Worker(replicas=strategy.num_replicas_in_sync)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    # The chief is the "chief" task if the cluster has one, else worker 0 (as in Keras' multi-worker guide).
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    num_workers = sum(len(cluster.get(kind, ())) for kind in ("chief", "worker"))
    return strategy, _Worker(is_chief, task_type, task_id, num_workers)


def _read_tf_config():
    """(cluster, task type, task index) from the TF_CONFIG environment variable, checked; one-line errors."""
    text = os.environ.get("TF_CONFIG")
    example = '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
    if not text:
        raise UsageError(f"--strategy multiworker reads the cluster from the TF_CONFIG environment variable, which is not set; e.g. TF_CONFIG={example}")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        task_type, task_id = task["type"], int(task["index"])
        workers = cluster[task_type]
        if not isinstance(workers, list) or not 0 <= task_id < len(workers):
            raise KeyError("index")
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            f"TF_CONFIG must be JSON with a \"cluster\" of host:port lists and this process's \"task\" (its type and "
            f"index in that list), e.g. {example}. Received: TF_CONFIG={text!r}"
        ) from None
    return cluster, task_type, task_id


class _TrainingFailed(ValueError):
    pass


def _tensorboard_callback(callbacks, log_dir):
    """Append a TensorBoard callback; return a one-line note instead if TensorBoard is not installed."""
    import keras

    try:
        import tensorboard  # noqa: F401  (tf.summary.scalar needs it; TensorFlow 2.21 does not depend on it)
    except ImportError:
        return "TensorBoard logs skipped: the tensorboard package is not installed (pip install tensorboard)."
    callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False))
    return None


def _resume_epoch(backup_dir):
    """The epoch BackupAndRestore will continue from (0: fresh start), choosing the files it will load.

    Mirrors its fallback to the previous backup (`double_checkpoint=True`) when the latest weights are unreadable
    (the process was killed while writing them), and repairs a metadata file cut short by a kill, which Keras
    itself would fail on.
    """
    weights = os.path.join(backup_dir, "latest.weights.h5")
    metadata = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(weights) and not os.path.exists(metadata):
        return 0
    epoch = _read_epoch(metadata)
    if not _readable_h5(weights) or epoch is None:
        if _readable_h5(weights + ".bkp") and _read_epoch(metadata + ".bkp") is not None:
            import shutil

            shutil.copyfile(weights + ".bkp", weights)
            shutil.copyfile(metadata + ".bkp", metadata)
            return _read_epoch(metadata)
        raise UsageError(
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


def _readable_h5(path):
    if not os.path.exists(path):
        return False
    try:
        import h5py

        with h5py.File(path, "r"):
            return True
    except Exception:  # noqa: BLE001  (h5py raises OSError and others on a truncated file)
        return False


def _trim_csv_log(path, resume_epoch):
    """Keep the rows of epochs before `resume_epoch` (all of them on a fresh start: none)."""
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


def _read_csv_log(path):
    """The CSV log as a list of {column: float} dicts, one per epoch (the last row of any repeated epoch)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        by_epoch = {}
        for row in csv.DictReader(f):
            try:
                by_epoch[int(row["epoch"])] = {key: float(value) for key, value in row.items() if value not in ("", None)}
            except (KeyError, ValueError, TypeError):
                continue
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _is_nan(value):
    return value is not None and value != value


def _plot(log, path, *, title):
    """PNG of loss and accuracy per epoch (train and validation); None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("Training curves not plotted: matplotlib is not installed (pip install matplotlib).")
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


# === pretrain ===


def _pretrain(args):
    import keras

    import mmzoo
    import mmzoo.data
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
    if any(_is_nan(row.get("loss")) for row in _read_csv_log(csv_path)):
        raise _TrainingFailed(f"the loss became NaN; try a smaller --learning-rate (it was {args.learning_rate})")
    model_path = os.path.join(output_dir, KERAS_MODEL)
    model.save(model_path)
    print(f"Saved the pretrained {args.recipe} (towers and fusion pretrained, head untrained) to {model_path}")
    print(f"  fine-tune it    mmzoo train --recipe {args.recipe} --dataset {args.for_dataset} --image-size {args.image_size} --init {model_path}")
    return 0


# === distill ===


def _distill(args):
    import keras
    import tensorflow as tf

    import mmzoo
    from mmzoo.trainers import Distiller

    mmzoo.get_recipe(args.student_recipe)
    teacher, kind = _load_any_model(args.teacher)
    teacher_size = teacher.input["image"].shape[1] if kind == "keras" and "image" in teacher.input else None
    if kind == "exported":
        try:
            teacher_size = _exported_image_size(teacher)
        except UsageError:
            teacher_size = None
    if args.image_size is None:
        args.image_size = teacher_size or DEFAULT_IMAGE_SIZE  # the data at the teacher's image size
    elif teacher_size and args.image_size != teacher_size:
        raise UsageError(f"--image-size {args.image_size}: the teacher takes {teacher_size} px images; leave --image-size out")
    output_dir = args.output_dir or os.path.join("runs", f"distill_{args.student_recipe}")
    export_dir = None if args.no_export else (args.export or os.path.join("saved_models", f"{args.student_recipe}_distilled"))
    keras.utils.set_random_seed(args.seed)
    train, val, test, info, test_source = _training_data(args)
    student = mmzoo.build_model(args.student_recipe, **info.model_kwargs())
    object_epochs = _object_epochs(args, student)
    print(f"Distilling {args.teacher} into {args.student_recipe} on {info.name} ({info.num_examples} examples, "
          f"{args.image_size} px), alpha {args.alpha}, temperature {args.temperature}, {args.epochs} epochs; writing to {output_dir}")
    if object_epochs:
        # Seeing from the object annotations, answering from labels and teacher: without it a token-grid student
        # does not learn to find objects from 2 000 labelled examples, and no teacher helps it (docs/trainers.md).
        _pretrain_objects(args, student, tf.distribute.get_strategy(), output_dir, object_epochs, verbose=args.verbose, say=print)
        mmzoo.get_image_tower(student).trainable = False
    distiller = Distiller(teacher=teacher if kind == "keras" else args.teacher, student=student, alpha=args.alpha, temperature=args.temperature)
    steps_per_epoch = -(-info.num_examples // args.batch_size) if info.num_examples else None
    distiller.compile(optimizer=keras.optimizers.Adam(_learning_rate(args, steps_per_epoch)))
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, CSV_LOG)
    callbacks = [keras.callbacks.TerminateOnNaN(), keras.callbacks.CSVLogger(csv_path)]
    distiller.fit(train, validation_data=val, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose)
    if any(_is_nan(row.get("loss")) for row in _read_csv_log(csv_path)):
        raise _TrainingFailed(f"the loss became NaN; try a smaller --learning-rate (it was {args.learning_rate})")
    student.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    if test is not None:
        accuracy = student.evaluate(test, verbose=0, return_dict=True)["accuracy"]
        print(f"Student test accuracy: {accuracy:.4f} ({test_source})")
    model_path = os.path.join(output_dir, KERAS_MODEL)
    student.save(model_path)
    export_path = mmzoo.export_model(student, export_dir) if export_dir else None
    print(f"  student model   {model_path}")
    print(f"  SavedModel      {export_path or '(not exported: --no-export)'}")
    return 0


# === evaluate ===


def _evaluate(args):
    import numpy as np

    model, kind = _load_any_model(args.model)
    if kind == "keras":
        from mmzoo.heads import find_class_names

        image_size = model.input["image"].shape[1]
        class_names = find_class_names(model)
    else:
        image_size = _exported_image_size(model)
        class_names = None
    if _is_own_data(args.dataset):
        data, info = _load_own(
            args.dataset, image_size=image_size, batch_size=args.batch_size, class_names=class_names, with_info=True
        )
        source = args.dataset
    else:
        import mmzoo.data

        data, info = mmzoo.data.load(
            args.dataset, args.split, batch_size=args.batch_size, image_size=image_size, data_dir=args.data_dir, with_info=True
        )
        source = f"{args.dataset} {args.split}"
    correct = total = 0
    names = np.array(info.class_names)
    for features, labels in data:
        labels = labels.numpy()
        if kind == "keras":
            predicted = np.argmax(np.asarray(model(features, training=False)), axis=-1)
            correct += int(np.sum(predicted == labels))
        else:
            outputs = model({"image": features["image"].numpy(), "text": features["text"].numpy()})
            if "label" in outputs:  # compare names: the export's class order need not be the data's
                correct += int(np.sum(outputs["label"] == names[labels]))
            else:
                correct += int(np.sum(np.argmax(outputs["probabilities"], axis=-1) == labels))
        total += len(labels)
    accuracy = correct / max(total, 1)
    print(f"Accuracy: {accuracy:.4f} on {source} ({info.num_examples} examples)")
    return 0


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


def _exported_image_size(exported):
    spec = exported.signatures["serving_default"].structured_input_signature[1].get("image")
    if spec is None:
        raise UsageError(f"the SavedModel at {exported.path} has no 'image' input")
    return int(spec.shape[1])


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
    import tensorflow as tf

    import mmzoo

    if not os.path.isfile(args.image):
        raise FileNotFoundError(f"image file not found: {args.image}")
    if not os.path.exists(args.model):
        raise FileNotFoundError(f"model not found: {args.model}")
    served = mmzoo.load_exported(args.model)
    with open(args.image, "rb") as f:
        encoded = f.read()
    try:
        outputs = served.predict_image_bytes({"image_bytes": [encoded], "text": [args.text]})
    except tf.errors.InvalidArgumentError:
        raise UsageError(f"{args.image} is not a JPEG, PNG, GIF or BMP image") from None
    probabilities = outputs["probabilities"][0]
    best = int(np.argmax(probabilities))
    label = outputs["label"][0] if "label" in outputs else str(best)
    print(f"{label}\t{probabilities[best]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
