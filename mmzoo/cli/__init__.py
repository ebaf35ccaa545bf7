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

`mmzoo train` is `mmzoo.train` (mmzoo/training/); each command is a module of this package, and
`parser.py` wires them to their flags. It backs up the training state after every epoch: after an
interruption (even `kill -9`) the same command continues from the last completed epoch. Bad arguments print one
line on stderr and exit with status 2. See docs/cli.md.

Keras and TensorFlow are imported inside the commands, so `mmzoo --help` does not wait for them.
"""

import sys

from mmzoo.cli.defaults import (CAPTION_AUTO_EPOCHS, DEFAULT_BATCH_SIZE, DEFAULT_CAPTION_DATASET,
                                DEFAULT_CAPTION_RECIPE, DEFAULT_DATASET, DEFAULT_EPOCHS, DEFAULT_IMAGE_SIZE,
                                DEFAULT_LEARNING_RATE, DEFAULT_PRETRAIN_DATASET, DEFAULT_PRETRAIN_RECIPE,
                                DEFAULT_RECIPE, DEFAULT_SCHEDULE, DEFAULT_SEED, DEFAULT_STUDENT_RECIPE,
                                DEFAULT_TRANSCRIBE_DATASET, DEFAULT_TRANSCRIBE_RECIPE, TRANSCRIBE_BATCH_SIZE)
from mmzoo.cli.errors import UsageError, is_tensorflow_argument_error, one_line
from mmzoo.cli.parser import build_parser
from mmzoo.cli.quiet import quiet_known_noise
from mmzoo.cli.stderr_filter import filtered_stderr
from mmzoo.training import TrainingFailed

# The command's defaults are part of its interface: notebooks and bench scripts read them from here.
__all__ = ["CAPTION_AUTO_EPOCHS", "DEFAULT_BATCH_SIZE", "DEFAULT_CAPTION_DATASET", "DEFAULT_CAPTION_RECIPE",
           "DEFAULT_DATASET", "DEFAULT_EPOCHS", "DEFAULT_IMAGE_SIZE", "DEFAULT_LEARNING_RATE",
           "DEFAULT_PRETRAIN_DATASET", "DEFAULT_PRETRAIN_RECIPE", "DEFAULT_RECIPE", "DEFAULT_SCHEDULE", "DEFAULT_SEED",
           "DEFAULT_STUDENT_RECIPE", "DEFAULT_TRANSCRIBE_DATASET", "DEFAULT_TRANSCRIBE_RECIPE",
           "TRANSCRIBE_BATCH_SIZE", "UsageError", "build_parser", "main"]


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    quiet_known_noise()
    with filtered_stderr():
        return _run(args)


def _run(args):
    """args.run(args), its exit status, and the errors a user can act on as one line each."""
    try:
        return args.run(args)
    except (ValueError, TrainingFailed, OSError) as error:  # OSError: every file problem, a path named
        print(f"mmzoo {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        # A check inside a graph that fails while data is read (an image over the decoding limits) surfaces as
        # TensorFlow's InvalidArgumentError; its first line is the check's message.
        if not is_tensorflow_argument_error(error):
            raise
        print(f"mmzoo {args.command}: error: {str(error.message).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " Run the same command again to continue from the last completed epoch." if args.command == "train" else ""
        # On a line of its own: a progress bar may have been drawn up to the interruption.
        print(f"\nmmzoo {args.command}: interrupted.{hint}", file=sys.stderr)
        return 130
