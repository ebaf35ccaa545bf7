"""Models saved by mmzoo 0.1.0, read back as the classes of this version.

0.1.0 saved a classifier as a plain functional model (raw `{"image", "text"}` in front of a nested "backbone").
Every argument of the builder that made it can be read from its layers, so `upgrade_classifier` rebuilds it as a
`MultimodalClassifier` and moves the weights across by their saved paths, which the two share. Consumers then
ask every model the same questions (`model.modalities`, `model.backbone`, ...). tests/test_compatibility.py
checks this on files written by 0.1.0 (tests/fixtures/v0_1_0/).
"""

import inspect
import os
import tempfile

import keras

from mmzoo.classifier import BACKBONE_NAME, FUSION_NAME, VECTORIZER_NAME, MultimodalClassifier
from mmzoo.fusion import FUSIONS


def upgrade_classifier(model):
    """`model` itself if it is a `MultimodalClassifier` or no 0.1.0 classifier; else the same classifier, upgraded.

    The optimizer state of a compiled 0.1.0 model is not carried over (0.1.0's `mmzoo train` compiled only the
    backbone, which it did not save separately).
    """
    if isinstance(model, MultimodalClassifier) or not is_legacy_classifier(model):
        return model
    upgraded = MultimodalClassifier(**legacy_config(model))
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "legacy.weights.h5")
        model.save_weights(path)
        upgraded.load_weights(path)
    _copy_trainable_flags(model, upgraded)
    return upgraded


def is_legacy_classifier(model):
    """A functional model with the 0.1.0 classifier's shape: raw "image"/"text" inputs and a nested backbone."""
    if not isinstance(model, keras.Model) or isinstance(model, MultimodalClassifier):
        return False
    try:
        inputs = model.input
        model.get_layer(BACKBONE_NAME).get_layer("head")
    except (AttributeError, ValueError):
        return False
    return isinstance(inputs, dict) and bool(inputs) and set(inputs) <= {"image", "text"}


def legacy_config(model):
    """The `MultimodalClassifier` arguments that rebuild 0.1.0 classifier `model`."""
    backbone = model.get_layer(BACKBONE_NAME)
    head = backbone.get_layer("head")
    config = dict(towers={}, num_classes=head.num_classes, class_names=head.class_names,
                  head_hidden_units=head.hidden_units, dropout=head.dropout, name=model.name)
    if "image" in model.input:
        tower = next(layer for layer in backbone.layers if isinstance(layer, keras.Model)
                     and len(layer.inputs) == 1 and len(layer.inputs[0].shape) == 4)
        config["towers"]["image"] = tower.name.removesuffix("_tower")
        config["image_size"] = int(model.input["image"].shape[1])
    if "text" in model.input:
        config["towers"]["text"], options = _legacy_text_config(model, backbone)
        config.update(options)
    config.update(_legacy_fusion_config(backbone.get_layer(FUSION_NAME)))
    return config


def _legacy_text_config(model, backbone):
    vectorizer = model.get_layer(VECTORIZER_NAME)
    embedding = next(layer for layer in backbone.layers if isinstance(layer, keras.layers.Embedding))
    tower = embedding.name.removesuffix("_tower_embedding")
    recurrent = backbone.get_layer(f"{tower}_tower_{tower}")
    units = recurrent.forward_layer.units if isinstance(recurrent, keras.layers.Bidirectional) else recurrent.units
    return tower, dict(
        vocabulary=vectorizer.get_vocabulary(include_special_tokens=False),
        sequence_length=int(vectorizer.get_config()["output_sequence_length"]),
        embedding_dim=int(embedding.output_dim),
        text_units=int(units),
        text_token_embeddings=any(layer.name == f"{tower}_tower_tokens" for layer in backbone.layers),
    )


def _legacy_fusion_config(layer):
    if isinstance(layer, keras.layers.Dense):  # a single-tower classifier's stand-in projection
        return dict(fusion=None, fusion_units=int(layer.units))
    name = next(name for name, cls in FUSIONS.items() if type(layer) is cls)
    defaults = {key: p.default for key, p in inspect.signature(type(layer).__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    config = layer.get_config()
    options = {key: value for key, value in config.items()
               if key in defaults and key not in ("units", "modalities") and value != defaults[key]}
    return dict(fusion=name, fusion_units=int(config["units"]), fusion_options=options or None)


def _copy_trainable_flags(source, target):
    """Frozen layers stay frozen (a saved model keeps each layer's `trainable`; a rebuilt one would not)."""
    pairs = zip(source._flatten_layers(include_self=False, recursive=True),
                target._flatten_layers(include_self=False, recursive=True))
    for old, new in pairs:
        if type(old) is type(new) and old.name == new.name:
            new.trainable = old.trainable
