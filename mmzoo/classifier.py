"""Multimodal classifiers: a dict of named raw inputs in, logits out.

    raw inputs --input-pipeline layers (text: TextVectorization)--> numeric inputs --+
                                                                                     +--> backbone: towers
    raw inputs that need nothing there (pixels) -------------------------------------+    -> fusion -> head

The backbone is a nested, all-numeric functional model (`model.backbone`). Keeping string vectorization in front
of it lets training run it in the tf.data pipeline under `tf.distribute` (strings cannot be replicated) while the
full model, and so its export, still takes raw strings. docs/architecture.md draws the whole path from a dataset
row to a served signature and says why strings stay out of the replicated graph.
"""

import json
import os
import re
import zipfile

import keras

import mmzoo.optimizers  # noqa: F401  (registers the fused Adam, so load_model restores models compiled with it)
from mmzoo.fusion import FUSIONS
from mmzoo.fusion.presence import ModalityDropout, presence_key, resolve_rates
from mmzoo.heads import ClassifierHead
from mmzoo.towers import adapt_vocabulary, get_input_kind, get_tower

BACKBONE_NAME = "backbone"
FUSION_NAME = "fusion"
VECTORIZER_NAME = "text_vectorizer"


# Builder arguments that set an option of every input of one kind (a `towers` entry may override them per input).
_KIND_OPTIONS = {
    "image": ("image_size", "image_weights", "trainable_stages"),
    "text": ("vocabulary", "sequence_length", "embedding_dim", "text_units", "text_token_embeddings"),
    "audio": ("sample_rate", "num_samples", "mel_bins", "audio_units", "spec_augment"),
}


def build_classifier(
    *,
    towers=None,
    image_tower=None,
    text_tower=None,
    fusion=None,
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
    sample_rate=16000,
    num_samples=32000,
    mel_bins=40,
    audio_units=128,
    spec_augment=None,
    fusion_units=256,
    fusion_options=None,
    head_hidden_units=None,
    dropout=0.1,
    modality_dropout=None,
    modality_dropout_seed=None,
    name="mmzoo_classifier",
):
    """A `MultimodalClassifier`: one tower per named input, a fusion layer and a classification head.

    `towers` maps each input name to a registered tower (`mmzoo.towers.list_towers()`), or to a dict
    `{"tower": name, **options}` overriding this input's options (e.g. `{"tower": "small_cnn", "image_size": 48}`):
    `towers={"front": "small_cnn", "side": "small_cnn", "question": "gru"}`. The inputs reach the fusion in the
    order given. `image_tower=` / `text_tower=` are the two-input shorthand for
    `towers={"image": image_tower, "text": text_tower}`; give one of them alone (with `fusion=None`) for a
    single-input classifier, e.g. the student of cross-modal distillation.

    Text inputs share `vocabulary` (a list of tokens) or one adapted from `texts` (at most `max_tokens` entries).
    `num_classes` may be left out when `class_names` is given. `fusion_options` passes family-specific arguments
    to the fusion layer (e.g. `{"num_heads": 4}` or `{"rank": 8}`). `text_token_embeddings=True` gives a token
    fusion each word's embedding beside its recurrent state (`mmzoo.towers.apply_text_tower`).

    Missing inputs (docs/robustness.md): with `modality_dropout` (a rate in [0, 1) for every input, or
    `{name: rate}`; 0 drops nothing) or `fusion="late"`, the model also takes a boolean `<name>_present` flag per
    input and example, and can be called without an input: the fusion then leaves it out. In training,
    `modality_dropout` switches inputs off per example at those rates (`ModalityDropout`, seeded by
    `modality_dropout_seed`), never all of them.
    """
    towers = _resolve_towers(towers, image_tower, text_tower)
    if any(get_tower(_tower_name(spec), argument=f"towers[{key!r}]").kind == "text" for key, spec in towers.items()):
        vocabulary = _resolve_vocabulary(vocabulary, texts, max_tokens)
    elif texts is not None:
        raise ValueError("`texts` adapts a vocabulary for text inputs; this classifier has none. Received: texts=...")
    return MultimodalClassifier(
        towers=towers, fusion=fusion, num_classes=_resolve_num_classes(num_classes, class_names),
        class_names=class_names, vocabulary=vocabulary, image_size=image_size, sequence_length=sequence_length,
        image_weights=image_weights, trainable_stages=trainable_stages, embedding_dim=embedding_dim,
        text_units=text_units, text_token_embeddings=text_token_embeddings, fusion_units=fusion_units,
        fusion_options=fusion_options, head_hidden_units=head_hidden_units, dropout=dropout,
        modality_dropout=modality_dropout, modality_dropout_seed=modality_dropout_seed, name=name,
        **_audio_arguments(towers, sample_rate=sample_rate, num_samples=num_samples, mel_bins=mel_bins,
                           audio_units=audio_units, spec_augment=spec_augment),
    )


def _audio_arguments(towers, **arguments):
    """The audio builder arguments if an input of `towers` is audio; else none (ignored, as `image_size` is by a
    model without images), so that the configs of other models stay as earlier versions wrote them."""
    if any(get_tower(_tower_name(spec), argument=f"towers[{key!r}]").kind == "audio" for key, spec in towers.items()):
        return arguments
    return {}


def _resolve_towers(towers, image_tower, text_tower):
    if towers is not None:
        if image_tower is not None or text_tower is not None:
            raise ValueError(
                "Give `towers` or the two-input shorthand `image_tower`/`text_tower`, not both. "
                f"Received: towers={towers!r}, image_tower={image_tower!r}, text_tower={text_tower!r}"
            )
        if not isinstance(towers, dict) or not towers:
            raise ValueError(f"`towers` must be a non-empty dict {{input name: tower}}. Received: towers={towers!r}")
        return dict(towers)
    if image_tower is None and text_tower is None:
        raise ValueError("Give an `image_tower`, a `text_tower` or both. Received: image_tower=None, text_tower=None")
    shorthand = {"image": (image_tower, "image"), "text": (text_tower, "text")}
    for key, (tower, kind) in shorthand.items():
        if tower is not None:
            get_tower(tower, kind=kind, argument=f"{kind}_tower")
    return {key: tower for key, (tower, _) in shorthand.items() if tower is not None}


def _tower_name(spec):
    return spec.get("tower") if isinstance(spec, dict) else spec


@keras.saving.register_keras_serializable(package="mmzoo")
class MultimodalClassifier(keras.Model):
    """Named raw inputs (pixels 0..255, strings) -> class logits, through one tower per input, a fusion layer
    and a `ClassifierHead`. Build it with `mmzoo.build_model` / `mmzoo.build_classifier` (which also adapt a
    vocabulary from texts); the constructor takes the resolved arguments and `get_config` returns them, so
    `from_config` (and `.keras` loading) rebuilds the same model.

    What consumers need is asked of the model, not searched for in its graph: `modalities` (each input's kind,
    tower, shapes and options), `backbone` (the numeric model trained under `tf.distribute`),
    `preprocess_inputs` (what must run in the input pipeline), `vectorizers`, `image_towers`, `fusion`, `head`,
    `class_names`.
    """

    def __init__(self, towers, num_classes, fusion=None, class_names=None, vocabulary=None, image_size=224,
                 sequence_length=32, image_weights=None, trainable_stages=None, embedding_dim=128, text_units=128,
                 text_token_embeddings=False, fusion_units=256, fusion_options=None, head_hidden_units=None,
                 dropout=0.1, modality_dropout=None, modality_dropout_seed=None, name="mmzoo_classifier",
                 sample_rate=16000, num_samples=32000, mel_bins=40, audio_units=128, spec_augment=None, **kwargs):
        shared = dict(image_size=image_size, image_weights=image_weights, trainable_stages=trainable_stages,
                      vocabulary=vocabulary, sequence_length=sequence_length, embedding_dim=embedding_dim,
                      text_units=text_units, text_token_embeddings=text_token_embeddings, sample_rate=sample_rate,
                      num_samples=num_samples, mel_bins=mel_bins, audio_units=audio_units, spec_augment=spec_augment)
        modalities = _modalities(towers, shared)
        output = _check_fusion(fusion, modalities, text_token_embeddings)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        presence = _check_presence_options(fusion, modalities, modality_dropout, head_hidden_units)

        # === Layers ===
        head = ClassifierHead(num_classes, class_names=class_names, hidden_units=head_hidden_units, dropout=dropout,
                              name="head")
        joint = _joint_layer(fusion, fusion_units, fusion_options, list(modalities))
        pipeline = {key: get_input_kind(m.kind).pipeline_layer(m) for key, m in modalities.items()}

        # === Backbone: numeric inputs -> logits ===
        backbone_inputs, features = {}, []
        for key, modality in modalities.items():
            kind = get_input_kind(modality.kind)
            backbone_inputs[modality.backbone_key] = kind.backbone_input(modality)
            features.append(kind.encode(modality, backbone_inputs[modality.backbone_key], output=output,
                                        dropout=dropout))
        logits = head(_fuse(joint, features, modalities, backbone_inputs, presence, modality_dropout,
                            modality_dropout_seed))
        backbone = keras.Model(backbone_inputs, logits, name=BACKBONE_NAME)

        # === Functional model on raw inputs ===
        inputs, feed = {}, {}
        for key, modality in modalities.items():
            inputs[key] = get_input_kind(modality.kind).raw_input(modality)
            feed[modality.backbone_key] = inputs[key] if pipeline[key] is None else pipeline[key](inputs[key])
        if presence:
            feed.update(_presence_inputs(modalities, inputs, as_dict=True))
        super().__init__(inputs=inputs, outputs=backbone(feed), name=name, **kwargs)

        # === Config ===
        self._modalities = modalities
        self._backbone_model = backbone
        self._pipeline_layers = {key: layer for key, layer in pipeline.items() if layer is not None}
        self._takes_presence = bool(presence)
        # Kept, not read back from the order Keras flattens the fusion's call arguments in.
        self._fusion_features = tuple(features)
        self._config = dict(
            towers=_without_weight_files(towers), num_classes=num_classes, fusion=fusion,
            class_names=None if class_names is None else [str(c) for c in class_names],
            vocabulary=None if vocabulary is None else [str(t) for t in vocabulary], image_size=image_size,
            sequence_length=sequence_length, image_weights=None, trainable_stages=trainable_stages,
            embedding_dim=embedding_dim, text_units=text_units, text_token_embeddings=text_token_embeddings,
            fusion_units=fusion_units, fusion_options=_recorded_fusion_options(fusion, fusion_options),
            head_hidden_units=head_hidden_units, dropout=dropout, **_recorded_audio(modalities, shared),
        )
        if presence:  # only then, so the configs of other models stay as earlier versions wrote them
            self._config.update({"modality_dropout": _plain(modality_dropout),
                                 "modality_dropout_seed": modality_dropout_seed})

    # === What the model is ===

    @property
    def modalities(self):
        """`{input name: Modality}` in the order the inputs reach the fusion (see mmzoo/towers/registry.py)."""
        return dict(self._modalities)

    @property
    def backbone(self):
        """The numeric model `{modality.backbone_key: pixels or token ids} -> logits`, sharing this model's weights."""
        return self._backbone_model

    def preprocess_inputs(self, features):
        """Raw features -> the backbone's numeric inputs (strings vectorized; pixels as they are, or resized to
        their input's size as an export resizes them). Runs in tf.data
        (`mmzoo.preprocessing.preprocess_dataset`) or eagerly. A model that takes presence flags gets them
        from `features` (`<name>_present`) or, where not given, as all present."""
        fed = {}
        for key, modality in self._modalities.items():
            value = get_input_kind(modality.kind).prepare(modality, features[key])
            layer = self._pipeline_layers.get(key)
            fed[modality.backbone_key] = value if layer is None else layer(value)
            if self._takes_presence:
                flag = features.get(presence_key(key))
                fed[presence_key(key)] = _all_present(modality, features[key]) if flag is None else flag
        return fed

    @property
    def fusion_features(self):
        """The backbone's symbolic tensors the fusion takes, one per input in modality order."""
        return self._fusion_features

    @property
    def takes_presence(self):
        """Whether the model takes `<name>_present` flags (and may be called without some inputs)."""
        return self._takes_presence

    def __call__(self, inputs, *args, **kwargs):
        """A model that takes presence flags may be called without some of its inputs or flags: a missing flag
        means present, a missing input absent (a placeholder fills its place, which the fusion leaves out)."""
        if getattr(self, "_takes_presence", False) and isinstance(inputs, dict):
            inputs = complete_inputs(self._modalities, inputs)
        return super().__call__(inputs, *args, **kwargs)

    @property
    def vectorizers(self):
        """`{text input name: TextVectorization}`: the layers that must run in the input pipeline."""
        return {key: layer for key, layer in self._pipeline_layers.items() if self._modalities[key].kind == "text"}

    @property
    def image_towers(self):
        """`{image input name: tower model}` (pixels -> pooled features or tokens), sharing weights."""
        prefixes = {key: get_input_kind("image").layer_prefix(m) for key, m in self._modalities.items()
                    if m.kind == "image"}
        return {key: self._backbone_model.get_layer(prefix) for key, prefix in prefixes.items()}

    @property
    def audio_towers(self):
        """`{audio input name: tower model}` (waveform -> pooled features, or `[tokens, token_mask]`), sharing
        weights."""
        prefixes = {key: get_input_kind("audio").layer_prefix(m) for key, m in self._modalities.items()
                    if m.kind == "audio"}
        return {key: self._backbone_model.get_layer(prefix) for key, prefix in prefixes.items()}

    @property
    def fusion(self):
        """The fusion layer (for one input, the Dense projection standing in for it)."""
        return self._backbone_model.get_layer(FUSION_NAME)

    @property
    def head(self):
        return self._backbone_model.get_layer("head")

    @property
    def class_names(self):
        return self.head.class_names

    @property
    def num_classes(self):
        return self.head.num_classes

    @property
    def image_size(self):
        """The first image input's size in pixels, or None without image inputs."""
        sizes = [m.image_size for m in self._modalities.values() if m.kind == "image"]
        return sizes[0] if sizes else None

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._config}

    @classmethod
    def from_config(cls, config):
        # Options whose defaults changed since the model was saved take the values it was trained with.
        fusion = config.get("fusion")
        if fusion in FUSIONS:
            config = {**config, "fusion_options": FUSIONS[fusion].saved_options(config.get("fusion_options"))}
        return cls(**config)


def _recorded_fusion_options(fusion, options):
    options = None if options is None else dict(options)
    return FUSIONS[fusion].recorded_options(options) if fusion in FUSIONS else options


def _without_weight_files(towers):
    """`towers` as the config stores it: a saved model's weights come from its own file, so no tower's
    `image_weights` (a path that may be gone, or "imagenet", a download) is loaded again when it is rebuilt."""
    return {key: {k: v for k, v in spec.items() if k != "image_weights"} if isinstance(spec, dict) else spec
            for key, spec in towers.items()}


def _check_presence_options(fusion, modalities, modality_dropout, head_hidden_units):
    """The modality dropout rates in modality order if the model takes presence flags (all 0 for late fusion
    without dropout), else None; one-line errors for a combination that cannot take them."""
    if modality_dropout is None and fusion != "late":
        return None
    if len(modalities) < 2:
        raise ValueError("Modality dropout leaves inputs out of a multimodal model; this one has a single input. "
                         f"Received: modality_dropout={modality_dropout!r}, towers {list(modalities)}")
    if fusion in FUSIONS and not FUSIONS[fusion].supports_presence:
        able = ", ".join(sorted(name for name, cls in FUSIONS.items() if cls.supports_presence))
        raise ValueError(f"The {fusion!r} fusion cannot leave an input out, so it takes no modality dropout; use one "
                         f"of {able}. Received: fusion={fusion!r}, modality_dropout={modality_dropout!r}")
    if fusion == "late" and head_hidden_units is not None:
        raise ValueError("Late fusion averages each input's logits, which needs an affine head after it (no hidden "
                         f"layer). Received: fusion='late', head_hidden_units={head_hidden_units!r}")
    return resolve_rates(0.0 if modality_dropout is None else modality_dropout, list(modalities))


def _fuse(joint, features, modalities, backbone_inputs, rates, modality_dropout, seed):
    """The fusion's output over `features`. A model that takes flags (`rates`, from `_check_presence_options`)
    gets one `<name>_present` input per modality in `backbone_inputs`, through `ModalityDropout` when
    `modality_dropout` is set."""
    if not rates:
        return joint(features if len(features) > 1 else features[0])
    flags = _presence_inputs(modalities, backbone_inputs)
    if modality_dropout is not None:
        flags = ModalityDropout(rates, list(modalities), seed=seed, name="modality_dropout")(flags)
    return joint(features, presence=flags)


def _presence_inputs(modalities, inputs, as_dict=False):
    """One boolean `<name>_present` input per modality, added to `inputs`; returned as a list (or dict)."""
    for key in modalities:
        if presence_key(key) in inputs:
            raise ValueError(f"The input name {presence_key(key)!r} is taken by the presence flag of input {key!r}; "
                             f"rename that input. Received: inputs {list(modalities)}")
    flags = {presence_key(key): keras.Input((), dtype="bool", name=presence_key(key)) for key in modalities}
    inputs.update(flags)
    return flags if as_dict else list(flags.values())


def complete_inputs(modalities, inputs):
    """`inputs` with every input and presence flag a model over `modalities` takes: a missing flag means present;
    a missing (or None) input gets its kind's placeholder (`InputKind.placeholder`) and an all-False flag. Everything is
    turned into tensors when something is filled in, since Keras refuses arrays and tensors mixed in one call."""
    import tensorflow as tf

    given = {key: inputs[key] for key in modalities if inputs.get(key) is not None}
    flags = [presence_key(key) for key in modalities]
    if len(given) == len(modalities) and all(inputs.get(flag) is not None for flag in flags):
        return inputs
    if not given:
        raise ValueError(f"A model needs at least one of its inputs {list(modalities)}. Received: "
                         f"{sorted(key for key, value in inputs.items() if value is not None)}")
    if any(isinstance(value, keras.KerasTensor) for value in inputs.values()):
        raise ValueError("Called on symbolic inputs, a model needs every input and presence flag. Received: "
                         f"{sorted(inputs)}; expected {list(modalities) + flags}")
    completed = {key: tf.convert_to_tensor(value) for key, value in inputs.items() if value is not None}
    first = next(iter(given))
    batch = tf.shape(completed[first])[0]
    for key, modality in modalities.items():
        flag = presence_key(key)
        if key not in given:
            completed[key] = get_input_kind(modality.kind).placeholder(modality, batch)
            completed[flag] = tf.zeros([batch], tf.bool)
        elif inputs.get(flag) is None:
            completed[flag] = tf.ones([batch], tf.bool)
        else:
            completed[flag] = tf.cast(completed[flag], tf.bool)
    return completed


def _all_present(modality, value):
    """True flags, one per example of a raw `value` of `modality` (batched or not)."""
    import tensorflow as tf

    shape = tf.shape(value)
    # Whatever the kind: the axes before one example's (`modality.shape`) are the batch's.
    return tf.ones(shape[:tf.size(shape) - len(modality.shape)], dtype=tf.bool)


def _recorded_audio(modalities, shared):
    """The audio builder arguments (`_KIND_OPTIONS["audio"]` of `shared`) as a config stores them, a
    `spec_augment` dict copied; none for a model without an audio input, so that the configs of other models
    stay as earlier versions wrote them (as for the presence options)."""
    if not any(m.kind == "audio" for m in modalities.values()):
        return {}
    audio = {key: shared[key] for key in _KIND_OPTIONS["audio"]}
    spec_augment = audio["spec_augment"]
    return dict(audio, spec_augment=dict(spec_augment) if isinstance(spec_augment, dict) else spec_augment)


def _plain(value):
    """A JSON-friendly copy of a config value (dicts copied, numbers as floats)."""
    return {k: float(v) for k, v in value.items()} if isinstance(value, dict) else value


def _modalities(towers, shared):
    """`{input name: Modality}` for `towers`, each input's options being `shared`'s for its kind plus overrides."""
    modalities = {}
    for key, spec in towers.items():
        if not isinstance(key, str) or not key.isidentifier() or not key.islower():
            raise ValueError(
                f"Input names must be lowercase identifiers (they name inputs and layers). Received: {key!r}"
            )
        overrides = dict(spec) if isinstance(spec, dict) else {"tower": spec}
        tower = get_tower(overrides.pop("tower", None), argument=f"towers[{key!r}]")
        kind = get_input_kind(tower.kind)
        options = {option: shared[option] for option in _KIND_OPTIONS.get(tower.kind, ())}
        modalities[key] = kind.modality(key, tower.name, {**options, **overrides})
    backbone_keys = [m.backbone_key for m in modalities.values()]
    clashes = sorted({key for key in backbone_keys if backbone_keys.count(key) > 1})
    if clashes:
        raise ValueError(f"Two inputs would feed the backbone under the same name {clashes}; rename one. "
                         f"Received: inputs {list(modalities)}")
    return modalities


def _check_fusion(fusion, modalities, text_token_embeddings):
    """The towers' output mode ("tokens" or "pooled") for `fusion` over `modalities`; one-line errors."""
    if len(modalities) == 1:
        if fusion is not None:
            raise ValueError(
                "A single-tower classifier has nothing to fuse; leave `fusion` as None. "
                f"Received: towers={ {k: m.tower for k, m in modalities.items()} }, fusion={fusion!r}"
            )
        output = "pooled"
    else:
        if fusion not in FUSIONS:
            raise ValueError(
                f"Unknown fusion '{fusion}'. Expected one of: {', '.join(sorted(FUSIONS))}. Received: fusion={fusion!r}"
            )
        limit = getattr(FUSIONS[fusion], "max_inputs", None)
        if limit is not None and len(modalities) > limit:
            any_number = ", ".join(sorted(name for name, cls in FUSIONS.items() if cls.max_inputs is None))
            raise ValueError(
                f"The {fusion!r} fusion takes at most {limit} inputs; for more use one of {any_number}. "
                f"Received: {len(modalities)} inputs {list(modalities)}"
            )
        output = "tokens" if FUSIONS[fusion].requires_tokens else "pooled"
    if text_token_embeddings and output != "tokens":
        raise ValueError(
            "`text_token_embeddings=True` needs a fusion that attends over text tokens (e.g. glimpse, attention). "
            f"Received: text_token_embeddings=True with fusion={fusion!r}"
        )
    return output


def _joint_layer(fusion, units, options, names):
    if fusion is None:
        # One input: a projection plays the fusion's part, so every classifier has an embedding of width
        # `units` in front of its head (what feature distillation matches).
        return keras.layers.Dense(units, activation="relu", name=FUSION_NAME)
    return FUSIONS[fusion](units=units, modalities=names, name=FUSION_NAME, **(options or {}))


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
    """The numeric part of a classifier (`model.backbone`): `{"image", "token_ids"}` -> logits, sharing weights."""
    return model.backbone


def get_vectorizer(model):
    """The TextVectorization of the classifier's text input ("text", or its only text input); None if it has none."""
    vectorizers = model.vectorizers
    if "text" in vectorizers or len(vectorizers) > 1:
        return vectorizers.get("text")
    return next(iter(vectorizers.values()), None)


def get_image_tower(model):
    """The classifier's image tower ("image", or its only image input's), sharing weights; None if it has none.

    Set `get_image_tower(model).trainable = False` to keep a pretrained tower fixed while the rest trains.
    """
    towers = model.image_towers
    if "image" in towers or len(towers) > 1:
        return towers.get("image")
    return next(iter(towers.values()), None)


def get_embedding_model(model):
    """The backbone's numeric inputs -> the joint embedding in front of the head (the fusion's output)."""
    backbone = model.backbone
    return keras.Model(backbone.input, model.head.input, name="embedding")


def get_modality_logits_model(model):
    """For a late-fusion classifier: the backbone's inputs -> `{"logits": the model's logits, "<input>_logits":
    each input's own logits}`, sharing the model's weights.

    Each input's logits are the classifier head applied to that input's own head output (`LateFusion.
    modality_outputs`); the model's logits are their mean over the inputs present. Per-input auxiliary losses
    are then Keras' own multi-output training: compile this model with one loss per output and `loss_weights`
    (e.g. 1.0 for "logits", 0.3 for each input's) and fit it on the preprocessed dataset with the label repeated
    for every output (docs/robustness.md); the classifier itself is what gets trained, saved and exported.
    """
    from mmzoo.fusion.late import LateFusion

    fusion, backbone = model.fusion, model.backbone
    if not isinstance(fusion, LateFusion):
        raise ValueError(f"Per-input logits need a late-fusion classifier (fusion='late'). Received: {model.name!r} "
                         f"with fusion {type(fusion).__name__}")
    outputs = {"logits": backbone.output}
    for key, z in zip(model.modalities, fusion.modality_outputs(list(model.fusion_features))):
        outputs[f"{key}_logits"] = model.head(z)
    return keras.Model(backbone.input, outputs, name="modality_logits")


class _GivenTowerOutput(keras.layers.Layer):
    """Stands in for the image tower in `get_feature_model`: its input already is the tower's output."""

    def call(self, inputs, mask=None):
        return inputs


def get_feature_model(model):
    """The backbone after its image towers: each image input replaced by its tower's output -> logits, sharing
    weights.

    With the tower frozen, fitting this on tower outputs computed once trains the classifier exactly as fitting
    the backbone would, without running the tower again every epoch (`mmzoo train` does this after object
    pretraining). A training-time view: save and export `model` itself.
    """
    backbone = model.backbone
    towers = {model.modalities[key].backbone_key: tower for key, tower in model.image_towers.items()}
    if not towers:
        raise ValueError(
            f"A feature model needs a classifier with an image tower. Received: {model.name!r}, which has none"
        )
    inputs = {
        key: keras.Input(towers[key].output.shape[1:], name=key) if key in towers
        else keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=key)
        for key, tensor in backbone.input.items()
    }
    names = {id(tower): f"{key}_features" if key != "image" else "image_features" for key, tower in towers.items()}
    return keras.models.clone_model(
        backbone,
        input_tensors=inputs,
        # Every other layer is the backbone's own (so its weights are shared), called again on the new inputs.
        clone_function=lambda layer: _GivenTowerOutput(name=names[id(layer)]) if id(layer) in names else layer,
    )


def load_model(path, safe_mode=True):
    """`keras.saving.load_model` for a saved mmzoo classifier (`model.save("m.keras")`).

    Importing this module registers every mmzoo layer (towers, fusion, heads) and optimizer, and this function
    registers the captioner's; `import mmzoo` alone is lazy and registers nothing, so a bare
    `keras.saving.load_model` would not know them. A classifier saved by mmzoo 0.1.0 (a plain functional model) comes back as a `MultimodalClassifier` with the same weights.

    Raises `ModelFileError` (a ValueError), in one line naming the file, for a file that is missing, not a
    `.keras` archive, without `config.json`, naming a class nothing registered, or otherwise unreadable.
    """
    # Imported here, not at the top: the captioner's module imports towers that import this one, and a saved
    # captioner must load in a process that never touched mmzoo.captioning (its classes register on import).
    import mmzoo.captioning.model  # noqa: F401
    from mmzoo.compat import upgrade_classifier

    path = os.fspath(path)
    _check_model_file(path)
    try:
        model = keras.saving.load_model(path, safe_mode=safe_mode)
    except (KeyError, TypeError, ValueError, OSError, RuntimeError, AttributeError) as error:
        raise ModelFileError(f"Cannot load the model {path}: {_load_failure(error)}") from error
    return upgrade_classifier(model)


class ModelFileError(ValueError):
    """A saved model file that cannot be loaded; the message names the file and what is wrong."""


def _check_model_file(path):
    """What can be told of a `.keras` file before Keras reads it: there, a zip archive, with a JSON config."""
    if not os.path.isfile(path):
        raise ModelFileError(f"No model file at {path}: expected a .keras file (as model.save() writes).")
    if not path.endswith(".keras"):
        return  # a legacy .h5 model: Keras tells
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"Cannot load the model {path}: not a .keras archive (a .keras file is a zip file); "
                             "it may be cut short or not a model at all.")
    try:
        with zipfile.ZipFile(path) as archive:
            json.loads(archive.read("config.json"))
    except KeyError:
        raise ModelFileError(f"Cannot load the model {path}: the archive has no config.json, so it is not a "
                             ".keras model file.") from None
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"Cannot load the model {path}: its config.json is unreadable ({error}).") from None


def _load_failure(error):
    """One line saying why Keras could not load a model: the unregistered class if one is named anywhere in the
    chain of errors, else the first line of the innermost message, shortened (Keras appends whole configs)."""
    chain = []
    while error is not None and len(chain) < 20:
        chain.append(error)
        error = error.__cause__ or error.__context__
    for link in chain:
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", str(link))
        if missing:
            return (f"it names {missing.group(1)!r}, which nothing registered; import the code that defines it "
                    "(decorated with @keras.saving.register_keras_serializable) before loading.")
    message = " ".join(str(chain[-1]).strip().splitlines()[:1]).strip() or type(chain[-1]).__name__
    return message if len(message) <= 240 else message[:237] + "..."
