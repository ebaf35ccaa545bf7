"""The two-tower classifier: raw {"image", "text"} in, logits out.

    text (string) --TextVectorization--> token_ids --+
                                                     +--> backbone: towers -> fusion -> head -> logits
    image (pixels 0..255) ---------------------------+

The backbone is a nested, all-numeric functional model (`model.get_layer("backbone")`). Keeping string
vectorization in front of it lets trainers run it in the tf.data pipeline under `tf.distribute` (strings cannot
be replicated, DESIGN.md section 4) while the full model, and so its export, still takes raw strings.
"""

import keras

from mmzoo.fusion import FUSIONS, get_fusion
from mmzoo.heads import ClassifierHead
from mmzoo.towers import adapt_vocabulary, apply_text_tower, build_image_tower, build_text_vectorizer

BACKBONE_NAME = "backbone"
VECTORIZER_NAME = "text_vectorizer"


def build_classifier(
    *,
    image_tower,
    text_tower,
    fusion,
    num_classes=None,
    class_names=None,
    vocabulary=None,
    texts=None,
    max_tokens=None,
    image_size=224,
    sequence_length=32,
    image_weights=None,
    trainable_stages=None,
    embedding_dim=128,
    text_units=128,
    fusion_units=256,
    fusion_options=None,
    head_hidden_units=None,
    dropout=0.1,
    name="mmzoo_classifier",
):
    """Assemble image tower + text tower + fusion + head into a functional model.

    Give the vocabulary (a list of tokens) or `texts` to adapt one from (at most `max_tokens` entries).
    `num_classes` may be left out when `class_names` is given. `fusion_options` passes family-specific
    arguments to the fusion layer (e.g. `{"num_heads": 4}` or `{"rank": 8}`).
    """
    num_classes = _resolve_num_classes(num_classes, class_names)
    vocabulary = _resolve_vocabulary(vocabulary, texts, max_tokens)
    if fusion not in FUSIONS:
        raise ValueError(
            f"Unknown fusion '{fusion}'. Expected one of: {', '.join(sorted(FUSIONS))}. Received: fusion={fusion!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    mode = "tokens" if FUSIONS[fusion].requires_tokens else "pooled"

    # === Layers ===
    vectorizer = build_text_vectorizer(vocabulary, sequence_length, name=VECTORIZER_NAME)
    image_encoder = build_image_tower(
        image_tower,
        image_size=image_size,
        output=mode,
        weights=image_weights,
        trainable_stages=trainable_stages,
        name=f"{image_tower}_tower",
    )
    fusion_layer = get_fusion(fusion, units=fusion_units, **(fusion_options or {}))
    head = ClassifierHead(num_classes, class_names=class_names, hidden_units=head_hidden_units, dropout=dropout, name="head")

    # === Backbone: pixels + token ids -> logits ===
    pixels = keras.Input((image_size, image_size, 3), name="image")
    token_ids = keras.Input((sequence_length,), dtype="int64", name="token_ids")
    image_features = image_encoder(pixels)
    text_features = apply_text_tower(
        token_ids,
        kind=text_tower,
        vocabulary_size=vectorizer.vocabulary_size(),
        embedding_dim=embedding_dim,
        units=text_units,
        output=mode,
        dropout=dropout,
        name=f"{text_tower}_tower",
    )
    logits = head(fusion_layer([image_features, text_features]))
    backbone = keras.Model({"image": pixels, "token_ids": token_ids}, logits, name=BACKBONE_NAME)

    # === Functional model on raw inputs ===
    image = keras.Input((image_size, image_size, 3), name="image")
    text = keras.Input((), dtype="string", name="text")
    outputs = backbone({"image": image, "token_ids": vectorizer(text)})
    return keras.Model({"image": image, "text": text}, outputs, name=name)


def _resolve_num_classes(num_classes, class_names):
    if num_classes is None:
        if class_names is None:
            raise ValueError("Give `num_classes` or `class_names`. Received: num_classes=None, class_names=None")
        num_classes = len(list(class_names))
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
    return num_classes


def _resolve_vocabulary(vocabulary, texts, max_tokens):
    if vocabulary is not None and texts is not None:
        raise ValueError("Give either `vocabulary` or `texts` to adapt one from, not both.")
    if vocabulary is None:
        if texts is None:
            raise ValueError(
                "Give `vocabulary` (a list of tokens) or `texts` to adapt one from. "
                "Received: vocabulary=None, texts=None"
            )
        vocabulary = adapt_vocabulary(texts, max_tokens=max_tokens)
        if not vocabulary:
            raise ValueError("`texts` produced an empty vocabulary; give some non-empty texts.")
    return vocabulary


def get_backbone(model):
    """The numeric part of a classifier: {"image", "token_ids"} -> logits, sharing the model's weights."""
    return model.get_layer(BACKBONE_NAME)


def get_vectorizer(model):
    """The classifier's TextVectorization layer (strings -> token ids)."""
    return model.get_layer(VECTORIZER_NAME)
