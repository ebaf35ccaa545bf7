"""mmzoo: a Keras 3 / TensorFlow model zoo for two-input image + text models.

    model = mmzoo.build_model("resnet50_lstm_attention", num_classes=13, vocabulary=vocab, image_size=224)
    model.fit(dataset)                      # ({"image": uint8 pixels, "text": strings}, labels) -> logits
    mmzoo.export_model(model, "saved_models/vqa/1")
    mmzoo.load_exported("saved_models/vqa/1")({"image": images, "text": questions})
"""

import os

# TensorFlow reads this flag once, when it is first imported. oneDNN is off by default on AMD CPUs, and turning
# it on made ResNet50 training 2-3x faster on the 2-core machine we measured. A value the user already set wins;
# it has no effect if TensorFlow was imported before mmzoo.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from mmzoo.classifier import build_classifier, get_backbone, get_vectorizer  # noqa: E402
from mmzoo.export import export_model, load_exported  # noqa: E402
from mmzoo.recipes import build_model, describe_recipe, get_recipe, list_models, register_recipe  # noqa: E402
from mmzoo.towers import adapt_vocabulary  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "adapt_vocabulary",
    "build_classifier",
    "build_model",
    "describe_recipe",
    "export_model",
    "get_backbone",
    "get_recipe",
    "get_vectorizer",
    "list_models",
    "load_exported",
    "register_recipe",
]
