"""Speech transcribers: a waveform in, per-token character logits out, trained with CTC.

    waveform (num_samples,) --audio tower (mel_crnn, output="tokens")--> tokens (steps, units), token mask
        --> dropout --> Dense(1 + characters, float32) --> BlankPadding(mask) --> logits (steps, 1 + characters)

Id 0 is the CTC blank. `BlankPadding` makes every step after the clip's end a certain blank, so the logits carry
their own length: CTC over all steps equals CTC over the clip's valid steps (mmzoo/transcription/loss.py), and
decoding a clip alone or in a batch, over all steps or over its valid ones, gives the same transcript.

Time resolution: a token is `2 ** audio_time_pools` frames of `frame_step_ms`, and CTC needs at least one token
per character plus one per doubled letter ("ll" in "small"). Ten characters a second of speech at 50 tokens a
second (20 ms frames, no time pooling, the CPU recipe; or 10 ms frames pooled once, the builder's default)
leaves room for the fastest speakers; 25 tokens a second (10 ms, the classifier towers' two pools) does not
(the bundled spoken captions reach 20 characters a second).
"""

import inspect

import keras
from keras import ops

from mmzoo.transcription.characters import check_vocabulary, id_to_token
from mmzoo.transcription.loss import CTCLoss

TASK = "transcribe"
INPUT = "audio"  # the waveform input's name: the key mmzoo.data yields audio under, and the export's
PADDING_LOGIT = -1e4  # every character's logit after the clip's end (the blank's is 0): exp underflows to 0
AUDIO_TOWERS = ("mel_crnn", "mel_cnn")
# The audio options a transcriber takes (those of the audio input kind but the pooling, which tokens skip).
AUDIO_DEFAULTS = {"sample_rate": 16000, "num_samples": 32000, "mel_bins": 40, "frame_length_ms": 25.0,
                  "frame_step_ms": 10.0, "audio_widths": (32, 64, 64), "audio_time_pools": 1, "audio_units": 128,
                  "audio_recurrent": "bigru", "spec_augment": None}


def build_transcriber(*, vocabulary=None, texts=None, audio_tower="mel_crnn", sample_rate=16000, num_samples=32000,
                      mel_bins=40, frame_length_ms=25.0, frame_step_ms=10.0, audio_widths=(32, 64, 64),
                      audio_time_pools=1, audio_units=128, audio_recurrent="bigru", spec_augment=None, dropout=0.1,
                      name="mmzoo_transcriber"):
    """A `SpeechTranscriber`. `vocabulary`: its characters (`mmzoo.transcription.character_vocabulary`), or give
    `texts` (transcripts) to learn them from. The audio options are those of the audio input kind
    (docs/audio.md); `audio_tower` is "mel_crnn" (CNN + `audio_recurrent`, default bidirectional GRU) or
    "mel_cnn" (CNN only). `dropout`: on the tokens before the character logits."""
    if vocabulary is None:
        if texts is None:
            raise ValueError("Give the transcriber's `vocabulary` (a list of characters) or `texts` to learn it "
                             "from. Received: vocabulary=None, texts=None")
        from mmzoo.transcription.characters import character_vocabulary

        vocabulary = character_vocabulary(texts)
    return SpeechTranscriber(vocabulary=vocabulary, audio_tower=audio_tower, sample_rate=sample_rate,
                             num_samples=num_samples, mel_bins=mel_bins, frame_length_ms=frame_length_ms,
                             frame_step_ms=frame_step_ms, audio_widths=audio_widths,
                             audio_time_pools=audio_time_pools, audio_units=audio_units,
                             audio_recurrent=audio_recurrent, spec_augment=spec_augment, dropout=dropout, name=name)


@keras.saving.register_keras_serializable(package="mmzoo")
class BlankPadding(keras.layers.Layer):
    """`[logits (batch, steps, classes), mask (batch, steps)]` -> the logits, with every masked step replaced by a
    certain blank: 0 for the blank (class 0), `PADDING_LOGIT` for every other class. float32."""

    def __init__(self, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        self.supports_masking = True  # the mask it is given is the one it applies; its output needs none

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def call(self, inputs):
        logits, mask = inputs
        logits = ops.cast(logits, "float32")
        classes = ops.shape(logits)[-1]
        blank = ops.where(ops.arange(classes) == 0, 0.0, PADDING_LOGIT)
        return ops.where(ops.expand_dims(ops.cast(mask, "bool"), -1), logits, ops.reshape(blank, (1, 1, -1)))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package="mmzoo")
class TokenLengths(keras.layers.Layer):
    """A token mask (batch, steps) -> int32 (batch,): its valid steps."""

    def call(self, mask):
        return ops.sum(ops.cast(mask, "int32"), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def compute_output_spec(self, mask):
        return keras.KerasTensor((mask.shape[0],), dtype="int32")


def _tower_arguments(audio_tower, options):
    """The transcriber's audio options -> the arguments of the registered tower function (mel_cnn takes no
    `recurrent`)."""
    from mmzoo.towers import get_tower

    accepted = inspect.signature(get_tower(audio_tower, kind="audio", argument="audio_tower").function).parameters
    arguments = dict(sample_rate=options["sample_rate"], num_samples=options["num_samples"],
                     mel_bins=options["mel_bins"], frame_length_ms=options["frame_length_ms"],
                     frame_step_ms=options["frame_step_ms"], widths=tuple(options["audio_widths"]),
                     time_pools=options["audio_time_pools"], units=options["audio_units"],
                     recurrent=options["audio_recurrent"], spec_augment=options["spec_augment"])
    return {key: value for key, value in arguments.items() if key in accepted}


def _check_audio(audio_tower, options):
    """The audio options, checked by the audio input kind (one-line errors naming the option)."""
    from mmzoo.towers.registry import get_input_kind

    if audio_tower not in AUDIO_TOWERS:
        raise ValueError(f"`audio_tower` must be one of {', '.join(AUDIO_TOWERS)}. Received: audio_tower={audio_tower!r}")
    checked = get_input_kind("audio").check_options(INPUT, options)
    return {**options, "audio_widths": tuple(checked.get("audio_widths", options["audio_widths"]))}


@keras.saving.register_keras_serializable(package="mmzoo")
class SpeechTranscriber(keras.Model):
    """`{"audio": waveform (num_samples,)}` float32 in [-1, 1], zero-padded at the end -> character logits
    (steps, 1 + characters), float32; id 0 is the CTC blank, steps after the clip's end are certain blanks.

    Build it with `build_transcriber` or `mmzoo.build_model("mel_crnn_ctc", vocabulary=..., sample_rate=...,
    num_samples=...)`; `get_config` returns the constructor's arguments, so `.keras` files reload. Train with
    plain `fit` on `pack_dataset(transcriber, batches)`; `compile()` defaults to the replica-safe `CTCLoss`. Ask
    the model what it is: `vocabulary`, `id_to_token`, `sample_rate`, `num_samples`, `num_steps`,
    `audio_tower`, `logits_model` (logits and valid lengths; not `inference_model`, which `mmzoo.export_model` would
    export instead of the transcriber), `transcribe(waveforms)`.
    """

    task = TASK

    def __init__(self, vocabulary, audio_tower="mel_crnn", sample_rate=16000, num_samples=32000, mel_bins=40,
                 frame_length_ms=25.0, frame_step_ms=10.0, audio_widths=(32, 64, 64), audio_time_pools=1,
                 audio_units=128, audio_recurrent="bigru", spec_augment=None, dropout=0.1, name="mmzoo_transcriber",
                 **kwargs):
        from mmzoo.towers.audio import build_audio_tower

        characters = check_vocabulary(vocabulary)
        options = _check_audio(audio_tower, dict(
            sample_rate=sample_rate, num_samples=num_samples, mel_bins=mel_bins, frame_length_ms=frame_length_ms,
            frame_step_ms=frame_step_ms, audio_widths=audio_widths, audio_time_pools=audio_time_pools,
            audio_units=audio_units, audio_recurrent=audio_recurrent, spec_augment=spec_augment))
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")

        # === Functional model ===
        tower = build_audio_tower(audio_tower, output="tokens", name="audio_tower",
                                  **_tower_arguments(audio_tower, options))
        waveform = keras.Input((options["num_samples"],), name=INPUT)
        tokens, mask = tower(waveform)
        if dropout:
            tokens = keras.layers.Dropout(dropout, name="token_dropout")(tokens)
        logits = keras.layers.Dense(len(characters) + 1, dtype="float32", name="character_logits")(tokens)
        logits = BlankPadding(name="blank_padding")([logits, mask])
        super().__init__(inputs={INPUT: waveform}, outputs=logits, name=name, **kwargs)

        # === Config ===
        # Shares this model's layers: decoding and the export run it once per batch for logits and lengths.
        self._inference = keras.Model({INPUT: waveform},
                                      {"logits": logits, "lengths": TokenLengths(name="token_lengths")(mask)},
                                      name="inference")
        self._characters = characters
        self._config = dict(vocabulary=list(characters), audio_tower=audio_tower, **options, dropout=float(dropout))
        self._config["audio_widths"] = list(options["audio_widths"])
        self._decoders = _FunctionCache()

    # === What the model is ===

    @property
    def vocabulary(self):
        """The characters (without the blank)."""
        return list(self._characters)

    @property
    def id_to_token(self):
        """Every token by id: the blank (shown as ""), then the characters."""
        return id_to_token(self._characters)

    @property
    def sample_rate(self):
        return self._config["sample_rate"]

    @property
    def num_samples(self):
        return self._config["num_samples"]

    @property
    def num_steps(self):
        """Time steps of the logits for a whole clip of `num_samples` samples."""
        return int(self.output.shape[1])

    @property
    def audio_options(self):
        """The audio options (sample_rate, num_samples, mel_bins, ...), as the audio input kind names them."""
        return {key: self._config[key] for key in AUDIO_DEFAULTS}

    @property
    def audio_tower(self):
        return self.get_layer("audio_tower")

    @property
    def logits_model(self):
        """`{"audio": waveforms}` -> `{"logits", "lengths"}` (int32 valid steps per clip), sharing the weights."""
        return self._inference

    # === Training and decoding ===

    def compile(self, optimizer="adam", loss="auto", **kwargs):
        """`keras.Model.compile`, with `loss="auto"` meaning `CTCLoss()` (replica-safe) and "adam" mmzoo's fused
        Adam."""
        from mmzoo.optimizers import Adam

        if isinstance(optimizer, str) and optimizer.lower() == "adam":
            optimizer = Adam()
        super().compile(optimizer=optimizer, loss=CTCLoss() if loss == "auto" else loss, **kwargs)
        self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config):
        """Recompile a reloaded `.keras` file as it was compiled: Keras' own version only warns for a model whose
        `compile` is overridden, and leaves it uncompiled."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def transcribe(self, waveforms, strategy="greedy", beam_width=16):
        """Transcripts of float32 waveforms [batch, samples] at the model's rate (cropped or zero-padded at the end
        to `num_samples`). Returns numpy arrays: "transcript" (str [batch]), "token_ids" (int32 [batch, steps],
        0-padded), "length" (int32 [batch], characters) and "log_probability" (float32 [batch]). See
        `mmzoo.transcription.decoding`; the export runs the same function."""
        from mmzoo.transcription.decoding import transcribe

        return transcribe(self, waveforms, strategy=strategy, beam_width=beam_width)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _FunctionCache:
    """Traced decoding functions by options. Not a dict attribute: Keras and tf.saved_model would track it."""

    def __init__(self):
        self.functions = {}
