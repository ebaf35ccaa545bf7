"""`train_transcriber`: speech + transcripts in, a trained, evaluated, saved and exported transcriber out (what
`mmzoo train --task transcribe` runs)."""

import dataclasses
import math
import os
import warnings

from mmzoo.transcription.data import (fit_report, is_transcript_file, pack_dataset, transcription_dataset,
                                      transcripts_and_waveforms)

KERAS_MODEL = "model.keras"
CSV_LOG = "training_log.csv"
LOG_DIR = "logs"
# epochs="auto": about this many clips seen (4 epochs of the bundled 3,000 spoken captions), within the bounds.
AUTO_EXAMPLES = 12_000
AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 3, 60
GRADIENT_CLIP_NORM = 5.0


@dataclasses.dataclass
class TranscribeTrainResult:
    """What `train_transcriber` returns: the model, Keras' history, the test metrics (`evaluate_transcripts`:
    wer, cer, exact_match, examples; empty without test data), the training data's `fit_report` and the files
    written ("model", "export", "log"; None when not written)."""

    model: object
    history: dict
    test_metrics: dict
    data_report: dict
    paths: dict


def auto_epochs(num_examples):
    """Epochs for `epochs="auto"`: about `AUTO_EXAMPLES` clips seen, within `AUTO_MIN_EPOCHS`..`AUTO_MAX_EPOCHS`."""
    if not num_examples or num_examples < 0:
        return AUTO_MIN_EPOCHS
    return max(AUTO_MIN_EPOCHS, min(AUTO_MAX_EPOCHS, round(AUTO_EXAMPLES / num_examples)))


def train_transcriber(model, data, *, validation_data=None, test_data=None, train_split="train",
                      validation_split="validation", test_split="test", data_dir=None, audio_column="audio",
                      text_column=None, skip_bad_rows=False, encoding="utf-8", epochs="auto", batch_size=16,
                      learning_rate=3e-3, schedule="cosine", seed=0, model_options=None, strategy="greedy",
                      beam_width=16, evaluate_limit=None, output_dir=None, export_dir=None, callbacks=(), verbose=1):
    """Train a transcriber with plain `fit` and return a `TranscribeTrainResult`.

    `model`: a transcription recipe (`mmzoo.list_models(task="transcribe")`, built with the training
    transcripts' characters and the data's sample rate and clip length, plus `model_options`) or a
    `SpeechTranscriber` (a file's clips are then resampled and padded to its rate and length). `data`: a TFDS
    name with its splits (default audio: its Audio feature; transcripts: `text_column`, default "text"), or a
    .csv/.jsonl file of (WAV path, transcript) rows with `validation_data` and `test_data` files (the test file
    defaults to the validation file). `epochs="auto"`: `auto_epochs` of the training examples. `learning_rate`:
    Adam's, decayed by `schedule`; gradients are clipped to a global norm of `GRADIENT_CLIP_NORM`. Transcripts
    too long for their clip (see `pack_dataset`) do not count, with a warning. After training the transcriber
    transcribes the test clips (`strategy`, at most `evaluate_limit`) and reports WER/CER; it is saved as
    `<output_dir>/model.keras` (with a CSV and a TensorBoard log) and exported to `export_dir` (next free version)
    when those are given.
    """
    import keras

    from mmzoo.transcription.decoding import check_options

    _check_model(model)
    check_options(strategy, beam_width)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    read = _reader(data_dir=data_dir, audio_column=audio_column, text_column=text_column,
                   skip_bad_rows=skip_bad_rows, encoding=encoding, batch_size=batch_size, seed=seed)
    rate, samples = _declared_audio(model, model_options)
    train, info = read(data, train_split, sample_rate=rate, num_samples=samples, shuffle=True, with_info=True)
    rate, samples = info.sample_rate, info.num_samples
    if isinstance(model, str):
        model = _build(model, data, train_split, read, rate, samples, model_options)
    _check_audio(model, rate, samples)
    validation = _split(read, data, validation_data, validation_split, rate, samples)
    test = _split(read, data, test_data if test_data is not None else validation_data, test_split, rate, samples)
    report = _check_fit(model, train)
    epochs = auto_epochs(info.num_examples) if epochs == "auto" else epochs
    steps = math.ceil(info.num_examples / batch_size) if info.num_examples else None
    model.compile(optimizer=_optimizer(learning_rate, schedule, steps, epochs))
    history = model.fit(pack_dataset(model, train), epochs=epochs, verbose=verbose, shuffle=False,
                        callbacks=_callbacks(output_dir, callbacks),
                        validation_data=None if validation is None else pack_dataset(model, validation))
    paths = _save(model, output_dir, export_dir, strategy, beam_width)  # before the evaluation, which may fail
    metrics = {} if test is None else _test_metrics(model, test, evaluate_limit, strategy, beam_width)
    return TranscribeTrainResult(model=model, history=history.history, test_metrics=metrics, data_report=report,
                                 paths=paths)


def _check_model(model):
    from mmzoo.recipes import list_models, recipe_task
    from mmzoo.transcription.model import SpeechTranscriber

    if isinstance(model, str):
        if recipe_task(model) != "transcribe":  # recipe_task raises for an unknown name
            raise ValueError(f"`model` {model!r} is a {recipe_task(model)} recipe; expected a transcription recipe, "
                             f"one of {', '.join(list_models(task='transcribe'))}. Received: model={model!r}")
    elif not isinstance(model, SpeechTranscriber):
        raise ValueError(f"`model` must be a transcription recipe name or a SpeechTranscriber. Received: "
                         f"model={model!r}")


def _declared_audio(model, model_options):
    """(sample_rate, num_samples) a file's clips are read at: the built model's, or those `model_options` set, or
    None (the files' own)."""
    from mmzoo.transcription.model import SpeechTranscriber

    if isinstance(model, SpeechTranscriber):
        return model.sample_rate, model.num_samples
    options = model_options or {}
    return options.get("sample_rate"), options.get("num_samples")


def _check_audio(model, sample_rate, num_samples):
    """TFDS audio cannot be resampled or re-cut here: its rate and length must be the model's."""
    if (sample_rate, num_samples) != (model.sample_rate, model.num_samples):
        raise ValueError(f"The data's audio is {sample_rate} Hz, {num_samples} samples a clip; the transcriber takes "
                         f"{model.sample_rate} Hz, {model.num_samples} samples. Build it with "
                         f"sample_rate={sample_rate}, num_samples={num_samples}.")


def _build(recipe, data, split, read, sample_rate, num_samples, model_options):
    """The recipe built with the training transcripts' characters and the data's audio format."""
    import mmzoo
    from mmzoo.transcription.characters import character_vocabulary

    texts = _training_texts(data, split, read)
    options = dict(vocabulary=character_vocabulary(texts), sample_rate=sample_rate, num_samples=num_samples)
    return mmzoo.build_model(recipe, **{**options, **(model_options or {})})


def _training_texts(data, split, read):
    """The training transcripts (str), read without their audio: the text column of a file, or the TFDS text
    feature alone."""
    if is_transcript_file(data):
        texts = read(data, None, audio_column=None, shuffle=False, batch_size=1024).map(lambda row: row["text"])
    else:
        texts = _tfds_texts(data, split, read.fixed["data_dir"], read.fixed["text_column"] or "text")
    return [text for batch in texts.as_numpy_iterator() for text in batch]


def _tfds_texts(name, split, data_dir, key):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from mmzoo.data.pipeline import get_builder

    parts = key.split("/")
    wanted = True
    for part in reversed(parts):
        wanted = {part: wanted}
    rows = get_builder(name, data_dir=data_dir).as_dataset(split=split, decoders=tfds.decode.PartialDecoding(wanted))

    def text(row):
        for part in parts:
            row = row[part]
        return row

    return rows.map(text, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)


def _check_fit(model, train):
    """The training data's `fit_report`; a warning when some transcripts cannot be aligned to their clip."""
    report = fit_report(model, train)
    if report["too_long"]:
        warnings.warn(f"{report['too_long']} of {report['examples']} training transcripts need more time steps than "
                      f"their clip has (speech of up to {report['max_characters_per_second']:.1f} characters a "
                      "second); they are left out of the loss. Give the transcriber more steps a second "
                      "(a smaller frame_step_ms or audio_time_pools).", stacklevel=3)
    return report


def _optimizer(learning_rate, schedule, steps, epochs):
    import keras

    from mmzoo.schedules import learning_rate_schedule

    return keras.optimizers.Adam(learning_rate_schedule(learning_rate, schedule, steps, epochs),
                                 global_clipnorm=GRADIENT_CLIP_NORM)


def _callbacks(output_dir, extra):
    import keras

    callbacks = list(extra)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        callbacks += [keras.callbacks.CSVLogger(os.path.join(output_dir, CSV_LOG)),
                      keras.callbacks.TensorBoard(os.path.join(output_dir, LOG_DIR), write_graph=False)]
    return callbacks


def _test_metrics(model, test, evaluate_limit, strategy, beam_width):
    from mmzoo.transcription.metrics import evaluate_transcripts

    waveforms, references = transcripts_and_waveforms(test, limit=evaluate_limit)
    hypotheses = model.transcribe(waveforms, strategy=strategy, beam_width=beam_width)["transcript"]
    return evaluate_transcripts(references, list(hypotheses))


def _save(model, output_dir, export_dir, strategy, beam_width):
    """Save to `<output_dir>/model.keras` and export to `export_dir`, each when given; the paths written."""
    paths = {"model": None, "export": None, "log": None}
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        paths["model"] = os.path.join(output_dir, KERAS_MODEL)
        paths["log"] = os.path.join(output_dir, CSV_LOG)
        model.save(paths["model"])
    if export_dir is not None:
        from mmzoo.transcription.export import export_transcriber

        paths["export"] = export_transcriber(model, export_dir, strategy=strategy, beam_width=beam_width)
    return paths


class _reader:
    """`transcription_dataset` with the arguments every split shares fixed."""

    def __init__(self, **fixed):
        self.fixed = fixed

    def __call__(self, source, split, **kwargs):
        return transcription_dataset(source, split, **{**self.fixed, **kwargs})


def _split(read, data, file, split, sample_rate, num_samples):
    """The validation or test data: a file of its own for file data (read at the training rate and length), else
    a TFDS split (None: none)."""
    if is_transcript_file(data):
        return None if file is None else read(file, None, sample_rate=sample_rate, num_samples=num_samples,
                                              shuffle=False)
    return None if split is None else read(data, split, shuffle=False)


def load_transcriber(path):
    """A transcriber saved with `model.save("m.keras")` (its classes registered first)."""
    import mmzoo.transcription.model  # noqa: F401  (registers the transcriber's classes)
    from mmzoo.classifier import load_model

    model = load_model(path)
    if getattr(model, "task", None) != "transcribe":
        raise ValueError(f"{path} holds a {type(model).__name__}, not a transcriber.")
    return model
