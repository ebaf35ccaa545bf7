"""`evaluate_robustness`: a classifier's accuracy with each input absent and under seeded noise per input."""

import zlib

import numpy as np

from mmzoo.fusion.presence import presence_key
from mmzoo.robustness.noise import NOISE
from mmzoo.robustness.report import (DEFAULT_LEVELS, RobustnessReport, effective_robustness,
                                     relative_robustness)
from mmzoo.towers.registry import get_input_kind


def evaluate_robustness(model, dataset, *, levels=DEFAULT_LEVELS, noises=None, reference=None, max_examples=None,
                        seed=0, batch_size=64):
    """A `RobustnessReport` of `model` (a `MultimodalClassifier`) on `dataset`.

    `dataset` yields `(features, label)` batches with a feature per model input (what `mmzoo.data.load` gives),
    or is such a pair of arrays; at most `max_examples` examples are used. For each input: the accuracy with it
    absent, and with each noise of its kind (`noises`: `{kind: [names]}`, default all of
    `mmzoo.robustness.noise.NOISE`) at each of `levels`, the other inputs clean. Noise draws come from
    `numpy.random.default_rng(seed)`, fresh per input, noise and level, so a report is reproducible and a level
    sees the same draws whichever others are measured. `reference`: a classifier over the same inputs (late
    fusion of the same towers) for effective robustness; it sees the same noisy inputs.
    """
    modalities = _check_model(model, "model")
    levels = _check_levels(levels)
    features, labels = _collect(dataset, modalities, max_examples)
    noises = _resolve_noises(noises, modalities)
    vocabulary = _words(model)
    curves = {}
    for name, modality in modalities.items():
        curves[name] = {}
        for index, noise in enumerate(noises[modality.kind]):
            curves[name][noise] = [
                _noisy_accuracy(model, features, labels, name, modality.kind, noise, level,
                                _rng(seed, name, index, level), vocabulary, batch_size)
                for level in levels]
    mean_curves = {name: list(np.mean(list(c.values()), axis=0)) for name, c in curves.items()}
    report = RobustnessReport(
        model_name=model.name, num_examples=len(labels), levels=levels,
        all_present=accuracy(model, features, labels, batch_size),
        absent={name: accuracy(model, _absent(model, features, name), labels, batch_size) for name in modalities},
        absent_by="presence flag" if model.takes_presence else "placeholder: the model takes no presence flags",
        curves=curves, mean_curves=mean_curves,
        relative={name: relative_robustness(levels, curve) for name, curve in mean_curves.items()}, effective={},
    )
    if reference is not None:
        _add_reference(report, reference, modalities, features, labels, noises, seed, batch_size)
    return report


def _add_reference(report, reference, modalities, features, labels, noises, seed, batch_size):
    reference_modalities = _check_model(reference, "reference")
    if {k: m.kind for k, m in reference_modalities.items()} != {k: m.kind for k, m in modalities.items()}:
        raise ValueError(f"The reference must take the same inputs as the model, {list(modalities)}. Received: "
                         f"reference inputs {list(reference_modalities)}")
    vocabulary = _words(reference)
    for name, modality in modalities.items():
        curves = [[_noisy_accuracy(reference, features, labels, name, modality.kind, noise, level,
                                   _rng(seed, name, index, level), vocabulary, batch_size)
                   for level in report.levels] for index, noise in enumerate(noises[modality.kind])]
        report.effective[name] = effective_robustness(report.mean_curves[name], np.mean(curves, axis=0))
    report.reference_name = reference.name


def accuracy(model, features, labels, batch_size=64):
    """The share of `labels` that `model` predicts from `features` (a dict of arrays)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(_tensors(features)).batch(batch_size)
    logits = model.predict(data, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def _tensors(features):
    import tensorflow as tf

    return {key: tf.constant(list(value)) if value.dtype == object else value for key, value in features.items()}


def _absent(model, features, name):
    """`features` with input `name` absent: its flag off, or, for a model without flags, its kind's placeholder
    (`InputKind.placeholder`: what a model that takes flags is fed for a missing input)."""
    features = dict(features)
    if model.takes_presence:
        features[presence_key(name)] = np.zeros(len(features[name]), bool)
    else:
        modality = model.modalities[name]
        value = get_input_kind(modality.kind).placeholder(modality, len(features[name])).numpy()
        features[name] = value.astype(object) if value.dtype.kind in "SUO" else value
    return features


def _noisy_accuracy(model, features, labels, name, kind, noise, level, rng, vocabulary, batch_size):
    function = NOISE[kind][noise]
    extra = {"vocabulary": vocabulary} if noise == "replace_words" else {}
    noisy = dict(features, **{name: function(features[name], level, rng, **extra)})
    return accuracy(model, noisy, labels, batch_size)


def _rng(seed, name, index, level):
    """A generator for one (input, noise, level): seeded by all four, so each draw is independent of the others."""
    # crc32, not a sum of character codes: anagrams ("front", "fornt") would share their draws.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), index, int(round(level * 1000))])


def _check_model(model, argument):
    modalities = getattr(model, "modalities", None)
    if not isinstance(modalities, dict) or not hasattr(model, "takes_presence"):
        raise ValueError(f"`{argument}` must be an mmzoo classifier (mmzoo.build_model, mmzoo.load_model). "
                         f"Received: {argument}={type(model).__name__}")
    unknown = sorted(m.kind for m in modalities.values() if m.kind not in NOISE)
    if unknown:
        raise ValueError(f"No noise is defined for inputs of kind {unknown}; known kinds: {sorted(NOISE)}")
    return modalities


def _check_levels(levels):
    levels = tuple(float(level) for level in levels)
    if len(levels) < 2 or sorted(levels) != list(levels) or levels[0] < 0 or levels[-1] > 1:
        raise ValueError(f"`levels` must be two or more increasing noise levels in [0, 1]. Received: levels={levels}")
    return levels


def _resolve_noises(noises, modalities):
    kinds = {m.kind for m in modalities.values()}
    if noises is None:
        return {kind: list(NOISE[kind]) for kind in kinds}
    resolved = {}
    for kind in kinds:
        names = list(noises.get(kind, NOISE[kind]))
        unknown = sorted(set(names) - set(NOISE[kind]))
        if unknown or not names:
            raise ValueError(f"Unknown {kind} noise(s) {unknown or names}. Expected some of {list(NOISE[kind])}. "
                             f"Received: noises={noises!r}")
        resolved[kind] = names
    return resolved


def _words(model):
    """The model's text vocabulary (what replacement words are drawn from), or None."""
    vocabularies = [m.options.get("vocabulary") for m in model.modalities.values() if m.kind == "text"]
    return list(vocabularies[0]) if vocabularies and vocabularies[0] else None


def _collect(dataset, modalities, max_examples):
    """({input: array}, labels) from batches of `(features, labels)` or one such pair of arrays."""
    if isinstance(dataset, tuple) and len(dataset) == 2 and isinstance(dataset[0], dict):
        batches = [dataset]
    else:
        batches = (batch[:2] for batch in dataset)
    parts, labels, count = {name: [] for name in modalities}, [], 0
    for features, batch_labels in batches:
        missing = sorted(set(modalities) - set(features))
        if missing:
            raise ValueError(f"The dataset has no feature for input(s) {missing}. "
                             f"Received features: {sorted(features)}")
        for name in modalities:
            parts[name].append(np.asarray(features[name]))
        labels.append(np.asarray(batch_labels))
        count += len(labels[-1])
        if max_examples is not None and count >= max_examples:
            break
    if not labels:
        raise ValueError("The dataset is empty.")
    end = count if max_examples is None else min(count, max_examples)
    features = {name: np.concatenate(values)[:end] for name, values in parts.items()}
    features = {name: value.astype(object) if value.dtype.kind in "SU" else value for name, value in features.items()}
    return features, np.concatenate(labels)[:end]
