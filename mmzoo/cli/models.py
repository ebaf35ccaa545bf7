"""The models the commands read, a .keras file or an export: loading one, the inputs it takes, and `mmzoo export`,
which turns the one into the other."""

import os

from mmzoo.cli.errors import UsageError


def load_any_model(path):
    """(the model, "keras" or "exported") for --model: a .keras file or a SavedModel directory."""
    if os.path.isdir(path):
        import mmzoo

        return mmzoo.load_exported(path), "exported"
    if not os.path.exists(path):
        raise FileNotFoundError(f"model not found: {path}")
    if not path.endswith(".keras"):
        raise UsageError(f"--model must be a .keras file or a SavedModel directory. Received: {path}")
    return load_keras(path), "keras"


def load_keras(path):
    """The classifier saved in a .keras file; a missing file or another kind of file is an error naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if not path.endswith(".keras"):
        raise UsageError(f"--model must be a .keras file (as `mmzoo train` saves). Received: {path}")
    from mmzoo.classifier import load_model

    return load_model(path)


def keras_input_kinds(model):
    modalities = getattr(model, "modalities", None) or {"image": None, "text": None}
    return {name: getattr(modality, "kind", name) for name, modality in modalities.items()}


def keras_image_size(model, path):
    """The one size of all of a .keras model's image inputs (the loaders resize every image column alike)."""
    sizes = {name: m.image_size for name, m in getattr(model, "modalities", {}).items() if m.kind == "image"}
    if len({str(size) for size in sizes.values()}) > 1:
        shown = ", ".join(f"{name} {size}" for name, size in sizes.items())
        raise UsageError(f"--model {path}: its image inputs take different sizes ({shown}); evaluate reads every "
                         "image column at one size: evaluate its export instead, which resizes each input itself")
    return next(iter(sizes.values()), getattr(model, "image_size", None))


def exported_input_kinds(exported):
    """{input name: "image" | "text"} of an export, in the model's order where its metadata records it."""
    if exported.metadata is not None:
        return {name: spec["kind"] for name, spec in exported.metadata["inputs"].items()}
    images = exported.image_sizes()  # an export without metadata: its fixed-size pixel inputs
    return {name: "image" if name in images else "text" for name in exported.input_names()}


def exported_image_size(exported):
    """The size of an export's first image input (it resizes every input to its own size), or None."""
    height, width = next(iter(exported.image_sizes().values()), (None, None))
    return height if height == width else (height, width)


def model_audio(model, kind):
    """{"sample_rate", "num_samples"} of a model's (or an export's) input named "audio", or None."""
    if kind != "keras":
        return model.audio_inputs().get("audio")
    modality = (getattr(model, "modalities", None) or {}).get("audio")
    if modality is None or modality.kind != "audio":
        return None
    return {key: modality.options[key] for key in ("sample_rate", "num_samples")}


def audio_formats(model, kind):
    """{audio input: (sample_rate, num_samples)} of a .keras model or an export."""
    if kind == "keras":
        return {name: (int(m.options["sample_rate"]), int(m.options["num_samples"]))
                for name, m in getattr(model, "modalities", {}).items() if m.kind == "audio"}
    return {name: (audio["sample_rate"], audio["num_samples"]) for name, audio in model.audio_inputs().items()}


def export_command(args):
    import mmzoo

    model = load_keras(args.model)
    path = mmzoo.export_model(model, args.output, overwrite=args.overwrite)
    print(f"Exported {args.model} to {path}")
    return 0
