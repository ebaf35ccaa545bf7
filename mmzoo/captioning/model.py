"""Image captioners: pixels in, a sentence out, through an image tower's token grid and a text decoder.

    image (H, W, 3) --image tower (tokens)--> Dense + learned positions + LayerNorm --> image tokens --+
    token_ids (max_length,): [start] w1 w2 ... (teacher forcing) --------------------------------------+-> decoder
                                                                                         -> logits (max_length, V)

The functional graph is all numeric (pixels and token ids), so it trains under any `tf.distribute` strategy; the
captions are packed into token ids in `tf.data` (mmzoo/captioning/packing.py). `generate` runs the encoder once
and the decoder in a symbolic loop (mmzoo/captioning/generation.py); the export serves that loop.
"""

import keras

from mmzoo.captioning.loss import CaptionLoss
from mmzoo.captioning.packing import CaptionPacker, caption_words, id_to_token
from mmzoo.captioning.positions import PositionEmbedding
from mmzoo.captioning.rnn_decoder import CELLS, AttentionRNNDecoder
from mmzoo.captioning.transformer_decoder import TransformerCaptionDecoder
from mmzoo.towers.image import build_image_tower

DECODERS = tuple(CELLS) + ("transformer",)
TASK = "caption"


def build_captioner(*, image_tower="small_cnn", decoder="gru", vocabulary=None, texts=None, max_tokens=None,
                    max_length=40, image_size=64, image_weights=None, trainable_stages=None, units=256,
                    embedding_dim=128, num_layers=2, num_heads=4, feedforward_units=None, dropout=0.1,
                    name="mmzoo_captioner"):
    """An `ImageCaptioner`: `image_tower` (any registered image tower that gives tokens) and `decoder` ("gru",
    "lstm": show-attend-tell; "transformer": causal self-attention and cross-attention).

    `vocabulary`: the caption words, or give `texts` (captions) to learn it from (`max_tokens` most frequent).
    `max_length`: the most tokens a caption has, its end token included (longer training captions are cut).
    `units`: the decoder's width (and the image tokens'); `embedding_dim`: word embeddings of a recurrent
    decoder; `num_layers`, `num_heads`, `feedforward_units`: a Transformer decoder's shape.
    """
    if vocabulary is None:
        if texts is None:
            raise ValueError("Give the caption `vocabulary` (a list of words) or `texts` to learn it from. "
                             "Received: vocabulary=None, texts=None")
        from mmzoo.towers.text import adapt_vocabulary

        vocabulary = adapt_vocabulary(texts, max_tokens=max_tokens)
    return ImageCaptioner(image_tower=image_tower, decoder=decoder, vocabulary=vocabulary, max_length=max_length,
                          image_size=image_size, image_weights=image_weights, trainable_stages=trainable_stages,
                          units=units, embedding_dim=embedding_dim, num_layers=num_layers, num_heads=num_heads,
                          feedforward_units=feedforward_units, dropout=dropout, name=name)


class _FunctionCache:
    """The traced generation functions by options. Not a dict attribute: Keras and tf.saved_model would track it and
    try to save the functions inside."""

    def __init__(self):
        self.functions = {}


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageCaptioner(keras.Model):
    """`{"image": pixels (H, W, 3) 0..255, "token_ids": (max_length,)}` -> next-token logits (max_length, V).

    Build it with `build_captioner` or `mmzoo.build_model("small_cnn_gru_captioner", vocabulary=...)`; the
    constructor takes the resolved arguments and `get_config` returns them, so `.keras` files reload. Train with
    plain `fit` on `pack_dataset(captioner, raw_batches)`; `compile()` defaults to the replica-safe masked loss.
    Ask the model what it is: `vocabulary`, `max_length`, `image_size`, `encoder`, `decoder`, `packer`,
    `generate(images)`.
    """

    task = TASK

    def __init__(self, vocabulary, image_tower="small_cnn", decoder="gru", max_length=40, image_size=64,
                 image_weights=None, trainable_stages=None, units=256, embedding_dim=128, num_layers=2, num_heads=4,
                 feedforward_units=None, dropout=0.1, name="mmzoo_captioner", **kwargs):
        words = caption_words(vocabulary)
        if decoder not in DECODERS:
            raise ValueError(f"`decoder` must be one of {', '.join(DECODERS)}. Received: decoder={decoder!r}")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(f"`max_length` must be an integer >= 2 (a word and the end token). "
                             f"Received: max_length={max_length!r}")
        vocabulary_size = len(id_to_token(words))

        # === Layers ===
        tower = build_image_tower(image_tower, image_size=image_size, output="tokens", weights=image_weights,
                                  trainable_stages=trainable_stages, name="image_tower")
        if len(tower.output.shape) != 3:
            raise ValueError(f"The image tower {image_tower!r} must give a token grid. Received: output shape "
                             f"{tower.output.shape}")
        num_tokens = int(tower.output.shape[1])
        if decoder == "transformer":
            text_decoder = TransformerCaptionDecoder(vocabulary_size, max_length, num_layers=num_layers, units=units,
                                                     num_heads=num_heads, feedforward_units=feedforward_units,
                                                     dropout=dropout, name="decoder")
        else:
            text_decoder = AttentionRNNDecoder(vocabulary_size, cell=decoder, units=units,
                                               embedding_dim=embedding_dim, dropout=dropout, name="decoder")

        # === Functional model ===
        image = keras.Input((image_size, image_size, 3), name="image")
        token_ids = keras.Input((max_length,), dtype="int32", name="token_ids")
        image_tokens = keras.layers.Dense(units, name="image_projection")(tower(image))
        image_tokens = PositionEmbedding(num_tokens, name="image_positions")(image_tokens)
        image_tokens = keras.layers.LayerNormalization(epsilon=1e-5, name="image_norm")(image_tokens)
        logits = text_decoder([token_ids, image_tokens])
        super().__init__(inputs={"image": image, "token_ids": token_ids}, outputs=logits, name=name, **kwargs)

        # === Config ===
        # The encoder shares the graph's layers: generation and the export's `encode` run it alone, once per batch.
        self._encoder = keras.Model(image, image_tokens, name="encoder")
        self._words = words
        self._packer = None
        self._generators = _FunctionCache()
        self._config = dict(vocabulary=list(words), image_tower=image_tower, decoder=decoder, max_length=max_length,
                            image_size=image_size,
                            # A weights file is read once, into the tower: the saved model carries the weights.
                            image_weights=None, trainable_stages=trainable_stages, units=units,
                            embedding_dim=embedding_dim, num_layers=num_layers, num_heads=num_heads,
                            feedforward_units=feedforward_units, dropout=dropout)

    # === What the model is ===

    @property
    def vocabulary(self):
        """The caption words (without the special tokens)."""
        return list(self._words)

    @property
    def id_to_token(self):
        """Every token by id: "", "[UNK]", "[start]", "[end]", then the words."""
        return id_to_token(self._words)

    @property
    def max_length(self):
        return self._config["max_length"]

    @property
    def image_size(self):
        return self._config["image_size"]

    @property
    def encoder(self):
        """Pixels -> image tokens (batch, tokens, units): what the decoder attends to, sharing this model's weights."""
        return self._encoder

    @property
    def decoder(self):
        return self.get_layer("decoder")

    @property
    def image_tower(self):
        return self.get_layer("image_tower")

    @property
    def packer(self):
        """The `CaptionPacker` (captions -> teacher-forcing ids) of this model's vocabulary and length."""
        if self._packer is None:
            self._packer = CaptionPacker(self._words, self.max_length)
        return self._packer

    def prepare_images(self, images):
        """uint8 pixels of the model's size, resized, rounded and clipped as the data pipelines and the export
        make them: float pixels of the right size are rounded too, so `generate` sees what the export serves."""
        from mmzoo.images import resize_image

        return resize_image(images, self.image_size)

    # === Training and generation ===

    def compile(self, optimizer="adam", loss="auto", **kwargs):
        """`keras.Model.compile`, with `loss="auto"` meaning `CaptionLoss()` (masked, replica-safe) and "adam"
        mmzoo's fused Adam (`mmzoo.compile_model`)."""
        from mmzoo.optimizers import Adam

        if isinstance(optimizer, str) and optimizer.lower() == "adam":
            optimizer = Adam()
        super().compile(optimizer=optimizer, loss=CaptionLoss() if loss == "auto" else loss, **kwargs)
        # Variables made now, as mmzoo.compile_model does: the first step is then traced once, not twice.
        self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config):
        """Recompile a reloaded `.keras` file as it was compiled (Keras skips a custom `compile` otherwise)."""
        super().compile_from_config(config)

    def generate(self, images, max_length=None, strategy="greedy", num_beams=4, length_penalty=1.0):
        """Captions of a batch of images (pixels 0..255, any size; resized to the model's). Returns a dict of
        numpy arrays: "caption" (str [batch]), "token_ids" (int32 [batch, max_length], the end token and zeros
        after it) and "log_probability" (float32 [batch], of the tokens generated). See
        `mmzoo.captioning.generation.generate` for the arguments; the export runs the same function."""
        from mmzoo.captioning.generation import generate

        return generate(self, images, max_length=max_length, strategy=strategy, num_beams=num_beams,
                        length_penalty=length_penalty)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
