"""`mmzoo train`: a classifier (mmzoo.train), a captioner or a transcriber, and what to run next."""

import numbers
import os

from mmzoo.cli.defaults import (CAPTION_AUTO_EPOCHS, DEFAULT_BATCH_SIZE, DEFAULT_CAPTION_DATASET,
                                DEFAULT_CAPTION_RECIPE, DEFAULT_DATASET, DEFAULT_RECIPE, DEFAULT_TRANSCRIBE_DATASET,
                                DEFAULT_TRANSCRIBE_RECIPE, TRANSCRIBE_BATCH_SIZE)
from mmzoo.cli.errors import UsageError
from mmzoo.cli.run_names import export_dir, run_name
from mmzoo.training import DEFAULT_COLUMNS


def train_command(args):
    from mmzoo.training import train

    args.batch_size = args.batch_size or (TRANSCRIBE_BATCH_SIZE if args.task == "transcribe" else DEFAULT_BATCH_SIZE)
    if args.task == "caption":
        return train_captioner(args)
    if args.task == "transcribe":
        return train_transcriber(args)
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
        output_dir=args.output_dir or os.path.join("runs", run_name(args)),
        export_dir=export_dir(args, run_name(args)), verbose=args.verbose)
    if result.is_chief and result.paths["export"]:
        from mmzoo.data import bundled

        # A question the bundled data's models can answer; for other data, the user's own.
        text = bundled.EXAMPLE_QUESTION if args.dataset.split(":")[0] == bundled.VQA else "TEXT"
        example = predict_example(result.model, text)
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


def predict_example(model, text):
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


# The classifier-only flags of `mmzoo train` and the value each has when not given.
_NOT_FOR_CAPTIONS = (("--strategy", "strategy", "default"), ("--patience", "patience", "auto"),
                     ("--val-fraction", "val_fraction", "auto"), ("--towers", "towers", None),
                     ("--fusion", "fusion", None), ("--object-epochs", "object_epochs", None),
                     ("--train-image-tower", "train_image_tower", False))


def train_captioner(args):
    from mmzoo.captioning.training import train_captioner

    for flag, attribute, unset in _NOT_FOR_CAPTIONS:
        if getattr(args, attribute) != unset:
            raise UsageError(f"{flag} does not apply to --task caption (it trains a classifier); leave it out")
    args.recipe = args.recipe or DEFAULT_CAPTION_RECIPE
    args.dataset = DEFAULT_CAPTION_DATASET if args.dataset == DEFAULT_DATASET else args.dataset
    name = run_name(args)
    columns = {"image_column": (args.image_column or ["image"])[0],
               "caption_column": args.text_column[0] if args.text_column else None}
    result = train_captioner(
        args.recipe, args.dataset, validation_data=args.val_data, test_data=args.test_data,
        train_split=args.train_split, validation_split=args.val_split, test_split=args.test_split,
        data_dir=args.data_dir, **columns, skip_bad_rows=args.skip_bad_rows, encoding=args.encoding,
        batch_size=args.batch_size, epochs=CAPTION_AUTO_EPOCHS if args.epochs == "auto" else args.epochs,
        image_size=args.image_size, learning_rate=args.learning_rate, schedule=args.schedule, seed=args.seed,
        init=args.init, output_dir=args.output_dir or os.path.join("runs", name),
        export_dir=export_dir(args, name), verbose=args.verbose)
    _print_generator_summary(result, "caption metrics", "mmzoo caption --model {} --image IMAGE.png")
    return 0


def train_transcriber(args):
    from mmzoo.transcription.training import train_transcriber

    for flag, attribute, unset in _NOT_FOR_CAPTIONS + (("--init", "init", None), ("--image-column", "image_column", None)):
        if getattr(args, attribute) != unset:
            raise UsageError(f"{flag} does not apply to --task transcribe; leave it out")
    args.recipe = args.recipe or DEFAULT_TRANSCRIBE_RECIPE
    args.dataset = DEFAULT_TRANSCRIBE_DATASET if args.dataset == DEFAULT_DATASET else args.dataset
    name = run_name(args)
    result = train_transcriber(
        args.recipe, args.dataset, validation_data=args.val_data, test_data=args.test_data,
        train_split=args.train_split, validation_split=args.val_split, test_split=args.test_split,
        data_dir=args.data_dir, text_column=args.text_column[0] if args.text_column else None,
        skip_bad_rows=args.skip_bad_rows, encoding=args.encoding, batch_size=args.batch_size, epochs=args.epochs,
        learning_rate=args.learning_rate, schedule=args.schedule, seed=args.seed,
        output_dir=args.output_dir or os.path.join("runs", name), export_dir=export_dir(args, name),
        verbose=args.verbose)
    _print_generator_summary(result, "WER/CER", "mmzoo transcribe --model {} --audio SPEECH.wav")
    return 0


def _print_generator_summary(result, metrics, try_it):
    """The test metrics (or why there are none), the model and the export of a captioner's or transcriber's run,
    and `try_it` with the export's path in its braces."""
    for metric, value in result.test_metrics.items():
        fractional = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)  # np.float32 too
        print(f"  test {metric:<12}{value:.4f}" if fractional else f"  test {metric:<12}{value}")
    if not result.test_metrics:
        print(f"  no validation/test data: no {metrics} measured; give --val-data/--test-data")
    print(f"  model           {result.paths['model']}")
    if result.paths["export"]:
        print(f"  export          {result.paths['export']}")
        print(f"  try it          {try_it.format(result.paths['export'])}")
