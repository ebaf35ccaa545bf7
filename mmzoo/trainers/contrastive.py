"""Contrastive image <-> text and speech <-> text retrieval: a dual encoder trained with symmetric InfoNCE
(CLIP-style).

    dual = build_dual_encoder(vocabulary=info.vocabulary, image_size=64, sequence_length=40, projection_dim=64)
    dual.compile(optimizer="adam")
    dual.fit(mmzoo.data.load("mmzoo_shapes/captions", "train", batch_size=128), epochs=5)
    evaluate_retrieval(dual, mmzoo.data.load("mmzoo_shapes/captions", "test", batch_size=256))
    mmzoo.export_model(dual, "saved_models/retrieval")   # signatures embed_image, embed_image_bytes, embed_text

Two encoders map into one space of L2-normalised embeddings:

    image (pixels 0..255) --image tower--> projection --> unit norm          (`dual.image_encoder`)
    text (string) --TextVectorization--> token_ids --text tower--> projection --> unit norm   (`dual.text_encoder`)

or, with `build_dual_encoder(audio_tower="mel_crnn", ...)`, audio in place of the image (docs/audio.md):

    audio (waveform in [-1, 1]) --audio tower (log-mel inside)--> projection --> unit norm  (`dual.audio_encoder`)

Whichever it is, the encoder paired with the texts is `dual.media_encoder`, its input `dual.media` ("image" or
"audio"), and the two retrieval directions `dual.directions`: ("i2t", "t2i") or ("a2t", "t2a").

The text encoder keeps the vectorizer in front of a numeric `text_backbone`, so training vectorizes in the
input pipeline (strings cannot enter a replicated graph, docs/architecture.md) while the encoder, and its export,
still takes raw strings. Like a classifier, a `DualEncoder` states its `modalities` and `preprocess_inputs`, so
training and `embed_dataset` preprocess through `mmzoo.preprocessing.preprocess_features`, as every trainer does.

Under `tf.distribute` the in-batch negatives are the *global* batch: every replica gathers the embeddings of all
replicas (`ReplicaContext.all_gather`, whose gradient sums the upstream gradients over replicas and hands each
replica its own slice) and scores its own rows against all columns. Its loss is the sum of its rows' cross
entropies over the global batch size, so losses summed over replicas, and gradients summed by the optimizer,
equal the 1-replica values.
"""

import math
import types

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mmzoo.classifier import _resolve_vocabulary
from mmzoo.preprocessing import preprocess_features
from mmzoo.towers import Modality, apply_text_tower, build_image_tower, build_text_vectorizer
from mmzoo.trainers.base import Trainer

IMAGE_ENCODER_NAME = "image_encoder"
AUDIO_ENCODER_NAME = "audio_encoder"
TEXT_ENCODER_NAME = "text_encoder"
TEXT_BACKBONE_NAME = "text_backbone"
VECTORIZER_NAME = "text_vectorizer"
IMAGE_POOLING = ("average", "flatten")
DIRECTIONS = ("i2t", "t2i")
# What the texts are matched with -> the names of the two retrieval directions (media -> text, text -> media).
MEDIA_DIRECTIONS = {"image": DIRECTIONS, "audio": ("a2t", "t2a")}


# === Layers ===


@keras.saving.register_keras_serializable(package="mmzoo")
class ClipValue(keras.constraints.Constraint):
    """Clamp a weight into [min_value, max_value] after every optimizer step (CLIP clamps its logit scale so)."""

    def __init__(self, min_value, max_value):
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def __call__(self, w):
        return ops.clip(w, self.min_value, self.max_value)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value}


@keras.saving.register_keras_serializable(package="mmzoo")
class LogitScale(keras.layers.Layer):
    """Scaled cosine similarities `a @ b.T / temperature`, always float32, with a learnable temperature.

    The weight is `log(1 / temperature)` (CLIP's log-parametrised logit scale), clamped after each optimizer step
    and in the forward pass to `[log(1 / max_temperature), log(1 / min_temperature)]`; CLIP's bounds are
    temperature 0.01..1 (logit scale 1..100).
    """

    def __init__(self, temperature=0.07, min_temperature=0.01, max_temperature=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.temperature, self.min_temperature, self.max_temperature = check_temperatures(
            temperature, min_temperature, max_temperature
        )
        self.min_log_scale = -math.log(self.max_temperature)
        self.max_log_scale = -math.log(self.min_temperature)

    def build(self, input_shape=None):
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(-math.log(self.temperature)),
            constraint=ClipValue(self.min_log_scale, self.max_log_scale),
            dtype="float32",
        )

    def scale(self):
        return ops.exp(ops.clip(ops.cast(self.log_scale, "float32"), self.min_log_scale, self.max_log_scale))

    def call(self, queries, keys):
        queries, keys = ops.cast(queries, "float32"), ops.cast(keys, "float32")
        return self.scale() * ops.matmul(queries, ops.transpose(keys))

    def compute_output_shape(self, queries_shape, keys_shape):
        return (queries_shape[0], keys_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            temperature=self.temperature, min_temperature=self.min_temperature, max_temperature=self.max_temperature
        )
        return config


# === The trainer ===


class DualEncoder(Trainer):
    """Trains an image (or audio) encoder and a text encoder into one embedding space with symmetric InfoNCE.

    Args:
        image_encoder: a `keras.Model` from pixels (H, W, 3), 0..255, to L2-normalised embeddings (batch, dim).
        audio_encoder: instead of `image_encoder`, a `keras.Model` from waveforms (batch, num_samples) in [-1, 1]
            to L2-normalised embeddings, holding an mmzoo audio front end (whose sampling rate it takes).
        text_encoder: a `keras.Model` from scalar strings to L2-normalised embeddings (batch, dim) made of a
            `TextVectorization` layer followed by a numeric model (token ids -> embeddings), as
            `build_dual_encoder` builds it. The vectorizer runs in the input pipeline during training.
        temperature: initial softmax temperature (learned when `learn_temperature`), in
            [min_temperature, max_temperature].
        min_temperature, max_temperature: where the learned temperature is clamped (CLIP: 0.01 and 1).
        recall_at: the k of the in-batch recall@k metrics, reported in both directions as `i2t_recall_at_k`
            (image queries, text candidates) and `t2i_recall_at_k`.

    Data: batched `({"image", "text"}, label)` or `{"image", "text"}` (`"audio"` for an audio encoder); labels
    are ignored, the i-th text is the positive of the i-th image and every other text in the (global) batch a
    negative. Reports `loss` (the mean of the two directions), `i2t_loss`, `t2i_loss` (`a2t_loss`, `t2a_loss`
    with audio), `temperature` and the recall metrics.
    `inference_model` is `{"image": image_encoder, "text": text_encoder}` (`"audio"` for an audio encoder).
    """

    def __init__(
        self,
        image_encoder=None,
        text_encoder=None,
        *,
        audio_encoder=None,
        temperature=0.07,
        learn_temperature=True,
        min_temperature=0.01,
        max_temperature=1.0,
        recall_at=(1, 5, 10),
        **kwargs,
    ):
        check_temperatures(temperature, min_temperature, max_temperature)
        if not isinstance(learn_temperature, bool):
            raise ValueError(f"`learn_temperature` must be True or False. Received: learn_temperature={learn_temperature!r}")
        recall_at = check_recall_at(recall_at)
        media, media_encoder = _media_encoder(image_encoder, audio_encoder)
        vectorizer, text_backbone = _split_text_encoder(text_encoder)
        media_dim = _embedding_dim(media_encoder, f"{media}_encoder")
        text_dim = _embedding_dim(text_backbone, "text_encoder")
        if media_dim != text_dim:
            raise ValueError(
                f"The {media} and text encoders must embed into the same space. "
                f"Received: {media} embedding dim={media_dim}, text embedding dim={text_dim}"
            )
        directions = MEDIA_DIRECTIONS[media]
        super().__init__(loss_names=("loss", *(f"{direction}_loss" for direction in directions)), **kwargs)
        self.media = media
        self.directions = directions
        self.image_encoder = image_encoder
        self.audio_encoder = audio_encoder
        self.text_encoder = text_encoder
        self.text_backbone = text_backbone
        self.vectorizer = vectorizer
        self.learn_temperature = learn_temperature
        self.recall_at = recall_at
        self.logit_scale = LogitScale(
            temperature, min_temperature, max_temperature, trainable=learn_temperature, name="logit_scale"
        )
        self.logit_scale.build()
        self.temperature_tracker = keras.metrics.Mean(name="temperature")
        self.recall_trackers = [
            keras.metrics.Mean(name=f"{direction}_recall_at_{k}") for direction in directions for k in recall_at
        ]
        self._modalities = _dual_modalities(media, media_encoder, vectorizer)

    @property
    def media_encoder(self):
        """The encoder paired with the texts: `image_encoder` or `audio_encoder`."""
        return self.image_encoder if self.media == "image" else self.audio_encoder

    # === Data ===

    @property
    def modalities(self):
        """`{"image" or "audio": Modality, "text": Modality}`: the raw inputs, and the numeric keys `call` takes
        for them."""
        return dict(self._modalities)

    def preprocess_inputs(self, features):
        """Raw `{"image" or "audio", "text"}` -> `{"image" or "audio": pixels or waveforms, "token_ids": ids}`
        (the text vectorized)."""
        return {self.media: features[self.media], "token_ids": self.vectorizer(features["text"])}

    def preprocess(self, x, y=None, seed=None):
        return preprocess_features(self, x), y

    # === Steps ===

    def call(self, inputs, training=False):
        """Numeric inputs `{"image": pixels, "token_ids": ids}` -> `{"image": embeddings, "text": embeddings}`
        ("audio" and waveforms in place of "image" and pixels for an audio encoder)."""
        media = ops.cast(inputs[self.media], "float32")
        return {
            self.media: ops.cast(self.media_encoder(media, training=training), "float32"),
            "text": ops.cast(self.text_backbone(inputs["token_ids"], training=training), "float32"),
        }

    def compute_losses(self, x, y, sample_weight=None, training=False):
        embeddings = self(x, training=training)
        media, texts = embeddings[self.media], embeddings["text"]
        weights = ops.ones_like(media[:, 0]) if sample_weight is None else ops.cast(sample_weight, "float32")
        all_media, all_texts, all_weights, offset = gather_global_batch(media, texts, weights)
        # This replica's rows against every column of the global batch; row i's positive is column offset + i.
        positives = offset + ops.arange(ops.shape(media)[0], dtype="int32")
        m2t = keras.losses.sparse_categorical_crossentropy(positives, self.logit_scale(media, all_texts), from_logits=True)
        t2m = keras.losses.sparse_categorical_crossentropy(positives, self.logit_scale(texts, all_media), from_logits=True)
        # Replica-scaled: this replica's weighted sum over the global batch's total weight.
        total_weight = ops.maximum(ops.sum(ops.stop_gradient(all_weights)), 1e-9)
        m2t_loss = ops.sum(m2t * weights) / total_weight
        t2m_loss = ops.sum(t2m * weights) / total_weight
        to_text, from_text = self.directions
        losses = {"loss": 0.5 * (m2t_loss + t2m_loss), f"{to_text}_loss": m2t_loss, f"{from_text}_loss": t2m_loss}
        return losses, {self.media: all_media, "text": all_texts}

    @property
    def extra_metrics(self):
        return [self.temperature_tracker] + list(self.recall_trackers)

    def update_extra_metrics(self, x, y, outputs):
        # Every replica scores the whole global batch, so all replicas hold the same metric values.
        similarities = ops.stop_gradient(ops.matmul(outputs[self.media], ops.transpose(outputs["text"])))
        self.temperature_tracker.update_state(self.temperature)
        trackers = iter(self.recall_trackers)
        for scores in (similarities, ops.transpose(similarities)):
            ranks = _ranks_of_diagonal(scores)
            for k in self.recall_at:
                next(trackers).update_state(ops.cast(ranks < k, "float32"))

    # === Inference ===

    @property
    def temperature(self):
        """The current (clamped) temperature, a float32 scalar tensor."""
        return 1.0 / self.logit_scale.scale()

    @property
    def inference_model(self):
        return {self.media: self.media_encoder, "text": self.text_encoder}

    def get_config(self):
        config = super().get_config()
        config.update(
            {f"{self.media}_encoder": keras.saving.serialize_keras_object(self.media_encoder)},
            text_encoder=keras.saving.serialize_keras_object(self.text_encoder),
            temperature=self.logit_scale.temperature,
            learn_temperature=self.learn_temperature,
            min_temperature=self.logit_scale.min_temperature,
            max_temperature=self.logit_scale.max_temperature,
            recall_at=list(self.recall_at),
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("image_encoder", "audio_encoder", "text_encoder"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _media_encoder(image_encoder, audio_encoder):
    """("image" or "audio", the encoder) of the one of the two given."""
    if (image_encoder is None) == (audio_encoder is None):
        given = "both" if image_encoder is not None else "neither"
        raise ValueError(f"Give one of `image_encoder` and `audio_encoder` (what the texts are matched with). "
                         f"Received: {given}")
    return ("image", image_encoder) if image_encoder is not None else ("audio", audio_encoder)


def _media_modality(media, encoder):
    """The `Modality` of the image or audio input of `encoder` (a whole encoder model, not a registered tower, so
    `tower` is None)."""
    if media == "audio":
        from mmzoo.towers.audio_features import LogMelSpectrogram

        rates = {layer.sample_rate for layer in encoder._flatten_layers(include_self=False, recursive=True)
                 if isinstance(layer, LogMelSpectrogram)}
        shape = tuple(encoder.input.shape[1:])
        if len(rates) != 1 or len(shape) != 1 or shape[0] is None:
            raise ValueError("`audio_encoder` must take waveforms (batch, num_samples) into one mmzoo audio front end "
                             f"(an audio tower). Received: input shape {encoder.input.shape}, sampling rates "
                             f"{sorted(rates)}")
        options = {"sample_rate": int(next(iter(rates))), "num_samples": int(shape[0])}
        return Modality(name="audio", kind="audio", tower=None, backbone_key="audio", shape=shape, dtype="float32",
                        options=types.MappingProxyType(options))
    pixels = tuple(encoder.input.shape[1:])
    height, width = pixels[:2]
    return Modality(
        name="image", kind="image", tower=None, backbone_key="image", shape=pixels, dtype="float32",
        options=types.MappingProxyType({"image_size": height if height == width else (height, width)}),
    )


def _dual_modalities(media, media_encoder, vectorizer):
    vocabulary = tuple(str(token) for token in vectorizer.get_vocabulary(include_special_tokens=False))
    length = vectorizer.get_config()["output_sequence_length"]
    text = Modality(
        name="text", kind="text", tower=None, backbone_key="token_ids", shape=(), dtype="string",
        options=types.MappingProxyType({"vocabulary": vocabulary, "sequence_length": length}),
    )
    return {media: _media_modality(media, media_encoder), "text": text}


def gather_global_batch(*values):
    """`(*gathered, offset)`: each of `values` from every replica's batch, concatenated in replica order, and where
    this replica's rows start. Outside `tf.distribute` (or on one replica): the values themselves and 0.

    `ReplicaContext.all_gather` has a gradient: the upstream gradients of all replicas, summed, sliced to this
    replica's rows. One call per value: the gradient of a gathered *list* packs the gradients into one tensor and
    fails when their ranks differ (TF 2.21)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return (*values, 0)
    gathered = [context.all_gather(value, axis=0) for value in values]
    sizes = context.all_gather(tf.shape(values[0])[:1], axis=0)
    offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    return (*gathered, offset)


def _ranks_of_diagonal(scores):
    """For each row, how many other columns score at least as high as the diagonal (0 = retrieved first).
    Ties count against the query, so collapsed embeddings score recall 0, not 1."""
    correct = ops.expand_dims(ops.diagonal(scores), 1)
    return ops.sum(ops.cast(scores >= correct, "int32"), axis=1) - 1


# === Building ===


def build_dual_encoder(
    *,
    image_tower=None,
    text_tower="bilstm",
    vocabulary=None,
    texts=None,
    max_tokens=None,
    image_size=64,
    sequence_length=32,
    image_weights=None,
    trainable_stages=None,
    image_pooling="average",
    audio_tower=None,
    audio_options=None,
    embedding_dim=128,
    text_units=128,
    projection_dim=64,
    dropout=0.0,
    temperature=0.07,
    learn_temperature=True,
    min_temperature=0.01,
    max_temperature=1.0,
    recall_at=(1, 5, 10),
    seed=None,
    name="dual_encoder",
):
    """A `DualEncoder` over an mmzoo image tower (default "small_cnn") or audio tower, and a text tower, each
    followed by a linear projection to `projection_dim` and L2 normalisation (float32, also under mixed
    precision).

    `image_pooling`: how the image tower's feature map becomes a vector: "average" (global average pooling)
    or "flatten" (all spatial positions, so the projection can tell where things are). Give the `vocabulary`
    (a list of tokens) or `texts` to adapt one from (at most `max_tokens` entries). Every setting is checked
    here, before anything is built.

    Speech <-> text: `audio_tower` ("mel_cnn" or "mel_crnn") in place of an image tower, with `audio_options`
    (the audio input kind's options: `sample_rate`, `num_samples`, `mel_bins`, `frame_step_ms`, `audio_widths`,
    `audio_units`, ...; docs/audio.md); its pooled output is projected. The encoder takes waveforms under
    "audio"; the image arguments are then not used.
    """
    _check_positive_int(projection_dim, "projection_dim")
    _check_positive_int(embedding_dim, "embedding_dim")
    _check_positive_int(text_units, "text_units")
    if image_pooling not in IMAGE_POOLING:
        raise ValueError(f"`image_pooling` must be one of {', '.join(IMAGE_POOLING)}. Received: image_pooling={image_pooling!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
    if audio_tower is not None and image_tower is not None:
        raise ValueError("Give `image_tower` or `audio_tower` (what the texts are matched with), not both. "
                         f"Received: image_tower={image_tower!r}, audio_tower={audio_tower!r}")
    if audio_options is not None and (audio_tower is None or not isinstance(audio_options, dict)):
        raise ValueError("`audio_options` is a dict of audio input options that goes with `audio_tower`. "
                         f"Received: audio_tower={audio_tower!r}, audio_options={audio_options!r}")
    check_temperatures(temperature, min_temperature, max_temperature)
    check_recall_at(recall_at)
    vocabulary = list(_resolve_vocabulary(vocabulary, texts, max_tokens))

    if audio_tower is not None:
        media = {"audio_encoder": _build_audio_encoder(audio_tower, audio_options or {}, projection_dim, dropout)}
    else:
        media = {"image_encoder": _build_image_encoder(
            image_tower or "small_cnn", image_size=image_size, image_weights=image_weights,
            trainable_stages=trainable_stages, image_pooling=image_pooling, projection_dim=projection_dim,
            dropout=dropout)}
    text_encoder = _build_text_encoder(text_tower, vocabulary, sequence_length=sequence_length,
                                       embedding_dim=embedding_dim, text_units=text_units,
                                       projection_dim=projection_dim, dropout=dropout)
    return DualEncoder(
        **media,
        text_encoder=text_encoder,
        temperature=temperature,
        learn_temperature=learn_temperature,
        min_temperature=min_temperature,
        max_temperature=max_temperature,
        recall_at=recall_at,
        seed=seed,
        name=name,
    )


def _build_image_encoder(image_tower, *, image_size, image_weights, trainable_stages, image_pooling, projection_dim,
                         dropout):
    """pixels -> tower -> projection -> unit-norm embedding."""
    tower = build_image_tower(
        image_tower,
        image_size=image_size,
        output="pooled" if image_pooling == "average" else "tokens",
        weights=image_weights,
        trainable_stages=trainable_stages,
        name=f"{image_tower}_tower",
    )
    pixels = keras.Input((image_size, image_size, 3), name="image")
    features = tower(pixels)
    if image_pooling == "flatten":
        features = keras.layers.Flatten(name="image_flatten")(features)
    return keras.Model(pixels, _projection(features, projection_dim, dropout, "image"), name=IMAGE_ENCODER_NAME)


def _build_audio_encoder(audio_tower, options, projection_dim, dropout):
    """waveform -> audio tower (log-mel front end inside, pooled over valid time steps) -> projection -> unit-norm
    embedding. `options`: the audio input kind's, checked as a classifier's audio input's are."""
    from mmzoo.towers import get_input_kind, get_tower
    from mmzoo.towers.audio import apply_audio_tower

    get_tower(audio_tower, kind="audio", argument="audio_tower")
    kind = get_input_kind("audio")
    kind.check_options("audio", options)
    resolved = {**kind.defaults, **options}
    waveform = keras.Input((resolved["num_samples"],), name="audio")
    features = apply_audio_tower(waveform, audio_tower, output="pooled", dropout=dropout, name=f"{audio_tower}_tower",
                                 **resolved)
    return keras.Model(waveform, _projection(features, projection_dim, dropout, "audio"), name=AUDIO_ENCODER_NAME)


def _build_text_encoder(text_tower, vocabulary, *, sequence_length, embedding_dim, text_units, projection_dim,
                        dropout):
    """strings -> TextVectorization -> a numeric backbone (tower -> projection -> unit-norm embedding)."""
    vectorizer = build_text_vectorizer(vocabulary, sequence_length, name=VECTORIZER_NAME)
    token_ids = keras.Input((sequence_length,), dtype="int64", name="token_ids")
    text_features = apply_text_tower(
        token_ids,
        kind=text_tower,
        vocabulary_size=vectorizer.vocabulary_size(),
        embedding_dim=embedding_dim,
        units=text_units,
        output="pooled",
        dropout=dropout,
        name=f"{text_tower}_tower",
    )
    text_backbone = keras.Model(token_ids, _projection(text_features, projection_dim, dropout, "text"), name=TEXT_BACKBONE_NAME)
    strings = keras.Input((), dtype="string", name="text")
    return keras.Model(strings, text_backbone(vectorizer(strings)), name=TEXT_ENCODER_NAME)


def _projection(features, projection_dim, dropout, modality):
    if dropout:
        features = keras.layers.Dropout(dropout, name=f"{modality}_projection_dropout")(features)
    projected = keras.layers.Dense(projection_dim, name=f"{modality}_projection")(features)
    # float32: similarities and the softmax over them stay float32 under mixed_float16.
    return keras.layers.UnitNormalization(dtype="float32", name=f"{modality}_embedding")(projected)


# === Retrieval over a whole split ===


def embed_dataset(dual_encoder, dataset):
    """Embed every example of a batched dataset of `{"image", "text"}` (`{"audio", "text"}` for an audio dual
    encoder), with or without labels.

    Returns `(image (or audio) embeddings [N, dim], text_embeddings [N, dim], texts [N] as str)`, float32 numpy.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"`dataset` must be a batched tf.data.Dataset. Received: dataset={type(dataset).__name__}")
    features = dataset.map(lambda *element: keras.utils.unpack_x_y_sample_weight(element if len(element) > 1 else element[0])[0])
    media, texts, strings = [], [], []
    key, encoder = dual_encoder.media, dual_encoder.media_encoder
    embed_media = tf.function(lambda values: encoder(tf.cast(values, tf.float32), training=False))
    embed_texts = tf.function(lambda ids: dual_encoder.text_backbone(ids, training=False))
    for numeric, text in features.map(lambda x: (preprocess_features(dual_encoder, x), x["text"])):
        media.append(np.asarray(embed_media(numeric[key]), np.float32))
        texts.append(np.asarray(embed_texts(numeric["token_ids"]), np.float32))
        strings.extend(t.decode("utf-8") for t in text.numpy())
    return np.concatenate(media), np.concatenate(texts), np.array(strings, dtype=object)


def same_text_positives(texts):
    """(N, N) boolean: image i and text j match when text j equals text i (the captions of duplicate scenes)."""
    texts = np.asarray(texts, dtype=object)
    _, ids = np.unique(texts, return_inverse=True)
    return ids[:, None] == ids[None, :]


def retrieval_recall(image_embeddings, text_embeddings, ks=(1, 5, 10), positives=None, chunk_size=1024,
                     directions=DIRECTIONS):
    """Recall@k of image->text and text->image retrieval over whole sets of embeddings (cosine similarity).

    Query i's positives are `positives[i]` (image i -> texts) / `positives[:, i]` (text i -> images); default:
    only item i. A query is a hit at k when fewer than k *negatives* score at least as high as its best positive
    (ties count against it). Returns `{"i2t_recall_at_k": r, "t2i_recall_at_k": r, "i2t_chance_at_k": c, ...}`:
    `chance` is the expected recall of a random ranking (k / N with one positive per query). `directions` names
    the two directions in the keys: ("a2t", "t2a") for audio embeddings in place of image ones
    (`DualEncoder.directions`).
    """
    ks = check_recall_at(ks)
    images = _unit_rows(image_embeddings, "image_embeddings")
    texts = _unit_rows(text_embeddings, "text_embeddings")
    if images.shape != texts.shape:
        raise ValueError(
            "Image and text embeddings must pair up one to one. "
            f"Received: image_embeddings shape={images.shape}, text_embeddings shape={texts.shape}"
        )
    n = len(images)
    if positives is None:
        positives = np.eye(n, dtype=bool)
    positives = np.asarray(positives, dtype=bool)
    if positives.shape != (n, n) or not positives.diagonal().all():
        raise ValueError(f"`positives` must be an ({n}, {n}) boolean matrix with a true diagonal. Received: shape {positives.shape}")
    result = {}
    if len(directions) != 2 or not all(isinstance(d, str) and d for d in directions):
        raise ValueError(f"`directions` must be two names, e.g. ('i2t', 't2i'). Received: directions={directions!r}")
    to_text, from_text = directions
    for direction, queries, keys, matches in ((to_text, images, texts, positives), (from_text, texts, images, positives.T)):
        ranks = np.empty(n, np.int64)
        for start in range(0, n, chunk_size):
            scores = queries[start : start + chunk_size] @ keys.T
            match = matches[start : start + chunk_size]
            best = np.where(match, scores, -np.inf).max(axis=1, keepdims=True)
            ranks[start : start + chunk_size] = ((scores >= best) & ~match).sum(axis=1)
        counts = matches.sum(axis=1)
        for k in ks:
            result[f"{direction}_recall_at_{k}"] = float((ranks < k).mean())
            result[f"{direction}_chance_at_{k}"] = float(np.mean([_chance(n, int(m), k) for m in counts]))
    return result


def evaluate_retrieval(dual_encoder, dataset, ks=(1, 5, 10), match_identical_texts=True):
    """Recall@k over a whole split: every image (or recording) against every text of `dataset` and back (see
    `retrieval_recall`; keys named by `dual_encoder.directions`).

    With `match_identical_texts`, an identical caption of another example also counts as a correct answer
    (scenes with the same description cannot be told apart from it). Adds `num_examples`.
    """
    media, texts, strings = embed_dataset(dual_encoder, dataset)
    positives = same_text_positives(strings) if match_identical_texts else None
    result = retrieval_recall(media, texts, ks=ks, positives=positives, directions=dual_encoder.directions)
    result["num_examples"] = len(strings)
    return result


def _chance(n, m, k):
    """P(at least one of m positives among the first k of a random ranking of n items)."""
    if k >= n - m + 1:
        return 1.0
    miss = 1.0
    for i in range(k):
        miss *= (n - m - i) / (n - i)
    return 1.0 - miss


def _unit_rows(embeddings, name):
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"`{name}` must be a non-empty (N, dim) array. Received: shape {embeddings.shape}")
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


# === Checks ===


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_temperatures(temperature, min_temperature, max_temperature):
    for arg, value in (("temperature", temperature), ("min_temperature", min_temperature), ("max_temperature", max_temperature)):
        if not _is_number(value) or value <= 0:
            raise ValueError(f"`{arg}` must be a positive number. Received: {arg}={value!r}")
    if min_temperature > max_temperature:
        raise ValueError(
            "`min_temperature` must not exceed `max_temperature`. "
            f"Received: min_temperature={min_temperature!r}, max_temperature={max_temperature!r}"
        )
    if not min_temperature <= temperature <= max_temperature:
        raise ValueError(
            f"`temperature` must be within [min_temperature, max_temperature] = [{min_temperature}, {max_temperature}]. "
            f"Received: temperature={temperature!r}"
        )
    return float(temperature), float(min_temperature), float(max_temperature)


def check_recall_at(recall_at):
    if isinstance(recall_at, (str, bytes)) or not hasattr(recall_at, "__iter__"):
        raise ValueError(f"`recall_at` must be a list of positive integers. Received: recall_at={recall_at!r}")
    values = list(recall_at)
    if not values or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in values):
        raise ValueError(f"`recall_at` must be a non-empty list of positive integers. Received: recall_at={recall_at!r}")
    return tuple(sorted(set(int(k) for k in values)))


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _embedding_dim(model, argument):
    if not isinstance(model, keras.Model):
        raise ValueError(f"`{argument}` must be a keras.Model. Received: {argument}={model!r}")
    try:
        output = model.output
    except (AttributeError, ValueError):  # a model that was never called has no symbolic output
        output = None
    shape = tuple(output.shape) if output is not None and not isinstance(output, (dict, list, tuple)) else None
    if shape is None or len(shape) != 2 or shape[-1] is None:
        raise ValueError(f"`{argument}` must be a functional model returning one (batch, dim) embedding. Received output: {output!r}")
    return shape[-1]


def _split_text_encoder(text_encoder):
    """The text encoder's TextVectorization and the numeric model after it."""
    if not isinstance(text_encoder, keras.Model):
        raise ValueError(f"`text_encoder` must be a keras.Model. Received: text_encoder={text_encoder!r}")
    vectorizers = [layer for layer in text_encoder.layers if isinstance(layer, keras.layers.TextVectorization)]
    backbones = [layer for layer in text_encoder.layers if isinstance(layer, keras.Model)]
    if len(vectorizers) != 1 or len(backbones) != 1 or len(text_encoder.layers) != 3:
        raise ValueError(
            "`text_encoder` must be strings -> TextVectorization -> a numeric keras.Model (token ids -> embedding), "
            "as build_dual_encoder builds it, so the vectorizer can run in the input pipeline. "
            f"Received layers: {[layer.name for layer in text_encoder.layers]}"
        )
    return vectorizers[0], backbones[0]
