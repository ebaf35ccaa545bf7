"""`train_captioner`: data in, a trained, evaluated, saved and exported captioner out (what `mmzoo train --task
caption` runs), and the image-tower initialisation from a masked-pretraining run or any classifier."""

import dataclasses
import os

import numpy as np

from mmzoo.captioning.data import caption_dataset, group_by_image, is_caption_file, longest_caption

KERAS_MODEL = "model.keras"


@dataclasses.dataclass
class CaptionTrainResult:
    """What `train_captioner` returns: the model, Keras' history, the test metrics (greedy decoding) and the
    files written ("model", "export"; None when not written)."""

    model: object
    history: dict
    test_metrics: dict
    paths: dict


def train_captioner(model, data, *, validation_data=None, test_data=None, train_split="train",
                    validation_split="validation", test_split="test", data_dir=None, image_column="image",
                    caption_column=None, skip_bad_rows=False, encoding="utf-8", epochs=10, batch_size=64,
                    image_size=None, max_length=None, learning_rate=2e-3, schedule="cosine", seed=0, init=None,
                    model_options=None, evaluate_limit=None, output_dir=None, export_dir=None, callbacks=(),
                    verbose=1):
    """Train a captioner with plain `fit` and return a `CaptionTrainResult`.

    `model`: a captioning recipe (`mmzoo.list_models(task="caption")`, built with the data's vocabulary, image size
    and caption length plus `model_options`) or an `ImageCaptioner`. `data`: a TFDS name with its splits, or a
    .csv/.jsonl file of (image path, caption) rows, several rows per image allowed, with `validation_data` and
    `test_data` files (the test file defaults to the validation file). `caption_column`: default "caption" in files,
    the "text" feature in TFDS data. `max_length`: default the longest training caption plus its end token.
    `init`: a `MaskedPretrainer`, a classifier or a `.keras` classifier file whose image tower (same tower and
    image size) starts the captioner's. After training the captioner captions the test images (greedy, at most
    `evaluate_limit` of them) and reports exact match, BLEU-4 and CIDEr-D; it is saved as `<output_dir>/model.keras`
    and exported to `export_dir` (next free version) when those are given.
    """
    import keras

    from mmzoo.captioning.model import ImageCaptioner
    from mmzoo.captioning.packing import pack_dataset
    from mmzoo.schedules import learning_rate_schedule

    _check_model(model)  # before any data is read
    if seed is not None:
        keras.utils.set_random_seed(seed)
    read = _reader(data_dir=data_dir, image_column=image_column, caption_column=caption_column,
                   skip_bad_rows=skip_bad_rows, encoding=encoding, batch_size=batch_size, seed=seed)
    size = image_size or (model.image_size if isinstance(model, ImageCaptioner) else None)
    train, info = read(data, train_split, image_size=size, shuffle=True, with_info=True)
    size = size or info.image_size[0]
    validation = _split(read, data, validation_data, validation_split, size)
    test = _split(read, data, test_data if test_data is not None else validation_data, test_split, size)
    if isinstance(model, str):
        max_length = max_length or longest_caption(data, train_split, caption_column=caption_column,
                                                   data_dir=data_dir, encoding=encoding) + 1
        model = _build(model, info, size, max_length, model_options)
    if init is not None:
        initialize_image_tower(model, init)
    steps = train.cardinality().numpy()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate_schedule(learning_rate, schedule, steps, epochs)))
    history = model.fit(pack_dataset(model, train), epochs=epochs, verbose=verbose, callbacks=list(callbacks),
                        validation_data=None if validation is None else pack_dataset(model, validation))
    metrics = {} if test is None else _test_metrics(model, test, evaluate_limit, batch_size)
    paths = _save(model, output_dir, export_dir)
    return CaptionTrainResult(model=model, history=history.history, test_metrics=metrics, paths=paths)


def _check_model(model):
    from mmzoo.captioning.model import ImageCaptioner
    from mmzoo.recipes import recipe_task

    if isinstance(model, str):
        if recipe_task(model) != "caption":  # recipe_task raises for an unknown name
            raise ValueError(f"`model` {model!r} is a classifier recipe; expected a captioning recipe, one of "
                             f"{', '.join(_caption_recipes())}. Received: model={model!r}")
    elif not isinstance(model, ImageCaptioner):
        raise ValueError(f"`model` must be a captioning recipe name or an ImageCaptioner. Received: model={model!r}")


def _caption_recipes():
    from mmzoo.recipes import list_models

    return list_models(task="caption")


def _build(recipe, info, size, max_length, model_options):
    import mmzoo

    options = dict(vocabulary=list(info.vocabulary), image_size=size, max_length=max_length)
    return mmzoo.build_model(recipe, **{**options, **(model_options or {})})


def _test_metrics(model, test, evaluate_limit, batch_size):
    from mmzoo.captioning.metrics import evaluate_captions

    images, references = group_by_image(test, limit=evaluate_limit)
    return evaluate_captions(_generate_in_batches(model, images, batch_size), references)


def _save(model, output_dir, export_dir):
    """Save to `<output_dir>/model.keras` and export to `export_dir`, each when given; the paths written."""
    paths = {"model": None, "export": None}
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        paths["model"] = os.path.join(output_dir, KERAS_MODEL)
        model.save(paths["model"])
    if export_dir is not None:
        import mmzoo

        paths["export"] = mmzoo.export_model(model, export_dir)
    return paths


def _reader(**fixed):
    def read(source, split, *, image_size, shuffle, with_info=False):
        return caption_dataset(source, split, image_size=image_size, shuffle=shuffle, with_info=with_info, **fixed)
    return read


def _split(read, data, file, split, size):
    """The validation or test data: a file of its own for file data, else a TFDS split (None: none)."""
    if is_caption_file(data):
        return None if file is None else read(file, None, image_size=size, shuffle=False)
    return None if split is None else read(data, split, image_size=size, shuffle=False)


def _generate_in_batches(model, images, batch_size):
    return [caption for start in range(0, len(images), batch_size)
            for caption in model.generate(images[start:start + batch_size])["caption"]]


def initialize_image_tower(captioner, source):
    """Copy the image tower of `source` (a `MaskedPretrainer`, an mmzoo classifier or a `.keras` file of one) into
    `captioner`'s: the same tower at the same image size. Returns the number of weights copied."""
    if isinstance(source, (str, os.PathLike)):
        from mmzoo.classifier import load_model

        source = load_model(os.fspath(source))
    classifier = getattr(source, "inference_model", source)
    towers = getattr(classifier, "image_towers", None)
    if not towers:
        raise ValueError(f"`init` must be a MaskedPretrainer or an mmzoo classifier with an image input. Received: "
                         f"{type(source).__name__}")
    tower = next(iter(towers.values()))
    target = captioner.image_tower
    shapes = [tuple(w.shape) for w in tower.weights]
    if shapes != [tuple(w.shape) for w in target.weights]:
        raise ValueError(f"The image tower of `init` ({tower.name}, weights {shapes[:3]}...) does not match the "
                         f"captioner's ({captioner.get_config()['image_tower']} at {captioner.image_size} px); build "
                         "the captioner with the same image tower and size.")
    target.set_weights(tower.get_weights())
    return len(shapes)


def caption_images(model, images, batch_size=32):
    """Greedy captions (a list of str) of uint8 images, in batches."""
    return _generate_in_batches(model, np.asarray(images), batch_size)


def load_captioner(path):
    """A captioner saved with `model.save("m.keras")` (`mmzoo.load_model` registers every mmzoo layer first)."""
    import mmzoo.captioning.model  # noqa: F401  (registers the captioner's classes)
    from mmzoo.classifier import load_model

    model = load_model(path)
    if getattr(model, "task", None) != "caption":
        raise ValueError(f"{path} holds a {type(model).__name__}, not a captioner.")
    return model
