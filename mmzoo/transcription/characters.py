"""Transcripts as characters: the normalisation every transcript goes through (training labels, references and
the metrics alike), the character vocabulary learned from the training transcripts, and transcripts turned into
CTC label ids inside `tf.data`.

Normalisation (`normalize_texts`, TensorFlow ops, so the data pipeline, the metrics and the command line share one
implementation): lower-case (Unicode-aware), typographic apostrophes as `'`, every run of characters that are not
letters, combining marks, digits or apostrophes as one space, stripped. So "There's a RED circle, at the left."
becomes "there's a red circle at the left": punctuation is not spoken, and a model is not asked to guess it.

Ids: 0 is the CTC blank (also the padding of label batches, which no transcript contains), then the characters
in sorted order. A character of a later transcript that is not in the vocabulary is left out of its labels.
"""

import numpy as np
import tensorflow as tf

BLANK_ID = 0
BLANK = ""  # what the blank id shows as: nothing, so joining the ids' characters gives the transcript
_APOSTROPHES = "[\u2019\u2018\u02bc`\u00b4]"
_NOT_SPOKEN = r"[^\p{L}\p{M}\p{N}']+"


def normalize_texts(texts):
    """Transcripts (a string tensor of any shape) normalised as module docstring says, as a string tensor."""
    texts = tf.strings.lower(tf.convert_to_tensor(texts, tf.string), encoding="utf-8")
    texts = tf.strings.regex_replace(texts, _APOSTROPHES, "'")
    return tf.strings.strip(tf.strings.regex_replace(texts, _NOT_SPOKEN, " "))


def normalize_transcript(text):
    """One transcript (str or bytes) normalised, as a str (the same ops as the data pipeline's)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return normalize_texts(tf.constant([text])).numpy()[0].decode("utf-8")


def normalize_transcripts(texts):
    """A list of transcripts normalised, as str."""
    texts = [text.decode("utf-8") if isinstance(text, bytes) else str(text) for text in texts]
    if not texts:
        return []
    return [text.decode("utf-8") for text in normalize_texts(tf.constant(texts)).numpy()]


def character_vocabulary(texts):
    """The sorted characters of the normalised `texts` (str or bytes, any iterable or a string dataset): a
    transcriber's vocabulary, the CTC blank not included. Raises ValueError when there are none."""
    if isinstance(texts, tf.data.Dataset):
        texts = [text for batch in texts.as_numpy_iterator() for text in np.atleast_1d(batch)]
    characters = set()
    for text in normalize_transcripts(list(texts)):
        characters.update(text)
    if not characters:
        raise ValueError("The transcripts hold no characters to learn a vocabulary from (every transcript is empty "
                         "once normalised). Received: no letters, digits or apostrophes")
    return sorted(characters)


def check_vocabulary(vocabulary):
    """`vocabulary` as a list of distinct one-character strings (what `character_vocabulary` returns)."""
    if isinstance(vocabulary, str):
        vocabulary = list(vocabulary)
    if not isinstance(vocabulary, (list, tuple)) or not vocabulary:
        raise ValueError(f"`vocabulary` must be a non-empty list of characters. Received: vocabulary={vocabulary!r}")
    bad = [item for item in vocabulary if not isinstance(item, str) or len(item) != 1]
    if bad:
        raise ValueError(f"`vocabulary` must hold single characters. Received: {bad[:5]!r}")
    if len(set(vocabulary)) != len(vocabulary):
        doubled = sorted({item for item in vocabulary if vocabulary.count(item) > 1})
        raise ValueError(f"`vocabulary` holds characters more than once: {doubled!r}")
    return list(vocabulary)


def id_to_token(vocabulary):
    """Every token by id: the blank (shown as ""), then the characters."""
    return [BLANK, *vocabulary]


class LabelEncoder:
    """Transcripts -> CTC label ids in TensorFlow (inside `tf.data`): normalised, split into characters, each
    looked up (ids 1..V; unknown characters dropped), as a ragged tensor of int32 ids."""

    def __init__(self, vocabulary):
        characters = check_vocabulary(vocabulary)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(characters), tf.range(1, len(characters) + 1)),
            default_value=-1)

    def __call__(self, texts):
        characters = tf.strings.unicode_split(normalize_texts(texts), "UTF-8")
        ids = tf.ragged.map_flat_values(self.table.lookup, characters)
        return tf.ragged.boolean_mask(ids, ids > 0)

    def dense(self, texts):
        """int32 labels [batch, longest], padded with the blank id 0."""
        return self(texts).to_tensor(default_value=BLANK_ID)


def required_steps(labels):
    """The fewest time steps CTC needs for each row of dense labels [batch, length] (0-padded): one per label,
    plus one blank between each two equal neighbours (CTC merges repeats that no blank separates)."""
    labels = tf.convert_to_tensor(labels)
    real = labels > 0
    repeats = tf.logical_and(tf.equal(labels[:, 1:], labels[:, :-1]), real[:, 1:])
    return tf.reduce_sum(tf.cast(real, tf.int32), axis=1) + tf.reduce_sum(tf.cast(repeats, tf.int32), axis=1)
