"""mmzoo: a Keras 3 / TensorFlow model zoo for multimodal models over any set of named image and text inputs.

    model = mmzoo.build_model("resnet50_lstm_attention", num_classes=13, vocabulary=vocab, image_size=224)
    model = mmzoo.build_classifier(towers={"front": "small_cnn", "side": "small_cnn", "question": "gru"},
                                   fusion="concat", num_classes=5, vocabulary=vocab, image_size=64)
    model.fit(dataset)                      # ({"image": uint8 pixels, "text": strings}, labels) -> logits
    mmzoo.export_model(model, "saved_models/vqa/1")
    mmzoo.load_exported("saved_models/vqa/1")({"image": images, "text": questions})

Training objectives beyond labels (masked pretraining, distillation, contrastive retrieval): `mmzoo.trainers`.
"""

import os

# TensorFlow reads this flag once, when it is first imported. oneDNN is off by default on AMD CPUs, and turning
# it on made ResNet50 training 4x faster on the idle 2-core machine we measured. A value the user already set wins;
# it has no effect if TensorFlow was imported before mmzoo.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.2.0"

# Public names load on first use (PEP 562), so `import mmzoo` and `mmzoo --help` do not pay for importing
# TensorFlow, and the flag above is always set before TensorFlow is.
_PUBLIC = {
    "adapt_vocabulary": "mmzoo.towers",
    "build_classifier": "mmzoo.classifier",
    "build_model": "mmzoo.recipes",
    "compile_model": "mmzoo.optimizers",
    "describe_recipe": "mmzoo.recipes",
    "export_model": "mmzoo.export",
    "get_backbone": "mmzoo.classifier",
    "get_feature_model": "mmzoo.classifier",
    "get_image_tower": "mmzoo.classifier",
    "get_modality_logits_model": "mmzoo.classifier",
    "get_recipe": "mmzoo.recipes",
    "get_vectorizer": "mmzoo.classifier",
    "list_models": "mmzoo.recipes",
    "list_towers": "mmzoo.towers",
    "MultimodalClassifier": "mmzoo.classifier",
    "load_exported": "mmzoo.export",
    "load_model": "mmzoo.classifier",
    "register_recipe": "mmzoo.recipes",
    "register_tower": "mmzoo.towers",
    "train": "mmzoo.training",
}

# Submodules reachable as attributes without their own import: `mmzoo.trainers.Distiller`, `mmzoo.data.load`,
# `mmzoo.optimizers.Adam`, `mmzoo.preprocessing.preprocess_dataset`, `mmzoo.towers.register_tower`,
# `mmzoo.distribute.make_strategy`, `mmzoo.robustness.evaluate_robustness`.
_SUBPACKAGES = ("captioning", "data", "distribute", "optimizers", "preprocessing", "robustness", "towers", "trainers")

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC or name in _SUBPACKAGES:
        import importlib

        if name in _SUBPACKAGES:
            return importlib.import_module(f"mmzoo.{name}")
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmzoo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
