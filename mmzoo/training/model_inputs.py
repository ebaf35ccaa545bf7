"""What a model takes and what the data gives: input names and kinds, audio formats, and the build arguments a
recipe gets from the data (classes, vocabulary, image size) or from `model_options`."""

from mmzoo.training.errors import OptionError


AUDIO_OPTIONS = ("sample_rate", "num_samples")  # what an audio input declares and the data decides


def recipe_overrides(recipe, model_options):
    """`model_options` for `build_model(recipe, ...)`, with what they imply for the recipe's other defaults: own
    `towers` replace its image and text towers (and one tower alone has nothing to fuse); another fusion does
    without the options the recipe sets for its own."""
    if not isinstance(recipe, str):
        return dict(model_options)
    from mmzoo.recipes import get_recipe

    defaults, options = get_recipe(recipe), dict(model_options)
    if "towers" in options:
        options.setdefault("image_tower", None)
        options.setdefault("text_tower", None)
        if isinstance(options["towers"], dict) and len(options["towers"]) == 1:
            options.setdefault("fusion", None)
    if options.get("fusion", defaults.get("fusion")) != defaults.get("fusion"):
        options.setdefault("fusion_options", None)
        options.setdefault("text_token_embeddings", False)
    return options


def tower_name(spec):
    return spec.get("tower") if isinstance(spec, dict) else spec


def data_input_kinds(data):
    """`{input name: "image" | "text" | "audio" | None (not known)}` of the features `data` yields; in a
    tf.data dataset, strings are texts and float (batch, samples) features audio."""
    if data.info is not None:
        return dict(data.info.input_kinds)
    return {key: "text" if spec.dtype.name == "string" else "audio" if _is_audio_spec(spec) else None
            for key, spec in data.train.element_spec[0].items()}


def _is_audio_spec(spec):
    return spec.shape.rank == 2 and spec.dtype.is_floating


def audio_length(features_spec):
    """The clip length (samples) of the first audio feature of a dataset's spec, or None."""
    for spec in features_spec.values():
        if _is_audio_spec(spec) and spec.shape[1] is not None:
            return int(spec.shape[1])
    return None


def model_audio(model):
    """`{option: [values]}` of the audio inputs of a built model (AUDIO_OPTIONS), in input order."""
    values = {}
    for modality in getattr(model, "modalities", {}).values():
        if modality.kind == "audio":
            for option in AUDIO_OPTIONS:
                values.setdefault(option, []).append(modality.options[option])
    return values


def option_audio(model_options):
    """`{option: [values]}` of the audio options `model_options` sets: for every audio input (``sample_rate=``,
    ``num_samples=``) or for one (a ``towers`` entry ``{"tower": "mel_cnn", "sample_rate": 8000}``)."""
    values = {option: [model_options[option]] for option in AUDIO_OPTIONS if model_options.get(option) is not None}
    towers = model_options.get("towers")
    for spec in towers.values() if isinstance(towers, dict) else ():
        for option in AUDIO_OPTIONS if isinstance(spec, dict) else ():
            if spec.get(option) is not None:
                values.setdefault(option, []).append(spec[option])
    return values


def declared_audio(values, argument):
    """{"sample_rate", "num_samples"} the model declares (as the data must have them; absent: the data's own),
    from `{option: [values]}`. The data has one rate: inputs declaring different ones are refused; clips are
    padded to the longest declared length (each input crops its own)."""
    rates = sorted(set(values.get("sample_rate", [])))
    if len(rates) > 1:
        raise OptionError(argument, rates, "audio inputs of different sample rates; the data's audio has one rate")
    declared = {"sample_rate": rates[0]} if rates else {}
    if values.get("num_samples"):
        declared["num_samples"] = max(values["num_samples"])
    return declared


def audio_columns(info):
    """The columns of a .csv/.jsonl file the audio features were read from, in input order."""
    if info is None:
        return []
    return [info.feature_keys.get(key, key) for key, kind in info.input_kinds.items() if kind == "audio"]


def builds_audio(recipe, model_options):
    """Whether recipe `recipe` with `model_options` builds a model with an audio input."""
    if not isinstance(recipe, str):
        return False
    from mmzoo.recipes import get_recipe
    from mmzoo.towers import get_tower

    towers = model_options.get("towers") or get_recipe(recipe).get("towers") or {}
    try:
        return any(get_tower(tower_name(spec)).kind == "audio" for spec in towers.values())
    except (ValueError, AttributeError):  # not towers build_model takes: it says so itself
        return False


def recipe_input_kinds(recipe, model_options):
    """`{input: kind}` of a recipe before it is built: its towers by input, or the two-input shorthand's "image"
    and "text" (`image_tower` / `text_tower`, None leaving one out); {} where that is not known without building
    (a built model, towers given in `model_options`, a recipe of another task)."""
    if not isinstance(recipe, str) or model_options.get("towers"):
        return {}
    from mmzoo.recipes import get_recipe, recipe_task
    from mmzoo.towers import get_tower

    try:
        if recipe_task(recipe) != "classify":
            return {}
        arguments = {**get_recipe(recipe), **model_options}
        if not arguments.get("towers"):
            return {key: key for key in ("image", "text") if arguments.get(f"{key}_tower") is not None}
        return {key: get_tower(tower_name(spec)).kind for key, spec in arguments["towers"].items()}
    except (ValueError, AttributeError):  # not a recipe's towers: building says what is wrong
        return {}


def describe_inputs(kinds):
    return ", ".join(f"{key} ({kind})" if kind else key for key, kind in kinds.items()) or "no inputs"


def image_size_of(features_spec):
    """The pixel size (int if square, else (height, width)) of the first image feature of a dataset's spec."""
    for spec in features_spec.values():
        if spec.shape.rank == 4 and spec.shape[1] is not None and spec.shape[2] is not None:
            height, width = int(spec.shape[1]), int(spec.shape[2])
            return height if height == width else (height, width)
    return None


def infer_model_kwargs(dataset, model_options):
    """What `model_options` leaves out of a recipe trained on tf.data datasets, from one pass over the training
    data: the number of classes (the largest label + 1) and the vocabulary of its texts."""
    import numpy as np

    import mmzoo

    need_classes = not {"num_classes", "class_names"} & set(model_options)
    need_words = not {"vocabulary", "texts"} & set(model_options)
    if not (need_classes or need_words):
        return {}
    texts, largest = [], -1
    for features, labels in dataset:
        for value in features.values() if need_words else ():
            if value.dtype.name == "string":  # every text input shares the vocabulary
                texts.extend(t.decode() for t in np.asarray(value).reshape(-1))
        largest = max(largest, int(np.max(labels)))
    options = {"num_classes": max(largest + 1, 2)} if need_classes else {}
    if need_words and texts:
        options["vocabulary"] = mmzoo.adapt_vocabulary(texts)
    return options
