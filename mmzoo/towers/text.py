"""Text towers: raw strings -> token ids (`TextVectorization`) -> Embedding(mask_zero) -> LSTM / BiLSTM / GRU.

Vectorization and the recurrent encoder are split on purpose: the vectorizer turns strings into ids and is the
only piece that cannot run inside a replicated `tf.distribute` graph (docs/architecture.md), so the model keeps it
in front of an all-numeric backbone. The encoder is applied inline in the backbone graph, which keeps the Keras
padding mask attached to token outputs so fusion layers can ignore padding.
"""

import keras

from mmzoo.towers.registry import InputKind, get_tower, register_input_kind, register_tower

SPECIAL_TOKENS = ("", "[UNK]")
OUTPUT_MODES = ("pooled", "tokens")
STANDARDIZE = "lower_and_strip_punctuation"


def adapt_vocabulary(texts, max_tokens=None):
    """The vocabulary `TextVectorization.adapt` learns from `texts`: most frequent first, no special tokens.

    `texts`: an iterable of strings or a `tf.data.Dataset` of scalar or batched strings. `max_tokens` counts
    real tokens only (TextVectorization's own `max_tokens` also counts '' and '[UNK]').
    """
    import tensorflow as tf

    vectorizer = keras.layers.TextVectorization(
        standardize=STANDARDIZE, max_tokens=None if max_tokens is None else max_tokens + len(SPECIAL_TOKENS)
    )
    if isinstance(texts, tf.data.Dataset):
        vectorizer.adapt(texts.batch(1024) if texts.element_spec.shape.rank == 0 else texts)
    else:
        texts = [str(text) for text in texts]
        if not texts:
            return []
        vectorizer.adapt(tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(1024))
    return [str(token) for token in vectorizer.get_vocabulary(include_special_tokens=False)]


def check_vocabulary(vocabulary):
    """Validate a user vocabulary and drop the special tokens TextVectorization adds itself."""
    if isinstance(vocabulary, str) or not hasattr(vocabulary, "__iter__"):
        raise ValueError(
            "`vocabulary` must be a list of token strings (e.g. from mmzoo.adapt_vocabulary). "
            f"Received: vocabulary={vocabulary!r}"
        )
    tokens = [str(token) for token in vocabulary]
    tokens = [token for token in tokens if token not in SPECIAL_TOKENS]
    if not tokens:
        raise ValueError(
            "`vocabulary` must hold at least one token besides '' and '[UNK]'. "
            f"Received: vocabulary={list(vocabulary)!r}"
        )
    seen, duplicates = set(), []
    for token in tokens:
        if token in seen:
            duplicates.append(token)
        seen.add(token)
    if duplicates:
        raise ValueError(
            f"`vocabulary` must not repeat tokens. Repeated: {sorted(set(duplicates))[:10]}"
        )
    return tokens


def build_text_vectorizer(vocabulary, sequence_length, name="text_vectorizer"):
    """Strings (batch,) -> int token ids (batch, sequence_length); 0 is padding, 1 out-of-vocabulary.

    The vocabulary is stored in the layer's config, so a saved model needs nothing else.
    """
    if not isinstance(sequence_length, int) or isinstance(sequence_length, bool) or sequence_length < 1:
        raise ValueError(
            f"`sequence_length` must be a positive integer. Received: sequence_length={sequence_length!r}"
        )
    return keras.layers.TextVectorization(
        standardize=STANDARDIZE,
        output_mode="int",
        output_sequence_length=sequence_length,
        vocabulary=check_vocabulary(vocabulary),
        name=name,
    )


@register_tower("lstm", kind="text")
def lstm(*, units, return_sequences, dropout, name):
    """LSTM over word embeddings."""
    return keras.layers.LSTM(units=units, return_sequences=return_sequences, dropout=dropout, name=name)


@register_tower("gru", kind="text")
def gru(*, units, return_sequences, dropout, name):
    """GRU over word embeddings."""
    return keras.layers.GRU(units=units, return_sequences=return_sequences, dropout=dropout, name=name)


@register_tower("bilstm", kind="text")
def bilstm(*, units, return_sequences, dropout, name):
    """Bidirectional LSTM over word embeddings (both directions concatenated: 2 x units)."""
    forward = keras.layers.LSTM(units=units, return_sequences=return_sequences, dropout=dropout)
    return keras.layers.Bidirectional(forward, merge_mode="concat", name=name)


def apply_text_tower(
    token_ids,
    *,
    kind="lstm",
    vocabulary_size,
    embedding_dim=128,
    units=128,
    output="pooled",
    dropout=0.0,
    token_embeddings=False,
    name="text",
):
    """Apply Embedding(mask_zero=True) + a recurrent encoder to symbolic `token_ids` (batch, steps).

    Returns (batch, units) for `output="pooled"` (the last state; padding skipped by the mask) or
    (batch, steps, units) with the padding mask attached for `output="tokens"`. BiLSTM doubles `units`.
    `token_embeddings=True` (tokens only) returns `[embedding; state]` per word, (batch, steps,
    embedding_dim + units): a word-level attention can then find a word by what it is, not only by the
    sentence state around it, which mixes in the words before it.
    """
    recurrent = get_tower(kind, kind="text", argument="text_tower").function
    if output not in OUTPUT_MODES:
        raise ValueError(f"`output` must be one of {', '.join(OUTPUT_MODES)}. Received: output={output!r}")
    for arg, value in (("embedding_dim", embedding_dim), ("text_units", units)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    if not isinstance(token_embeddings, bool):
        raise ValueError(f"`token_embeddings` must be True or False. Received: token_embeddings={token_embeddings!r}")
    if token_embeddings and output != "tokens":
        raise ValueError("`token_embeddings=True` needs token features (a fusion that attends over tokens); "
                         f"the text tower's output here is {output!r}")
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True, name=f"{name}_embedding")(token_ids)
    states = recurrent(units=units, return_sequences=output == "tokens", dropout=dropout, name=f"{name}_{kind}")(x)
    if token_embeddings:
        return keras.layers.Concatenate(name=f"{name}_tokens")([x, states])  # keeps the padding mask
    return states


class TextInput(InputKind):
    """A scalar string: `TextVectorization` turns it into `sequence_length` token ids in the input pipeline
    (strings cannot be replicated by `tf.distribute`), then Embedding + the recurrent tower encode the ids."""

    name = "text"
    defaults = {"vocabulary": None, "sequence_length": 32, "embedding_dim": 128, "text_units": 128,
                "text_token_embeddings": False}
    raw_dtype = "string"

    def raw_shape(self, options):
        return ()

    def check_options(self, name, options):
        if options.get("vocabulary") is None:
            raise ValueError(
                f"The text input {name!r} needs a `vocabulary` (a list of tokens). Received: vocabulary=None"
            )
        options = dict(options, vocabulary=tuple(check_vocabulary(options["vocabulary"])))
        length = options.get("sequence_length", self.defaults["sequence_length"])
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise ValueError(f"`sequence_length` must be a positive integer. Received: sequence_length={length!r}")
        return options

    def backbone_key(self, name):
        # "token_ids" for the input called "text", as in models saved by earlier versions.
        return "token_ids" if name == self.name else f"{name}_token_ids"

    def pipeline_layer(self, modality):
        return build_text_vectorizer(
            list(modality.options["vocabulary"]), modality.sequence_length, name=f"{modality.name}_vectorizer"
        )

    def backbone_input(self, modality):
        return keras.Input((modality.sequence_length,), dtype="int64", name=modality.backbone_key)

    def encode(self, modality, x, *, output, dropout):
        options = modality.options
        return apply_text_tower(
            x,
            kind=modality.tower,
            vocabulary_size=len(options["vocabulary"]) + len(SPECIAL_TOKENS),
            embedding_dim=options["embedding_dim"],
            units=options["text_units"],
            output=output,
            dropout=dropout,
            token_embeddings=options["text_token_embeddings"],
            name=self.layer_prefix(modality),
        )

    def placeholder(self, modality, batch_size):
        """Empty strings."""
        import tensorflow as tf

        return tf.fill([batch_size], tf.constant("", dtype=modality.dtype))


register_input_kind(TextInput())
