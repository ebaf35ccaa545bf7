"""Speech + transcript data: the bundled `mmzoo_shapes/spoken_captions` (its `speech` feature and `text`, the
caption spoken), any TFDS dataset with an Audio feature and a text, or your own CSV/JSONL rows of (WAV path,
transcript); and the packing of such batches into CTC training batches.

    train, info = transcription_dataset("mmzoo_shapes/spoken_captions", "train", with_info=True)
    train, info = transcription_dataset("speech.csv", with_info=True)        # columns "audio" (WAV paths), "text"
    packed = pack_dataset(transcriber, train)                               # ({"audio"}, labels, weights)

Every dataset yields batches of `{"audio": float32 [B, num_samples], "text": string [B]}`. Own files are read by
`mmzoo.data.from_csv` / `from_jsonl` with no label column, so WAV files get the same checks (missing, corrupt,
resampled to one rate, padded to the longest clip; docs/data.md "Audio columns") as every audio file mmzoo reads.
"""

import os

import numpy as np
import tensorflow as tf

from mmzoo.transcription.characters import LabelEncoder, required_steps

DEFAULT_TEXT_COLUMN = "text"


def is_transcript_file(data):
    return isinstance(data, (str, os.PathLike)) and os.fspath(data).lower().endswith((".csv", ".jsonl"))


def transcription_dataset(data, split="train", *, audio_column="audio", text_column=None, batch_size=32,
                          sample_rate=None, num_samples=None, shuffle=None, seed=None, data_dir=None,
                          skip_bad_rows=False, encoding="utf-8", with_info=False):
    """Batches of `{"audio", "text"}` from a .csv/.jsonl file (`audio_column` holds WAV paths, relative to the
    file's folder, `text_column` the transcripts, default "text") or a TFDS name (its Audio feature, or the one
    `audio_column` names when it is not "audio", and `text_column`, default "text"; `split`, `data_dir`).
    `sample_rate`/`num_samples`: what a file's clips are resampled and padded to (default: the files' most common
    rate, the longest clip); a TFDS dataset keeps its rate and declared length. `shuffle` defaults to True for
    TFDS splits starting with "train" and False for files. With `with_info`, also a `mmzoo.data.DataInfo`
    (`sample_rate`, `num_samples`, `num_examples`)."""
    import mmzoo.data

    text = text_column or DEFAULT_TEXT_COLUMN
    if is_transcript_file(data):
        reader = mmzoo.data.from_csv if os.fspath(data).lower().endswith(".csv") else mmzoo.data.from_jsonl
        return reader(data, image_column=None, text_column=text, label_column=None, audio_column=audio_column,
                      sample_rate=sample_rate, num_samples=num_samples, batch_size=batch_size,
                      shuffle=bool(shuffle), seed=seed, skip_bad_rows=skip_bad_rows, encoding=encoding,
                      with_info=with_info)
    if not isinstance(data, str):
        raise ValueError(f"`data` must be a TFDS name or a .csv/.jsonl file. Received: data={data!r}")
    keys = {"image": None, "text": text, "label": None}
    if audio_column not in (None, "audio"):
        keys["audio"] = audio_column
    return mmzoo.data.load(data, split, batch_size=batch_size, shuffle=shuffle, seed=seed, data_dir=data_dir,
                           feature_keys=keys, num_samples=num_samples, with_info=with_info)


def valid_tokens(transcriber, waveforms):
    """int32 [batch]: the time steps of each clip before its zero padding, as the transcriber's token mask counts
    them (computed from the waveform alone, so it runs in `tf.data`)."""
    from mmzoo.towers.audio import time_downsampling
    from mmzoo.towers.audio_features import frame_params, num_frames, valid_frames

    options = transcriber.audio_options
    _, stride, _ = frame_params(options["sample_rate"], options["frame_length_ms"], options["frame_step_ms"])
    frames = num_frames(options["num_samples"], stride)
    downsampling = time_downsampling(options["audio_time_pools"])
    return (valid_frames(waveforms, stride, frames) + downsampling - 1) // downsampling


def pack_dataset(transcriber, dataset):
    """Batches of `{"audio", "text"}` -> `({"audio": waveforms}, labels, weights)` for `transcriber.fit`: labels
    int32 [B, longest transcript] (character ids, 0-padded), weights float32 [B]: 1, or 0 for a clip whose
    transcript needs more time steps than the clip has (`required_steps` > its valid steps; CTC cannot align
    it, so it must not count). `fit_report` says how many a dataset holds."""
    encoder = LabelEncoder(transcriber.vocabulary)

    def pack(features):
        labels = encoder.dense(features["text"])
        fits = required_steps(labels) <= valid_tokens(transcriber, features["audio"])
        return {"audio": features["audio"]}, labels, tf.cast(fits, tf.float32)

    return dataset.map(pack, num_parallel_calls=tf.data.AUTOTUNE)


def fit_report(transcriber, dataset):
    """`{"examples", "too_long", "max_characters_per_second", "max_required_fraction"}` over a dataset of
    `{"audio", "text"}`: how many transcripts cannot be aligned to their clip's steps, the fastest speech in
    characters a second, and the most steps a transcript needs over those its clip has (<= 1 for every
    alignable one)."""
    from mmzoo.towers.audio_features import signal_lengths

    encoder = LabelEncoder(transcriber.vocabulary)
    examples, too_long, fastest, tightest = 0, 0, 0.0, 0.0
    for features in dataset:
        labels = encoder.dense(features["text"])
        needed = required_steps(labels).numpy()
        available = valid_tokens(transcriber, features["audio"]).numpy()
        seconds = np.maximum(signal_lengths(features["audio"]).numpy(), 1) / transcriber.sample_rate
        characters = np.sum(labels.numpy() > 0, axis=1)
        examples += len(needed)
        too_long += int(np.sum(needed > available))
        fastest = max(fastest, float(np.max(characters / seconds, initial=0.0)))
        tightest = max(tightest, float(np.max(needed / np.maximum(available, 1), initial=0.0)))
    return {"examples": examples, "too_long": too_long, "max_characters_per_second": fastest,
            "max_required_fraction": tightest}


def transcripts_and_waveforms(dataset, limit=None):
    """`(waveforms float32 [N, num_samples], transcripts [str x N])` of a dataset of {"audio", "text"} (batched or
    not), at most `limit` examples."""
    waveforms, texts = [], []
    for features in dataset.as_numpy_iterator():
        audio = features["audio"] if features["audio"].ndim == 2 else features["audio"][None]
        for clip, text in zip(audio, np.atleast_1d(features["text"])):
            if limit is not None and len(texts) >= limit:
                break
            waveforms.append(clip)
            texts.append(text.decode("utf-8"))
        if limit is not None and len(texts) >= limit:
            break
    if not texts:
        raise ValueError("The dataset holds no examples.")
    return np.stack(waveforms).astype(np.float32), texts
