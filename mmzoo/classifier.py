"""The two-tower classifier: raw {"image", "text"} in, logits out.

    text (string) --TextVectorization--> token_ids --+
                                                     +--> backbone: towers -> fusion -> head -> logits
    image (pixels 0..255) ---------------------------+

The backbone is a nested, all-numeric functional model (`model.get_layer("backbone")`). Keeping string
vectorization in front of it lets trainers run it in the tf.data pipeline under `tf.distribute` (strings cannot
be replicated, DESIGN.md section 4) while the full model, and so its export, still takes raw strings.
"""

import keras

import mmzoo.optimizers  # noqa: F401  (registers the fused Adam, so load_model restores models compiled with it)
from mmzoo.fusion import FUSIONS
from mmzoo.heads import ClassifierHead
from mmzoo.towers import adapt_vocabulary, apply_text_tower, build_image_tower, build_text_vectorizer

BACKBONE_NAME = "backbone"
FUSION_NAME = "fusion"
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
    text_token_embeddings=False,
    fusion_units=256,
    fusion_options=None,
    head_hidden_units=None,
    dropout=0.1,
    name="mmzoo_classifier",
):
    """Assemble image tower + text tower + fusion + head into a functional model.

    Leave out one tower (`image_tower=None` or `text_tower=None`, with `fusion=None`) for a single-modality
    classifier, e.g. the student of cross-modal distillation; its inputs are then only `"image"` or `"text"`.

    Give the vocabulary (a list of tokens) or `texts` to adapt one from (at most `max_tokens` entries).
    `num_classes` may be left out when `class_names` is given. `fusion_options` passes family-specific
    arguments to the fusion layer (e.g. `{"num_heads": 4}` or `{"rank": 8}`). `text_token_embeddings=True`
    gives a token fusion each word's embedding beside its recurrent state (`apply_text_tower`).
    """
    num_classes = _resolve_num_classes(num_classes, class_names)
    if image_tower is None and text_tower is None:
        raise ValueError("Give an `image_tower`, a `text_tower` or both. Received: image_tower=None, text_tower=None")
    two_towers = image_tower is not None and text_tower is not None
    if two_towers and fusion not in FUSIONS:
        raise ValueError(
            f"Unknown fusion '{fusion}'. Expected one of: {', '.join(sorted(FUSIONS))}. Received: fusion={fusion!r}"
        )
    if not two_towers and fusion is not None:
        raise ValueError(
            "A single-tower classifier has nothing to fuse; leave `fusion` as None. "
            f"Received: image_tower={image_tower!r}, text_tower={text_tower!r}, fusion={fusion!r}"
        )
    if text_tower is not None:
        vocabulary = _resolve_vocabulary(vocabulary, texts, max_tokens)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
    mode = "tokens" if two_towers and FUSIONS[fusion].requires_tokens else "pooled"
    if text_token_embeddings and mode != "tokens":
        raise ValueError(
            "`text_token_embeddings=True` needs a fusion that attends over text tokens (e.g. glimpse, attention). "
            f"Received: text_token_embeddings=True with fusion={fusion!r}, text_tower={text_tower!r}"
        )

    # === Layers ===
    head = ClassifierHead(num_classes, class_names=class_names, hidden_units=head_hidden_units, dropout=dropout, name="head")
    if two_towers:
        joint = FUSIONS[fusion](units=fusion_units, name=FUSION_NAME, **(fusion_options or {}))
    else:
        # One modality: a projection plays the fusion's part, so every classifier has an embedding of width
        # `fusion_units` in front of its head (what feature distillation matches).
        joint = keras.layers.Dense(fusion_units, activation="relu", name=FUSION_NAME)

    # === Backbone: pixels and/or token ids -> logits ===
    backbone_inputs, features = {}, []
    if image_tower is not None:
        image_encoder = build_image_tower(
            image_tower,
            image_size=image_size,
            output=mode,
            weights=image_weights,
            trainable_stages=trainable_stages,
            name=f"{image_tower}_tower",
        )
        backbone_inputs["image"] = keras.Input((image_size, image_size, 3), name="image")
        features.append(image_encoder(backbone_inputs["image"]))
    if text_tower is not None:
        vectorizer = build_text_vectorizer(vocabulary, sequence_length, name=VECTORIZER_NAME)
        backbone_inputs["token_ids"] = keras.Input((sequence_length,), dtype="int64", name="token_ids")
        features.append(
            apply_text_tower(
                backbone_inputs["token_ids"],
                kind=text_tower,
                vocabulary_size=vectorizer.vocabulary_size(),
                embedding_dim=embedding_dim,
                units=text_units,
                output=mode,
                dropout=dropout,
                token_embeddings=text_token_embeddings,
                name=f"{text_tower}_tower",
            )
        )
    logits = head(joint(features if two_towers else features[0]))
    backbone = keras.Model(backbone_inputs, logits, name=BACKBONE_NAME)

    # === Functional model on raw inputs ===
    inputs, backbone_feed = {}, {}
    if image_tower is not None:
        inputs["image"] = backbone_feed["image"] = keras.Input((image_size, image_size, 3), name="image")
    if text_tower is not None:
        inputs["text"] = keras.Input((), dtype="string", name="text")
        backbone_feed["token_ids"] = vectorizer(inputs["text"])
    return keras.Model(inputs, backbone(backbone_feed), name=name)


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
    """The classifier's TextVectorization layer (strings -> token ids); None for an image-only classifier."""
    if not any(layer.name == VECTORIZER_NAME for layer in model.layers):
        return None
    return model.get_layer(VECTORIZER_NAME)


def get_image_tower(model):
    """The classifier's image tower (pixels -> pooled features or tokens), sharing weights; None if it has none.

    Set `get_image_tower(model).trainable = False` to keep a pretrained tower fixed while the rest trains.
    """
    backbone = get_backbone(model)
    if "image" not in backbone.input:
        return None
    for layer in backbone.layers:
        if isinstance(layer, keras.Model) and len(layer.inputs) == 1 and len(layer.inputs[0].shape) == 4:
            return layer
    return None


def get_embedding_model(model):
    """{"image", "token_ids"} -> the joint embedding in front of the head (the fusion's output), sharing weights."""
    backbone = get_backbone(model)
    return keras.Model(backbone.input, backbone.get_layer("head").input, name="embedding")


class _GivenTowerOutput(keras.layers.Layer):
    """Stands in for the image tower in `get_feature_model`: its input already is the tower's output."""

    def call(self, inputs, mask=None):
        return inputs


def get_feature_model(model):
    """The backbone after its image tower: {"image": the tower's output, "token_ids"} -> logits, sharing weights.

    With the tower frozen, fitting this on tower outputs computed once trains the classifier exactly as fitting
    the backbone would, without running the tower again every epoch (`mmzoo train` does this after object
    pretraining). A training-time view: save and export `model` itself.
    """
    backbone, tower = get_backbone(model), get_image_tower(model)
    if tower is None:
        raise ValueError(f"A feature model needs a classifier with an image tower. Received: {model.name!r}, which has none")
    inputs = {
        key: keras.Input(tower.output.shape[1:], name=key) if key == "image"
        else keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=key)
        for key, tensor in backbone.input.items()
    }
    return keras.models.clone_model(
        backbone,
        input_tensors=inputs,
        # Every other layer is the backbone's own (so its weights are shared), called again on the new inputs.
        clone_function=lambda layer: _GivenTowerOutput(name="image_features") if layer is tower else layer,
    )


def load_model(path, safe_mode=True):
    """`keras.saving.load_model` for a saved mmzoo classifier (`model.save("m.keras")`).

    Importing this module registers every mmzoo layer (towers, fusion, heads) and optimizer; `import mmzoo` alone
    is lazy and registers nothing, so a bare `keras.saving.load_model` would not know them.
    """
    return keras.saving.load_model(path, safe_mode=safe_mode)
