"""A transcriber's SavedModel (mmzoo.transcription.export): serving_default (waveforms) gives what
`transcribe` gives, serving_wav_bytes gives what the WAV file's int16-quantised waveform gives, beam decoding,
metadata, request checks (another sampling rate, shapes, empty batches), no CudnnRNN op; and `mmzoo transcribe`
on an export and on a .keras file."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import cli
from mmzoo.transcription.model import build_transcriber

pytestmark = pytest.mark.xdist_group("transcription_export")

RATE, SAMPLES = 8000, 4000
TEXTS = ["a red circle", "the small square", "green"]


def clips(lengths, seed=0):
    rng = np.random.default_rng(seed)
    waves = np.zeros((len(lengths), SAMPLES), np.float32)
    for row, length in enumerate(lengths):
        waves[row, :length] = rng.uniform(-0.5, 0.5, length)
        waves[row, length - 1] = 0.5
    return waves


def wav_bytes(waveform, rate=RATE):
    samples = waveform[:, None] if waveform.ndim == 1 else waveform
    return tf.audio.encode_wav(tf.constant(samples, tf.float32), rate).numpy()


def quantised(waveform):
    """What a 16-bit WAV file of `waveform` decodes to (tf.audio.decode_wav)."""
    return tf.audio.decode_wav(wav_bytes(waveform))[0].numpy()[:, 0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_transcriber(texts=TEXTS, sample_rate=RATE, num_samples=SAMPLES, mel_bins=16, audio_widths=(8, 16),
                              audio_units=16)
    root = tmp_path_factory.mktemp("export")
    return model, mmzoo.export_model(model, root / "transcriber"), root


def test_serving_default_gives_what_transcribe_gives(exported):
    model, version, _ = exported
    assert os.path.basename(version) == "1"
    served = mmzoo.load_exported(version)
    assert {"serving_default", "serving_wav_bytes"} <= set(served.signatures)
    waves = clips([4000, 1700, 400])
    expected = model.transcribe(waves)
    out = served({"audio": waves})
    assert [text.decode() for text in out["transcript"]] == list(expected["transcript"])
    np.testing.assert_array_equal(out["token_ids"], expected["token_ids"])
    np.testing.assert_array_equal(out["length"], expected["length"])
    np.testing.assert_allclose(out["log_probability"], expected["log_probability"], rtol=1e-4)
    assert out["token_ids"].shape == (3, model.num_steps) and out["length"].dtype == np.int32
    metadata = json.load(open(os.path.join(version, "assets.extra", "mmzoo.json")))
    assert metadata["task"] == "transcribe" and metadata["strategy"] == "greedy"
    assert metadata["inputs"] == {"audio": {"kind": "audio", "sample_rate": RATE, "num_samples": SAMPLES}}
    assert metadata["vocabulary"] == model.id_to_token and served.audio_inputs() == {
        "audio": {"sample_rate": RATE, "num_samples": SAMPLES}}


def test_wav_bytes_equal_the_waveform(exported):
    model, version, _ = exported
    served = mmzoo.load_exported(version)
    waves = clips([4000, 2300], seed=1)
    from_wav = served.predict_wav_bytes({"audio_wav": [wav_bytes(wave[:length]) for wave, length in
                                                       zip(waves, (4000, 2300))]})
    decoded = np.stack([np.pad(quantised(wave[:length]), (0, SAMPLES - length)) for wave, length in
                        zip(waves, (4000, 2300))])
    from_waveform = served({"audio": decoded})
    for key in ("transcript", "token_ids", "length"):
        np.testing.assert_array_equal(from_wav[key], from_waveform[key])
    np.testing.assert_allclose(from_wav["log_probability"], from_waveform["log_probability"], rtol=1e-5)
    # A stereo file is mixed down; a longer one cropped.
    stereo = served.predict_wav_bytes({"audio_wav": [wav_bytes(np.stack([waves[0], waves[0]], axis=1))]})
    assert stereo["transcript"][0] == from_waveform["transcript"][0]
    longer = served.predict_wav_bytes({"audio_wav": [wav_bytes(np.concatenate([waves[0], waves[1]]))]})
    assert longer["transcript"][0] == from_waveform["transcript"][0]


def test_requests_are_checked(exported):
    _, version, _ = exported
    served = mmzoo.load_exported(version)
    with pytest.raises(ValueError, match="16000 Hz; the model takes 8000 Hz"):
        served.predict_wav_bytes({"audio_wav": [wav_bytes(clips([4000])[0], rate=16000)]})
    # In the graph too, for clients that never run mmzoo's Python (TF Serving).
    with pytest.raises(tf.errors.InvalidArgumentError, match="audio_wav: a WAV file sampled at 16000 Hz"):
        served.signatures["serving_wav_bytes"](audio_wav=tf.constant([wav_bytes(clips([4000])[0], rate=16000)]))
    with pytest.raises(ValueError, match=r"shape \[batch, 4000\]"):
        served({"audio": np.zeros((1, 3000), np.float32)})
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be float32 waveforms of shape \[batch, 4000\]"):
        served.signatures["serving_default"](audio=tf.zeros([2, 3000]))
    empty = served({"audio": np.zeros((0, SAMPLES), np.float32)})
    assert empty["transcript"].shape == (0,) and empty["token_ids"].shape == (0, 26)


def test_no_cudnn_op_in_the_graph(exported):
    _, version, _ = exported
    loaded = tf.saved_model.load(version)
    ops = set()
    for signature in loaded.signatures.values():
        graph = signature.graph.as_graph_def()
        ops.update(node.op for node in graph.node)
        ops.update(node.op for function in graph.library.function for node in function.node_def)
    assert not {op for op in ops if "Cudnn" in op}
    assert {"CTCGreedyDecoder", "DecodeWav"} <= ops


def test_beam_export_and_export_errors(exported, tmp_path):
    model, _, _ = exported
    version = mmzoo.transcription.export_transcriber(model, tmp_path / "beam", strategy="beam", beam_width=4)
    served = mmzoo.load_exported(version)
    waves = clips([4000, 900], seed=2)
    expected = model.transcribe(waves, strategy="beam", beam_width=4)
    assert [text.decode() for text in served({"audio": waves})["transcript"]] == list(expected["transcript"])
    assert json.load(open(os.path.join(version, "assets.extra", "mmzoo.json")))["beam_width"] == 4
    with pytest.raises(ValueError, match="strategy"):
        mmzoo.transcription.export_transcriber(model, tmp_path / "x", strategy="sample")


def _run_cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_mmzoo_transcribe_prints_the_transcripts(exported, tmp_path, capsys):
    model, version, root = exported
    waves = clips([4000, 1800], seed=3)
    files = []
    for index, wave in enumerate(waves):
        files.append(tmp_path / f"{index}.wav")
        files[-1].write_bytes(wav_bytes(wave))
    expected = model.transcribe(np.stack([quantised(wave) for wave in waves]))["transcript"]
    code, out, _ = _run_cli(["transcribe", "--model", str(root / "transcriber"), "--audio", *map(str, files)], capsys)
    assert code == 0
    assert [line.split("\t")[1] for line in out.splitlines()] == list(expected)
    assert [line.split("\t")[0] for line in out.splitlines()] == list(map(str, files))
    keras_file = tmp_path / "t.keras"
    model.save(keras_file)
    code, out, _ = _run_cli(["transcribe", "--model", str(keras_file), "--audio", str(files[0])], capsys)
    assert code == 0 and out.splitlines()[0].split("\t")[1] == expected[0]
    # A file at another rate is refused, or with --resample resampled (as mmzoo.data reads a CSV's audio).
    (tmp_path / "fast.wav").write_bytes(wav_bytes(np.repeat(waves[1][:1800], 2), rate=16000))
    command = ["transcribe", "--model", str(root / "transcriber"), "--audio", str(tmp_path / "fast.wav")]
    code, _, err = _run_cli(command, capsys)
    assert code == 2 and "sampled at 16000 Hz; the model takes 8000 Hz audio (give --resample" in err
    code, out, err = _run_cli(command + ["--resample"], capsys)
    assert code == 0 and len(out.splitlines()) == 1 and "resampled from 16000 Hz to 8000 Hz" in err
    code, _, err = _run_cli(["transcribe", "--model", str(root / "transcriber"), "--audio",
                             str(tmp_path / "missing.wav")], capsys)
    assert code == 2 and "missing.wav" in err
    code, _, err = _run_cli(["transcribe", "--model", str(tmp_path / "nothing"), "--audio", str(files[0])], capsys)
    assert code == 2 and "model not found" in err
