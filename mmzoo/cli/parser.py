"""The `mmzoo` argument parser: one sub-command each, with its options, help and the function that runs it."""

from mmzoo.cli.arguments import (Parser, auto_or, choice, column_names, fraction, named_value, positive_float,
                                 positive_int, tower_names)
from mmzoo.cli.defaults import (CAPTION_AUTO_EPOCHS, DEFAULT_BATCH_SIZE, DEFAULT_CAPTION_DATASET,
                                DEFAULT_CAPTION_RECIPE, DEFAULT_DATASET, DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULT_PRETRAIN_DATASET,
                                DEFAULT_PRETRAIN_RECIPE, DEFAULT_RECIPE, DEFAULT_SCHEDULE, DEFAULT_SEED,
                                DEFAULT_STUDENT_RECIPE, DEFAULT_TRANSCRIBE_DATASET, DEFAULT_TRANSCRIBE_RECIPE,
                                TRANSCRIBE_BATCH_SIZE)
from mmzoo.cli.distill import distill_command
from mmzoo.cli.evaluate import evaluate_command, robustness_command
from mmzoo.cli.generate import caption_command, transcribe_command
from mmzoo.cli.listing import list_command
from mmzoo.cli.models import export_command
from mmzoo.cli.options import (data_options, file_options, object_options, output_options, split_options,
                               training_options)
from mmzoo.cli.predict import predict_command
from mmzoo.cli.pretrain import pretrain_command
from mmzoo.cli.train import train_command
from mmzoo.distribute import STRATEGIES


def build_parser():
    parser = Parser(prog="mmzoo", description="Multimodal (image + text) model zoo for Keras.")
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
    listing.set_defaults(run=list_command)


def _add_train(commands):
    train = commands.add_parser(
        "train", help="train a recipe, report test accuracy, export a SavedModel and plot the training curves",
        # --batch-size None, resolved per task in train_command: a transcriber learns more per epoch from smaller batches.
        parents=[data_options(batch_size=None, batch_size_help=f"examples per batch (default: {DEFAULT_BATCH_SIZE}; "
                               f"with --task transcribe: {TRANSCRIBE_BATCH_SIZE})"), file_options(), split_options(),
                 training_options(epochs=DEFAULT_EPOCHS, learning_rate=DEFAULT_LEARNING_RATE, schedule=DEFAULT_SCHEDULE),
                 object_options("the image tower", "train the rest with the tower frozen"),
                 output_options("runs/<recipe>[_<data>]", "the backup, logs, model.keras and plot",
                                 "saved_models/<recipe>[_<data>]")],
        description="Train a recipe on the bundled data or your own CSV/JSONL (mmzoo.train), report test accuracy, "
        "save <output-dir>/model.keras, export a SavedModel, and write TensorBoard logs, a CSV log and a PNG of the "
        "training curves. The training state is backed up after every epoch: rerun the same command after an "
        "interruption to continue from the last completed epoch. With no arguments this is the main job: "
        f"{DEFAULT_RECIPE} on {DEFAULT_DATASET}.")
    # None, not the classifier default: with --task caption an explicit --recipe must be told from one not given.
    train.add_argument("--recipe", default=None, help=f"recipe to train, see `mmzoo list` (default: {DEFAULT_RECIPE}; "
                       f"with --task caption: {DEFAULT_CAPTION_RECIPE})")
    train.add_argument("--val-fraction", type=auto_or(fraction("--val-fraction", allow_zero=True)), default="auto",
                       help="with a .csv/.jsonl --dataset and no --val-data: the fraction of its rows held out for "
                       "validation and early stopping (and test, without --test-data); 'auto': 0.1 (default: "
                       "%(default)s)")
    train.add_argument("--task", type=choice("--task", ("classify", "caption", "transcribe")), default="classify",
                       help="'classify' (answers), 'caption' (generate captions: a captioning recipe, default "
                       f"{DEFAULT_CAPTION_RECIPE}, on {DEFAULT_CAPTION_DATASET} or a .csv/.jsonl of image and caption "
                       f"columns; --epochs auto is {CAPTION_AUTO_EPOCHS}; see docs/captioning.md) or 'transcribe' "
                       f"(speech to text: a transcription recipe, default {DEFAULT_TRANSCRIBE_RECIPE}, on "
                       f"{DEFAULT_TRANSCRIBE_DATASET} or a .csv/.jsonl of WAV paths ('audio' column) and transcripts "
                       "('text', or --text-column); see docs/transcription.md); with 'caption' and 'transcribe', "
                       "--strategy, --patience, --val-fraction, --towers, --fusion, --object-epochs and "
                       "--train-image-tower do not apply (default: %(default)s)")
    train.add_argument(
        "--strategy", type=choice("--strategy", STRATEGIES), default="default",
        help="tf.distribute strategy: 'default' (one device), 'mirrored' (all local GPUs, or the CPU), 'multiworker' "
        "(several machines, each runs the same command with its own TF_CONFIG; see docs/cli.md) (default: %(default)s)")
    train.add_argument("--train-image-tower", action="store_true",
                       help="after object pretraining, keep training the image tower with the rest instead of freezing it")
    train.add_argument("--init", default=None, metavar="MODEL.keras",
                       help="start from the towers and fusion of a model saved by `mmzoo pretrain` (same recipe; its vocabulary is used)")
    _model_input_options(train)
    train.set_defaults(run=train_command)


def _model_input_options(train):
    inputs = train.add_argument_group(
        "inputs", "Which columns of a .csv/.jsonl --dataset the model reads, and a tower for each. One image and one "
        "text column are the inputs 'image' and 'text' of a recipe; with several columns, or with --towers, each "
        "input is named after its column.")
    inputs.add_argument("--image-column", type=column_names, default=None, metavar="COLUMNS",
                        help="column(s) holding image paths, comma-separated; '' for none (default: image)")
    inputs.add_argument("--text-column", type=column_names, default=None, metavar="COLUMNS",
                        help="column(s) holding texts, comma-separated; '' for none (default: text)")
    inputs.add_argument("--towers", type=tower_names, default=None, metavar="NAME=TOWER,...",
                        help="one tower per input of the data, e.g. front=small_cnn,side=small_cnn,question=gru, "
                        "instead of the recipe's image and text towers (the recipe still gives the fusion and widths; "
                        "towers: mmzoo.list_towers())")
    inputs.add_argument("--fusion", default=None,
                        help="fusion joining the towers (default: the recipe's; none for a single tower); a fusion "
                        "other than the recipe's leaves out the options the recipe sets for its own")


def _add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate", help="accuracy of a trained model (.keras file or exported SavedModel) on a dataset split",
        parents=[data_options(), file_options()],
        description="Accuracy of a model on a split of a TFDS dataset or on a .csv/.jsonl file. --model is a "
        ".keras file (as `mmzoo train` saves in its output directory) or an exported SavedModel directory.")
    evaluate.add_argument("--model", required=True, help="a .keras file or a SavedModel (version or model) directory")
    evaluate.add_argument("--split", default="test", help="TFDS split (default: %(default)s); ignored for .csv/.jsonl")
    evaluate.set_defaults(run=evaluate_command)


def _add_export(commands):
    exporter = commands.add_parser(
        "export", help="export a .keras model as a SavedModel for serving (TF Serving layout)",
        description="Export a .keras model (e.g. runs/<recipe>/model.keras) as a SavedModel. --output is a model "
        "directory (the next free version number is used) or a version directory such as saved_models/vqa/3.")
    exporter.add_argument("--model", required=True, help="the .keras file")
    exporter.add_argument("--output", required=True, help="model directory or version directory")
    exporter.add_argument("--overwrite", action="store_true", help="replace an existing version directory")
    exporter.set_defaults(run=export_command)


def _add_pretrain(commands):
    pretrain = commands.add_parser(
        "pretrain", help="masked modelling: pretrain a recipe's towers and fusion on captions (mmzoo.trainers.MaskedPretrainer)",
        parents=[data_options(dataset=DEFAULT_PRETRAIN_DATASET, batch_size=32,
                               dataset_help="TFDS image + caption data (default: %(default)s)"),
                 training_options(epochs=3, learning_rate=1e-3, image_size_help="image size in pixels (default: %(default)s)"),
                 output_options("runs/pretrain_<recipe>", "model.keras and the CSV log")],
        description="Self-supervised pretraining (mmzoo.trainers.MaskedPretrainer): caption tokens are masked and "
        "predicted from the text after it attended to the image. Saves <output-dir>/model.keras, a classifier for "
        "--for-dataset's classes whose towers and fusion are pretrained (its head is not); fine-tune it with "
        "`mmzoo train --init <output-dir>/model.keras`. The recipe needs a token-level fusion (attention, coattention).")
    pretrain.add_argument("--recipe", default=DEFAULT_PRETRAIN_RECIPE, help="recipe to pretrain (default: %(default)s)")
    pretrain.add_argument("--for-dataset", default=DEFAULT_DATASET, help="TFDS data the model will be fine-tuned on: its classes, and its words join the vocabulary (default: %(default)s)")
    pretrain.add_argument("--train-split", default="train", help="split to pretrain on (default: %(default)s)")
    pretrain.add_argument("--mask-rate", type=fraction("--mask-rate"), default=0.15, help="fraction of caption tokens masked and predicted (default: %(default)s)")
    pretrain.add_argument("--image-mask-rate", type=fraction("--image-mask-rate", allow_zero=True), default=0.0, help="fraction of image regions blanked and predicted; 0 turns it off (default: %(default)s)")
    pretrain.set_defaults(run=pretrain_command)


def _add_distill(commands):
    distill = commands.add_parser(
        "distill", help="knowledge distillation: train a student recipe from a teacher model (mmzoo.trainers.Distiller)",
        parents=[data_options(), file_options(), split_options(),
                 training_options(epochs=5, learning_rate=1e-3, image_size=None, schedule="constant",
                                   image_size_help="image size in pixels (default: the teacher's)"),
                 object_options("the student's image tower", "distil into the rest with the tower frozen"),
                 output_options("runs/distill_<student-recipe>", "model.keras and the CSV log",
                                 "saved_models/<student-recipe>_distilled")],
        description="Train a student recipe on labels and on a frozen teacher's softened predictions "
        "(mmzoo.trainers.Distiller): loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * "
        "KL(teacher / T || student / T). The teacher is a .keras file (e.g. runs/<recipe>/model.keras) or an exported "
        "SavedModel. Reports the student's test accuracy, saves <output-dir>/model.keras and exports the student.")
    distill.add_argument("--teacher", required=True, help="the teacher: a .keras file or an exported SavedModel directory")
    distill.add_argument("--student-recipe", default=DEFAULT_STUDENT_RECIPE, help="recipe of the student (default: %(default)s)")
    distill.add_argument("--alpha", type=fraction("--alpha", allow_zero=True, allow_one=True), default=0.2, help="weight of the label loss in [0, 1] (default: %(default)s)")
    distill.add_argument("--temperature", type=positive_float, default=4.0, help="softening temperature T > 0 (default: %(default)s)")
    distill.set_defaults(run=distill_command)


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
    predict.add_argument("--input", dest="inputs", action="append", type=named_value, default=[], metavar="NAME=VALUE",
                         help="an input by name: an image file for an image input, the text for a text input, a WAV "
                         "file for an audio input; once per input (e.g. --input front=front.png "
                         "--input question='how many?')")
    predict.set_defaults(run=predict_command)


def _add_robustness(commands):
    robustness = commands.add_parser(
        "robustness", help="accuracy of a .keras model with each input absent and under noise (docs/robustness.md)",
        parents=[data_options(), file_options()],
        description="Accuracy of a .keras classifier on a dataset split with each input absent, and under seeded "
        "noise at levels 0 ... 1 for each input (images: Gaussian noise, blur, occlusion, grey-scale; texts: "
        "character swaps, dropped and replaced words); prints the table with relative robustness (area under "
        "each curve) and, with --reference, effective robustness against it (late fusion of the same towers), "
        "and writes a PNG of accuracy against noise level.")
    robustness.add_argument("--model", required=True, help="a .keras file (as `mmzoo train` saves)")
    robustness.add_argument("--reference", default=None,
                            help="a .keras late-fusion model of the same towers, for effective robustness")
    robustness.add_argument("--split", default="test", help="TFDS split (default: %(default)s); ignored for .csv/.jsonl")
    robustness.add_argument("--levels", type=positive_int, default=11,
                            help="noise levels evenly spaced over 0 ... 1, ends included (default: %(default)s)")
    robustness.add_argument("--max-examples", type=positive_int, default=None,
                            help="use at most this many examples (default: all of the split)")
    robustness.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the noise (default: %(default)s)")
    robustness.add_argument("--plot", default="robustness.png",
                            help="where to write the PNG (default: %(default)s)")
    robustness.set_defaults(run=robustness_command)


def _add_caption(commands):
    caption = commands.add_parser(
        "caption", help="caption an image with a trained captioner; prints the caption",
        description="Caption an image file (JPEG, PNG, GIF, BMP or WebP) with a captioner exported by `mmzoo train "
        "--task caption` (a SavedModel directory: its decoding as exported) or saved as .keras (--strategy, "
        "--num-beams apply). Prints the caption and its log-probability, tab-separated.")
    caption.add_argument("--model", required=True, help="SavedModel version or model directory, or a .keras file")
    caption.add_argument("--image", required=True, action="append", help="image file; repeat for several")
    caption.add_argument("--strategy", type=choice("--strategy", ("greedy", "beam")), default="greedy",
                         help="with a .keras model: greedy or beam-search decoding (default: %(default)s)")
    caption.add_argument("--num-beams", type=positive_int, default=4, help="beams of --strategy beam (default: %(default)s)")
    caption.set_defaults(run=caption_command)


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
    transcribe.add_argument("--strategy", type=choice("--strategy", ("greedy", "beam")), default="greedy",
                            help="with a .keras model: greedy or beam-search decoding (default: %(default)s)")
    transcribe.add_argument("--beam-width", type=positive_int, default=16,
                            help="prefixes kept by --strategy beam (default: %(default)s)")
    transcribe.set_defaults(run=transcribe_command)
