"""Masked modelling: self-supervised pretraining of a classifier's towers and fusion on unlabelled image-text pairs.

A fraction of the caption's tokens is chosen (BERT's recipe: of those, 80 % become a mask token, 10 % a random
token, 10 % stay), and the original tokens are predicted from the text tokens *after* they attended to the image
(the fusion layer's token output), so filling the gaps pays off only by reading the image. Optionally image
regions (cells of the image tower's token grid) are blanked too, and their mean colour is predicted from the
image tokens attending to the text. Losses count masked positions only. The token ids come from the
classifier's own input-pipeline preprocessing (`mmzoo.preprocessing.preprocess_features`), masked after it.

    model = mmzoo.build_model("small_cnn_bilstm_attention", class_names=..., vocabulary=vocab)
    pretrainer = MaskedPretrainer(model, mask_rate=0.15)
    pretrainer.compile(optimizer="adam")
    pretrainer.fit(captions_ds, epochs=3)          # trains `model`'s towers and fusion in place
    pretrainer.initialize(other_model)             # or copy them into another classifier of the same recipe
"""

import inspect

import keras
import tensorflow as tf
from keras import ops

from mmzoo.fusion import FUSIONS
from mmzoo.preprocessing import preprocess_features
from mmzoo.trainers.base import Trainer, check_fraction, global_mean

MASK_TOKEN = "[mask]"
OOV_TOKEN_ID = 1
FIRST_WORD_ID = 2  # 0 is padding, 1 out-of-vocabulary


class MaskedPretrainer(Trainer):
    """Masked-token (and optionally masked-region) modelling over a classifier's image tower, text tower and fusion.

    Args:
        classifier: an mmzoo classifier whose last input is text and whose fusion works on tokens ("attention"
            or "coattention"), e.g. `build_model("small_cnn_bilstm_attention", ...)`; its other inputs are what the
            text is predicted from. Its layers are trained in place; its head is not.
        mask_rate: fraction of text tokens chosen for prediction, in (0, 1).
        image_mask_rate: fraction of image regions blanked and predicted, in [0, 1); 0 turns region modelling off.
            Region modelling needs exactly one image input.
        region_weight: weight of the region loss in the total.
        mask_token_id: id that replaces 80 % of the chosen tokens; default the vocabulary's "[mask]" token if it
            has one, else the out-of-vocabulary id (1), which ordinary text rarely produces.
        head_units: width of the token and region prediction heads (dropped after pretraining).
        seed: seeds the masks (stateless, per batch), so runs repeat and replicas agree.
    """

    def __init__(
        self,
        classifier,
        mask_rate=0.15,
        image_mask_rate=0.0,
        region_weight=1.0,
        mask_token_id=None,
        head_units=128,
        seed=None,
        **kwargs,
    ):
        mask_rate = check_fraction(mask_rate, "mask_rate")
        image_mask_rate = check_fraction(image_mask_rate, "image_mask_rate", low_open=False)
        backbone, fusion = _check_classifier(classifier)
        modalities = list(classifier.modalities.values())
        text = modalities[-1]
        images = [m for m in modalities if m.kind == "image"]
        if image_mask_rate > 0 and len(images) != 1:
            raise ValueError(
                "Masking image regions needs a classifier with exactly one image input. "
                f"Received: image_mask_rate={image_mask_rate!r} for inputs {[m.name for m in modalities]}"
            )
        vectorizer = classifier.vectorizers[text.name]
        loss_names = ("loss", "token_loss") + (("region_loss",) if image_mask_rate > 0 else ())
        super().__init__(loss_names=loss_names, seed=seed, **kwargs)
        self.classifier = classifier
        self.text_name = text.name
        self.text_key = text.backbone_key
        # Backbone keys of the fusion's inputs, in its order, where a padding mask must be computed (text).
        self.mask_keys = [m.backbone_key if m.kind == "text" else None for m in modalities]
        self.vectorizer = vectorizer
        self.mask_rate = mask_rate
        self.image_mask_rate = image_mask_rate
        self.region_weight = float(region_weight)
        self.vocabulary_size = int(vectorizer.vocabulary_size())
        self.mask_token_id = _resolve_mask_token(mask_token_id, vectorizer)

        # === Layers ===
        self.fusion = fusion
        self.features = keras.Model(backbone.input, fusion.input, name="token_features")
        text_tokens = self.features.output[-1]
        self.token_head = keras.Sequential(
            [
                keras.layers.Dense(head_units, activation="gelu", name="token_transform"),
                keras.layers.LayerNormalization(epsilon=1e-6, name="token_norm"),
                keras.layers.Dense(self.vocabulary_size, dtype="float32", name="token_logits"),
            ],
            name="token_head",
        )
        self.token_accuracy = keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")
        self.token_head.build(tuple(text_tokens.shape[:-1]) + (fusion.units,))
        self.region_head = None
        if image_mask_rate > 0:
            self.image_key = images[0].backbone_key
            self.image_index = modalities.index(images[0])
            image_tokens = self.features.output[self.image_index]
            self.grid, self.cell = _region_grid(image_tokens.shape, images[0].image_size)
            self.region_head = RegionHead(head_units, name="region_head")
            self.region_head.build([tuple(image_tokens.shape), tuple(text_tokens.shape)])
        # Every weight exists now, before `fit` builds the optimizer for them.
        self.built = True

    # === Data ===

    def preprocess(self, x, y, seed):
        token_seed, image_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        features = preprocess_features(self.classifier, x)
        original = features[self.text_key]
        features[self.text_key], chosen = mask_tokens(
            original,
            rate=self.mask_rate,
            mask_token_id=self.mask_token_id,
            vocabulary_size=self.vocabulary_size,
            seed=token_seed,
        )
        # Masks travel as float32 weights: under a distribution strategy Keras averages a first batch across
        # replicas to build state, which fails on booleans (no AddN for bool).
        targets = {"token_ids": original, "token_mask": tf.cast(chosen, tf.float32)}
        if self.region_head is not None:
            image = tf.cast(features[self.image_key], tf.float32)
            features[self.image_key], region_mask, targets["region_colors"] = mask_regions(
                image, rate=self.image_mask_rate, grid=self.grid, cell=self.cell, seed=image_seed
            )
            targets["region_mask"] = tf.cast(region_mask, tf.float32)
        return features, targets

    # === Losses ===

    def call(self, x, training=False):
        """Token logits (batch, steps, vocabulary) for the backbone's inputs with masked text token ids."""
        return self._predict(x, training)[0]

    def _predict(self, x, training):
        tokens = list(self.features(x, training=training))
        masks = [None if key is None else ops.greater(x[key], 0) for key in self.mask_keys]
        fused = self.fusion(tokens, mask=masks, training=training, return_tokens=True)
        return self.token_head(fused, training=training), tokens, masks[-1]

    def compute_losses(self, x, y, sample_weight=None, training=False):
        logits, tokens, text_mask = self._predict(x, training)
        per_token = keras.losses.sparse_categorical_crossentropy(y["token_ids"], logits, from_logits=True)
        losses = {"token_loss": global_mean(per_token, y["token_mask"])}
        losses["loss"] = losses["token_loss"]
        if self.region_head is not None:
            colors = self.region_head([tokens[self.image_index], tokens[-1]], text_mask=text_mask, training=training)
            per_region = ops.mean(ops.square(colors - y["region_colors"]), axis=-1)
            losses["region_loss"] = global_mean(per_region, y["region_mask"])
            losses["loss"] = losses["loss"] + self.region_weight * losses["region_loss"]
        return losses, logits

    @property
    def extra_metrics(self):
        return [self.token_accuracy]

    def update_extra_metrics(self, x, y, outputs):
        self.token_accuracy.update_state(y["token_ids"], outputs, sample_weight=y["token_mask"])

    # === After pretraining ===

    @property
    def inference_model(self):
        return self.classifier

    def initialize(self, classifier):
        """Copy the pretrained towers and fusion into `classifier` (same recipe and vocabulary; any head).

        Returns the names of the layers copied. The classifier's head keeps its own (fresh) weights.
        """
        source = self.classifier.backbone
        try:
            target, target_vectorizer = classifier.backbone, classifier.vectorizers.get(self.text_name)
        except AttributeError:
            raise ValueError(f"`classifier` must be an mmzoo classifier. Received: classifier={classifier!r}") from None
        if target_vectorizer is None or target_vectorizer.get_vocabulary() != self.vectorizer.get_vocabulary():
            raise ValueError(
                f"`classifier` must use the pretraining vocabulary for its text input {self.text_name!r} (token ids "
                "must mean the same words). Build it with "
                "vocabulary=pretrainer.vectorizer.get_vocabulary(include_special_tokens=False)."
            )
        copied = []
        for layer in source.layers:
            if not layer.weights or layer.name == "head":
                continue
            try:
                twin = target.get_layer(layer.name)
            except ValueError:
                raise ValueError(
                    f"`classifier` has no layer '{layer.name}' to receive pretrained weights; build it from the "
                    f"same recipe as the pretrained model ({self.classifier.name})."
                ) from None
            shapes = [tuple(w.shape) for w in layer.weights]
            if [tuple(w.shape) for w in twin.weights] != shapes:
                raise ValueError(
                    f"Layer '{layer.name}' of `classifier` has weights of shapes "
                    f"{[tuple(w.shape) for w in twin.weights]}; the pretrained layer has {shapes}."
                )
            twin.set_weights(layer.get_weights())
            copied.append(layer.name)
        return copied


@keras.saving.register_keras_serializable(package="mmzoo")
class RegionHead(keras.layers.Layer):
    """Image tokens attend to text tokens, then predict each region's mean colour (RGB in 0..1)."""

    def __init__(self, units, num_heads=2, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the text mask is taken explicitly as `text_mask`; nothing is passed on
        self.units = units
        self.num_heads = num_heads
        self.image_projection = keras.layers.Dense(units, name="image_projection")
        self.text_projection = keras.layers.Dense(units, name="text_projection")
        self.attention = keras.layers.MultiHeadAttention(num_heads, max(1, units // num_heads), name="attention")
        self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.colors = keras.layers.Dense(3, activation="sigmoid", dtype="float32", name="colors")

    def build(self, input_shape):
        image_shape, text_shape = (tuple(shape) for shape in input_shape)
        self.image_projection.build(image_shape)
        self.text_projection.build(text_shape)
        query, key = image_shape[:-1] + (self.units,), text_shape[:-1] + (self.units,)
        self.attention.build(query, key, key)
        self.norm.build(query)
        self.colors.build(query)

    def call(self, inputs, text_mask=None, training=None):
        image, text = inputs
        image, text = self.image_projection(image), self.text_projection(text)
        attention_mask = None
        if text_mask is not None:
            attention_mask = ops.logical_and(
                ops.expand_dims(ops.ones_like(image[..., 0], dtype="bool"), -1),
                ops.expand_dims(ops.cast(text_mask, "bool"), 1),
            )
        attended = self.attention(image, text, text, attention_mask=attention_mask, training=training)
        return self.colors(self.norm(image + attended))

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, num_heads=self.num_heads)
        return config


def mask_tokens(token_ids, *, rate, mask_token_id, vocabulary_size, seed):
    """BERT masking with stateless randomness. Returns (masked ids, boolean chosen positions).

    Each non-padding token is chosen with probability `rate`; a chosen token becomes `mask_token_id` (80 %), a
    random word id (10 %) or stays itself (10 %).
    """
    choose_seed, kind_seed, random_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    shape = tf.shape(token_ids)
    chosen = tf.logical_and(tf.random.stateless_uniform(shape, choose_seed) < rate, token_ids > 0)
    kind = tf.random.stateless_uniform(shape, kind_seed)
    random_ids = tf.random.stateless_uniform(
        shape, random_seed, minval=FIRST_WORD_ID, maxval=max(vocabulary_size, FIRST_WORD_ID + 1), dtype=tf.int64
    )
    masked = tf.where(tf.logical_and(chosen, kind < 0.8), tf.cast(mask_token_id, token_ids.dtype), token_ids)
    masked = tf.where(tf.logical_and(chosen, tf.logical_and(kind >= 0.8, kind < 0.9)), random_ids, masked)
    return masked, chosen


def mask_regions(image, *, rate, grid, cell, seed):
    """Blank a random `rate` of the `grid`x`grid` cells of float `image` (batch, H, W, 3) with zeros.

    Returns (masked image, chosen cells (batch, grid*grid), each cell's original mean colour in 0..1).
    """
    batch = tf.shape(image)[0]
    chosen = tf.random.stateless_uniform([batch, grid, grid], seed) < rate
    pixels = tf.repeat(tf.repeat(chosen, cell, axis=1), cell, axis=2)[..., None]
    colors = tf.nn.avg_pool2d(image / 255.0, ksize=cell, strides=cell, padding="VALID")
    masked = tf.where(pixels, tf.zeros_like(image), image)
    return masked, tf.reshape(chosen, [batch, grid * grid]), tf.reshape(colors, [batch, grid * grid, 3])


def _check_classifier(classifier):
    """(backbone, fusion) of a classifier masked modelling can train; one-line errors otherwise."""
    if not all(hasattr(classifier, name) for name in ("modalities", "backbone", "fusion", "vectorizers")):
        raise ValueError(
            f"`classifier` must be an mmzoo classifier (mmzoo.build_model). Received: classifier={classifier!r}"
        )
    modalities, fusion = list(classifier.modalities.values()), classifier.fusion
    if len(modalities) < 2 or not _returns_tokens(type(fusion)):
        token_fusions = sorted(name for name, cls in FUSIONS.items() if _returns_tokens(cls))
        raise ValueError(
            "Masked modelling predicts each text token from its fused features, so `classifier` needs a text input "
            f"fused with others by a token-level fusion ({', '.join(token_fusions)}), e.g. recipe "
            f"'small_cnn_bilstm_attention'. Received: a classifier with fusion {type(fusion).__name__}"
        )
    if modalities[-1].kind != "text":
        raise ValueError(
            "Masked modelling predicts the tokens of the fusion's last input, which must be text. "
            f"Received: inputs {[(m.name, m.kind) for m in modalities]}"
        )
    return classifier.backbone, fusion


def _returns_tokens(fusion_class):
    """Whether a fusion can return per-text-token features (`call(..., return_tokens=True)`)."""
    return "return_tokens" in inspect.signature(fusion_class.call).parameters


def _resolve_mask_token(mask_token_id, vectorizer):
    vocabulary = vectorizer.get_vocabulary()
    if mask_token_id is None:
        return vocabulary.index(MASK_TOKEN) if MASK_TOKEN in vocabulary else OOV_TOKEN_ID
    if isinstance(mask_token_id, bool) or not isinstance(mask_token_id, int) or not 1 <= mask_token_id < len(vocabulary):
        raise ValueError(
            f"`mask_token_id` must be an id in [1, {len(vocabulary)}) (not padding). Received: mask_token_id={mask_token_id!r}"
        )
    return mask_token_id


def _region_grid(token_shape, size):
    """(grid side, cell side in pixels) of a square image tower whose token output is (batch, grid*grid, dim)."""
    steps = token_shape[1]
    grid = int(round(steps**0.5)) if steps else 0
    if not grid or grid * grid != steps or size % grid:
        raise ValueError(
            "Masking image regions needs a square token grid that divides the image: "
            f"received {steps} image tokens for {size} px images. Use image_mask_rate=0."
        )
    return grid, size // grid
