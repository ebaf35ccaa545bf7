"""SavedModel export of a transcriber: waveforms or WAV files in, transcripts out, decoded inside the graph.

Signatures (TF Serving layout `<dir>/<version>/`, written through `mmzoo.export_dirs` like every mmzoo export):

* `serving_default`: `audio` float32 `[None, num_samples]` (mono, in [-1, 1], at the model's rate, zero-padded at
  the end) -> `transcript` string `[None]`, `token_ids` int32 `[None, steps]` (character ids, 0-padded),
  `length` int32 `[None]` (characters) and `log_probability` float32 `[None]`;
* `serving_wav_bytes`: `audio_wav` string `[None]` (16-bit PCM WAV files at the model's rate) -> the same; each
  file decoded with `tf.audio.decode_wav`, mixed to mono, cropped or zero-padded
  (`mmzoo.serving_checks.decode_wavs`, what classifier exports use); a file of another rate fails naming the
  input, the rate received and the rate expected.

Requests are checked in the graph as every mmzoo export checks them (shape, finite samples; an empty batch is
answered empty). The decoding is `decoding_function`, the one `SpeechTranscriber.transcribe` runs, with the
strategy fixed at export time. Recurrent layers are traced with their generic kernel: no CudnnRNN op, so an
export made on a GPU serves on a CPU-only server.
"""

import json
import os

import keras
import tensorflow as tf

from mmzoo import export_dirs
from mmzoo.serving_checks import (METADATA_FILE, SERVING_DEFAULT, SERVING_WAV_BYTES, WAV_SUFFIX, decode_wavs, served,
                                  string_spec, waveform_spec)
from mmzoo.transcription.decoding import check_options, decoding_function
from mmzoo.transcription.model import INPUT, TASK

WAV_INPUT = f"{INPUT}{WAV_SUFFIX}"


def export_transcriber(transcriber, path, *, overwrite=False, strategy="greedy", beam_width=16):
    """Export `transcriber` (a `SpeechTranscriber`) and return the version directory written. `path`,
    `overwrite`: as `mmzoo.export_model`. `strategy` ("greedy" or "beam") and `beam_width`: how the served
    transcripts are decoded (fixed in the export, as `SpeechTranscriber.transcribe` takes them)."""
    from mmzoo.export import _portable_recurrent_layers

    options = check_options(strategy, beam_width)
    model_dir, version = export_dirs.split_target(path)
    with export_dirs.Staging(model_dir, version, overwrite=overwrite) as staging:
        with _portable_recurrent_layers(transcriber):
            _archive(transcriber, options).write_out(staging.path, verbose=False)
        _write_metadata(staging.path, transcriber, options)
        return staging.publish()


def _archive(transcriber, options):
    decode = decoding_function(transcriber, strategy=options[0], beam_width=options[1])
    rate, samples = transcriber.sample_rate, transcriber.num_samples

    def empty():
        return {"transcript": tf.zeros([0], tf.string), "token_ids": tf.zeros([0, transcriber.num_steps], tf.int32),
                "length": tf.zeros([0], tf.int32), "log_probability": tf.zeros([0], tf.float32)}

    def serve(inputs):
        return served(inputs, {INPUT: ("waveforms", samples)}, lambda checked: decode(checked[INPUT]), empty)

    def serve_wav_bytes(inputs):
        return served(inputs, {WAV_INPUT: "strings"},
                      lambda checked: decode(decode_wavs(checked[WAV_INPUT], WAV_INPUT, rate, samples)), empty)

    archive = keras.export.ExportArchive()
    archive.track(transcriber)
    archive.add_endpoint(SERVING_DEFAULT, serve, input_signature=[{INPUT: waveform_spec(INPUT, samples)}])
    archive.add_endpoint(SERVING_WAV_BYTES, serve_wav_bytes, input_signature=[{WAV_INPUT: string_spec(WAV_INPUT)}])
    return archive


def _write_metadata(directory, transcriber, options):
    """assets.extra/mmzoo.json, as the classifier export writes it (so `ExportedModel.audio_inputs` and its WAV
    checks work), plus what a transcription client needs to know."""
    strategy, beam_width = options
    metadata = {"task": TASK, "inputs": {INPUT: {"kind": "audio", "sample_rate": transcriber.sample_rate,
                                                 "num_samples": transcriber.num_samples}},
                "class_names": None, "strategy": strategy, "beam_width": beam_width,
                "vocabulary": transcriber.id_to_token}
    target = os.path.join(directory, METADATA_FILE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
