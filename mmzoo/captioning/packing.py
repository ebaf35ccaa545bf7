"""Captions -> teacher-forcing batches, in the input pipeline (keras-hub's causal-LM packing).

A caption is vectorized, cut to `max_length - 1` words, framed by a start and an end token and padded to
`max_length + 1` ids; the decoder reads ids `[:-1]` and learns to predict ids `[1:]`, each weighted 1 where it is
a real token (a word or the end) and 0 on padding:

    "a red circle."  ->  [start] a red circle [end] 0 0 ...
    token_ids:           [start] a   red    circle [end] 0 ...
    targets:             a       red circle [end]  0     0 ...
    sample_weight:       1       1   1      1      0     0 ...

Strings are vectorized here, in `tf.data`, never in the model's graph: under `tf.distribute` strings cannot be
replicated (docs/architecture.md). Token ids: 0 padding, 1 out-of-vocabulary, 2 start, 3 end, then the words.
"""

import keras
import tensorflow as tf

from mmzoo.towers.text import STANDARDIZE, check_vocabulary

PAD_ID, OOV_ID, START_ID, END_ID = 0, 1, 2, 3
START_TOKEN, END_TOKEN = "[start]", "[end]"
SPECIAL_TOKENS = ("", "[UNK]", START_TOKEN, END_TOKEN)
AUTOTUNE = tf.data.AUTOTUNE


def caption_words(vocabulary):
    """The words of a caption vocabulary, checked, without the special tokens (which every captioner adds)."""
    words = [word for word in check_vocabulary(vocabulary) if word not in (START_TOKEN, END_TOKEN)]
    if not words:
        raise ValueError(f"`vocabulary` must hold at least one word. Received: vocabulary={list(vocabulary)!r}")
    return words


def id_to_token(vocabulary):
    """Every token by its id: the special tokens, then the words."""
    return list(SPECIAL_TOKENS) + caption_words(vocabulary)


class CaptionPacker:
    """Strings [batch] -> `(token_ids, targets, sample_weight)`, each (batch, max_length).

    Not a Keras layer on purpose: it runs in `tf.data` only, and a captioner rebuilds it from its vocabulary.
    """

    def __init__(self, vocabulary, max_length):
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(f"`max_length` must be an integer >= 2 (a word and the end token). "
                             f"Received: max_length={max_length!r}")
        self.max_length = max_length
        self.vectorizer = keras.layers.TextVectorization(
            standardize=STANDARDIZE, vocabulary=[START_TOKEN, END_TOKEN] + caption_words(vocabulary), ragged=True)

    def tokenize(self, texts):
        """Word ids of each caption, a RaggedTensor (batch, None); no start, end or padding."""
        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string or texts.shape.rank != 1:
            raise ValueError(f"Captions must be a batch of strings, shape [batch]. Received: {texts.dtype.name} "
                             f"of shape {texts.shape}")
        return tf.cast(self.vectorizer(texts), tf.int32)

    def __call__(self, texts):
        words = self.tokenize(texts)[:, : self.max_length - 1]
        frame = tf.ones([words.nrows(), 1], tf.int32)
        packed = tf.concat([frame * START_ID, words, frame * END_ID], axis=1)
        dense = packed.to_tensor(default_value=PAD_ID, shape=[None, self.max_length + 1])
        targets = dense[:, 1:]
        return dense[:, :-1], targets, tf.cast(targets != PAD_ID, tf.float32)


def pack_dataset(captioner, dataset, *, image_key="image", text_key="text"):
    """A batched dataset of raw `{"image": pixels, "text": captions}` (alone or with a label, which is dropped) ->
    `({"image", "token_ids"}, targets, sample_weight)` batches for `captioner.fit`. Images of another size than
    the captioner's are resized with `mmzoo.images.resize_image`, as its export resizes what it serves."""
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"`dataset` must be a tf.data.Dataset. Received: dataset={type(dataset).__name__}")
    features = dataset.element_spec[0] if isinstance(dataset.element_spec, tuple) else dataset.element_spec
    if not isinstance(features, dict) or image_key not in features or text_key not in features:
        raise ValueError(f"`dataset` must yield dicts with an image under {image_key!r} and a caption under "
                         f"{text_key!r}. Received elements: {dataset.element_spec}")
    if features[text_key].shape.rank != 1:
        raise ValueError(f"`dataset` must be batched (captions of shape [batch]). Received: captions of shape "
                         f"{features[text_key].shape}; call dataset.batch(n) first")

    packer = captioner.packer  # made here, eagerly: a vectorizer first made inside a map belongs to that map's graph

    def pack(*element):
        inputs = element[0]
        token_ids, targets, weights = packer(inputs[text_key])
        return {"image": captioner.prepare_images(inputs[image_key]), "token_ids": token_ids}, targets, weights

    return dataset.map(pack, num_parallel_calls=AUTOTUNE)
