"""The recipe registry: named combinations of towers, fusion and defaults, built by `build_model`.

A recipe is one decorated function returning the `build_classifier` keywords it fixes; its docstring is what
`mmzoo list` shows. `build_model(name, **overrides)` lets a user change any of them.
"""

import inspect

from mmzoo.captioning.model import build_captioner
from mmzoo.classifier import build_classifier
from mmzoo.transcription.model import build_transcriber

_RECIPES = {}
_ACCEPTED = tuple(inspect.signature(build_classifier).parameters)


# Recipes by task: what each builds ("classify": `build_classifier`, "caption": `build_captioner`, "transcribe":
# `build_transcriber`).
TASKS = ("classify", "caption", "transcribe")
_TASK_OF = {}
_BUILDERS = {"classify": build_classifier, "caption": build_captioner, "transcribe": build_transcriber}
_ACCEPTED_BY_TASK = {task: tuple(inspect.signature(builder).parameters) for task, builder in _BUILDERS.items()}


def register_recipe(function=None, *, task="classify"):
    """Register `function` (returning the keywords of the task's builder) under its own name. Use it bare for a
    classifier, or as `@register_recipe(task="caption")` for a captioner (`mmzoo.captioning.build_captioner`) and
    `@register_recipe(task="transcribe")` for a transcriber (`mmzoo.transcription.build_transcriber`)."""
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {', '.join(TASKS)}. Received: task={task!r}")
    if function is None:
        return lambda function: register_recipe(function, task=task)
    name = function.__name__
    if name in _RECIPES:
        raise ValueError(f"A recipe named '{name}' is already registered.")
    accepted = _ACCEPTED_BY_TASK[task]
    unknown = sorted(set(function()) - set(accepted))
    if unknown:
        raise ValueError(f"Recipe '{name}' sets unknown arguments {unknown}; accepted: {', '.join(accepted)}")
    _RECIPES[name] = function
    _TASK_OF[name] = task
    return function


def list_models(task="classify"):
    """Names of the registered recipes of `task` ("classify", the default, "caption" or "transcribe"; None for
    all), sorted."""
    if task is not None and task not in TASKS:
        raise ValueError(f"`task` must be one of {', '.join(TASKS)} or None. Received: task={task!r}")
    return sorted(name for name in _RECIPES if task is None or _TASK_OF.get(name, "classify") == task)


def recipe_task(name):
    """The task recipe `name` builds a model for: "classify", "caption" or "transcribe"."""
    get_recipe(name)
    return _TASK_OF.get(name, "classify")


def get_recipe(name):
    """The keywords recipe `name` passes to `build_classifier` (a fresh dict)."""
    if name not in _RECIPES:
        raise ValueError(f"Unknown recipe '{name}'. Expected one of: {', '.join(list_models(None))}. Received: name={name!r}")
    return dict(_RECIPES[name]())


def describe_recipe(name):
    """One line on what recipe `name` is: its docstring's first line."""
    get_recipe(name)
    return (inspect.getdoc(_RECIPES[name]) or "").splitlines()[0]


def build_model(name, **overrides):
    """Build recipe `name`; `overrides` replace the recipe's defaults (see `build_classifier`, or
    `mmzoo.captioning.build_captioner` for a captioning recipe, `mmzoo.transcription.build_transcriber` for a
    transcription one)."""
    config = get_recipe(name)
    task = recipe_task(name)
    accepted = _ACCEPTED_BY_TASK[task]
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {unknown} for build_model('{name}'). Accepted: {', '.join(accepted)}"
        )
    config.update(name=name)
    config.update(overrides)
    return _BUILDERS[task](**config)


# === Recipes ===
# ResNet50 recipes default to 224 px, the size ImageNet weights were trained at; small_cnn ones to 64 px so
# they train in minutes on a CPU.


@register_recipe
def resnet50_lstm_concat():
    """ResNet50 + LSTM, concatenated and projected: F = FC([F_I, F_T])."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="concat")


@register_recipe
def resnet50_lstm_sum():
    """ResNet50 + LSTM, projected to a common width and summed."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="sum")


@register_recipe
def resnet50_lstm_product():
    """ResNet50 + LSTM, projected to a common width and multiplied element-wise."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="product")


@register_recipe
def resnet50_lstm_gated():
    """ResNet50 + LSTM joined by a gated multimodal unit (GMU)."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="gated")


@register_recipe
def resnet50_lstm_attention():
    """ResNet50 spatial tokens + LSTM tokens; text tokens attend to image tokens."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="attention")


@register_recipe
def resnet50_lstm_coattention():
    """ResNet50 spatial tokens + LSTM tokens; co-attention in both directions."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="coattention")


@register_recipe
def resnet50_lstm_tensor():
    """ResNet50 + LSTM joined by tensor fusion (outer product with an appended 1)."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="tensor")


@register_recipe
def resnet50_lstm_lowrank():
    """ResNet50 + LSTM joined by low-rank tensor fusion."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="lowrank")


@register_recipe
def resnet50_lstm_film():
    """ResNet50 spatial features + LSTM; the question scales and shifts every image channel (FiLM)."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="film")


@register_recipe
def resnet50_lstm_glimpse():
    """ResNet50 spatial features + LSTM; question-guided glimpses find, read and count image regions."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="glimpse")


@register_recipe
def resnet50_bilstm_concat():
    """ResNet50 + bidirectional LSTM, concatenated and projected."""
    return dict(image_tower="resnet50", text_tower="bilstm", fusion="concat")


@register_recipe
def resnet50_gru_gated():
    """ResNet50 + GRU joined by a gated multimodal unit."""
    return dict(image_tower="resnet50", text_tower="gru", fusion="gated")


@register_recipe
def mobilenet_v3_small_gru_concat():
    """MobileNetV3-Small + GRU, concatenated and projected."""
    return dict(image_tower="mobilenet_v3_small", text_tower="gru", fusion="concat")


@register_recipe
def small_cnn_lstm_concat():
    """Small CNN + LSTM, concatenated and projected; trains in minutes on a CPU."""
    return dict(image_tower="small_cnn", text_tower="lstm", fusion="concat", image_size=64, fusion_units=128, text_units=64, embedding_dim=64)


@register_recipe
def small_cnn_bilstm_attention():
    """Small CNN spatial tokens + BiLSTM tokens with cross-modal attention; a CPU-sized attention model."""
    return dict(
        image_tower="small_cnn", text_tower="bilstm", fusion="attention", image_size=64, fusion_units=128, text_units=64, embedding_dim=64
    )


# CPU-sized coord_cnn + GRU: 64 px, short questions, narrow towers.
_COORD_CNN_GRU = dict(
    image_tower="coord_cnn", text_tower="gru", image_size=64, sequence_length=16, embedding_dim=64, text_units=64,
    fusion_units=128,
)


@register_recipe
def coord_cnn_gru_film():
    """Position-aware small CNN + GRU, the question modulating the image features (FiLM)."""
    return dict(_COORD_CNN_GRU, fusion="film", fusion_options={"kernel_size": 3})


@register_recipe
def coord_cnn_gru_glimpse():
    """Position-aware small CNN + GRU (word embeddings beside its states); four question-guided glimpses find, read
    and count objects, and two word-order relation heads compare where the objects named first and second are.
    The main job's model."""
    # No dropout: with 0.1 in front of the head, position questions stayed at chance in 25 epochs (docs/cli.md).
    return dict(_COORD_CNN_GRU, fusion="glimpse", text_token_embeddings=True, dropout=0.0,
                fusion_options={"num_glimpses": 4, "grid_positions": True, "relation_heads": 2})

# === Late fusion and missing inputs (docs/robustness.md) ===
# Late fusion averages each input's own logits over the inputs present, so these models also take
# `<name>_present` flags and answer with an input missing; add `modality_dropout=` to train for it.


@register_recipe
def resnet50_lstm_late():
    """ResNet50 + LSTM, late fusion: a head per input, logits averaged over the inputs present."""
    return dict(image_tower="resnet50", text_tower="lstm", fusion="late")


@register_recipe
def small_cnn_lstm_late():
    """Small CNN + LSTM, late fusion: a head per input, logits averaged over the inputs present; CPU-sized."""
    return dict(image_tower="small_cnn", text_tower="lstm", fusion="late", image_size=64, fusion_units=128,
                text_units=64, embedding_dim=64)


# === Audio classifiers (docs/audio.md) ===
# The audio input is named "audio", as `mmzoo.data` yields a TFDS Audio feature and as `from_csv` finds an audio
# column; its sample_rate and num_samples come from the data (`mmzoo.train` infers them). CPU-sized audio tower:
# 20 ms hop (half the frames of the 10 ms default), 32 mel bins, narrow CNN and GRU: 4-11x the default mel_crnn's
# training throughput on the spoken VQA's clips in two runs (docs/benchmarks.md, Audio towers), still enough to
# tell spoken words apart.
_CPU_AUDIO = {"tower": "mel_crnn", "frame_step_ms": 20.0, "audio_widths": (16, 32, 32)}
_CPU_AUDIO_SIZES = dict(mel_bins=32, audio_units=64)
# _COORD_CNN_GRU's sizes without its two-input towers.
_COORD_CNN_SIZES = {key: value for key, value in _COORD_CNN_GRU.items() if key not in ("image_tower", "text_tower")}


@register_recipe
def coord_cnn_mel_crnn_coattention():
    """Position-aware small CNN + log-mel CRNN, co-attention: image and audio tokens (a spoken question) attend to
    each other. CPU-sized: 64 px, a 20 ms hop, 32 mel bins, narrow CNN and GRU."""
    # Co-attention, not the question-attends-to-image kind ("attention"): on the spoken VQA (seed 0, 15 epochs)
    # that one answered 0.573 with the spoken question and 0.563 with the written one, this one 0.604 and 0.633
    # (docs/audio.md).
    return dict(_COORD_CNN_SIZES, **_CPU_AUDIO_SIZES, towers={"image": "coord_cnn", "audio": dict(_CPU_AUDIO)},
                fusion="coattention")


@register_recipe
def coord_cnn_mel_crnn_gru_coattention():
    """Position-aware small CNN + log-mel CRNN + GRU, co-attention: each input's tokens attend to the others'.
    Three inputs (an image, a recording, a text); CPU-sized like coord_cnn_mel_crnn_coattention."""
    return dict(_COORD_CNN_SIZES, **_CPU_AUDIO_SIZES, fusion="coattention",
                towers={"image": "coord_cnn", "audio": dict(_CPU_AUDIO), "text": "gru"})


@register_recipe
def mel_crnn_gru_coattention():
    """Log-mel CRNN + GRU, co-attention: audio and text tokens attend to each other (a recording and its
    transcript or a note about it). CPU-sized like coord_cnn_mel_crnn_coattention's audio tower."""
    # 32 tokens, not the questions' 16: a transcript or note runs longer than a question.
    text_sizes = {key: _COORD_CNN_SIZES[key] for key in ("embedding_dim", "text_units", "fusion_units")}
    return dict(text_sizes, **_CPU_AUDIO_SIZES, sequence_length=32, fusion="coattention",
                towers={"audio": dict(_CPU_AUDIO), "text": "gru"})


@register_recipe
def mel_crnn_classifier():
    """Audio alone: a log-mel CNN + GRU, its states mean-pooled, then the head (spoken words, sounds).
    CPU-sized like coord_cnn_mel_crnn_coattention's audio tower."""
    return dict(**_CPU_AUDIO_SIZES, towers={"audio": dict(_CPU_AUDIO)}, fusion=None, fusion_units=128)


# === Captioning recipes (task "caption") ===
# CPU-sized: 64 px images, the small CNN's 8x8 token grid, captions of up to 40 tokens.


@register_recipe(task="caption")
def small_cnn_gru_captioner():
    """Small CNN tokens + a GRU decoder attending to them at every word (show, attend and tell)."""
    return dict(image_tower="small_cnn", decoder="gru", image_size=64, units=256, embedding_dim=128)


@register_recipe(task="caption")
def small_cnn_lstm_captioner():
    """Small CNN tokens + an LSTM decoder attending to them at every word (show, attend and tell)."""
    return dict(image_tower="small_cnn", decoder="lstm", image_size=64, units=256, embedding_dim=128)


@register_recipe(task="caption")
def small_cnn_transformer_captioner():
    """Small CNN tokens + a 2-layer Transformer decoder (causal self-attention, cross-attention to the image)."""
    return dict(image_tower="small_cnn", decoder="transformer", image_size=64, units=128, num_layers=2, num_heads=4)


@register_recipe(task="caption")
def coord_cnn_transformer_captioner():
    """Position-aware small CNN tokens (x/y channels) + a 2-layer Transformer decoder."""
    return dict(image_tower="coord_cnn", decoder="transformer", image_size=64, units=128, num_layers=2, num_heads=4)


@register_recipe(task="caption")
def resnet50_gru_captioner():
    """ResNet50 spatial tokens (7x7 at 224 px) + a GRU decoder with attention at every word."""
    return dict(image_tower="resnet50", decoder="gru", image_size=224, units=512, embedding_dim=256)


# === Transcription recipes (task "transcribe", docs/transcription.md) ===
# Speech -> characters with CTC. sample_rate and num_samples come from the data (`train_transcriber` sets them).
# CPU-sized: a 20 ms hop and no time pooling give 50 tokens a second (the bundled spoken captions need at most
# ~21 a second: 20 characters plus doubled letters), half the CNN frames of a 10 ms hop.


@register_recipe(task="transcribe")
def mel_crnn_ctc():
    """Log-mel CNN + bidirectional GRU, per-token characters with CTC; 50 tokens a second, CPU-sized."""
    return dict(audio_tower="mel_crnn", mel_bins=40, frame_step_ms=20.0, audio_time_pools=0,
                audio_widths=(16, 32, 32), audio_units=96, audio_recurrent="bigru", dropout=0.1)
