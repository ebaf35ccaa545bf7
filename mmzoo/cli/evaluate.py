"""`mmzoo evaluate` and `mmzoo robustness`: a model's accuracy on a dataset split, as it is and under noise."""

from mmzoo.cli.errors import UsageError
from mmzoo.cli.models import (exported_image_size, exported_input_kinds, keras_image_size, keras_input_kinds,
                              load_any_model, model_audio)
from mmzoo.cli.run_names import is_data_file


def evaluate_command(args):
    import numpy as np

    model, kind = load_any_model(args.model)
    if kind == "keras":
        inputs, class_names = keras_input_kinds(model), model.class_names
        image_size = keras_image_size(model, args.model)
    else:
        inputs, image_size, class_names = exported_input_kinds(model), exported_image_size(model), None
    data, info, source = evaluation_data(args, inputs, image_size, class_names, model_audio(model, kind))
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


def evaluation_data(args, inputs, image_size, class_names, audio=None):
    """(dataset, DataInfo, its description) with a feature for each of the model's `inputs`; `audio`: the
    model's audio format `{"sample_rate", "num_samples"}`, which a TFDS dataset's clips are padded to."""
    if is_data_file(args.dataset):
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


def robustness_command(args):
    from mmzoo.robustness import evaluate_robustness

    if args.levels < 2:
        raise UsageError(f"--levels {args.levels}: expected 2 or more levels (0 and 1 at least)")
    model, kind = load_any_model(args.model)
    reference = None if args.reference is None else load_any_model(args.reference)[0]
    if kind != "keras" or (reference is not None and not hasattr(reference, "modalities")):
        raise UsageError("--model and --reference must be .keras files (an export has no presence flags to set)")
    inputs = keras_input_kinds(model)
    data, _, source = evaluation_data(args, inputs, keras_image_size(model, args.model), model.class_names,
                                       model_audio(model, kind))
    levels = [round(i / (args.levels - 1), 4) for i in range(args.levels)]
    report = evaluate_robustness(model, data, levels=levels, reference=reference, max_examples=args.max_examples,
                                 seed=args.seed, batch_size=args.batch_size)
    print(f"On {source}:\n{report.table()}")
    print(f"Plot: {report.plot(args.plot)}")
    return 0
