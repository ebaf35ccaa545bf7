"""Export of models with audio inputs: the signatures (float32 waveforms, WAV bytes), served = Keras, WAV bytes =
waveforms to int16 tolerance, stereo mix-down, a wrong sampling rate refused in Python and in the graph, request
errors, absent audio through serving_presence, no CudnnRNN ops, audio encoders, and 1 vs 2 replicas."""

import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import wave

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo import export as export_module
from mmzoo.audio_files import decode_wav_refusal, wav_header
from mmzoo.classifier import build_classifier
from mmzoo.towers import build_audio_tower
from helpers import VOCABULARY

pytestmark = pytest.mark.xdist_group("audio_export")

RATE, SAMPLES = 8000, 4000
CLASS_NAMES = ["red", "blue", "two"]
SCRIPT = pathlib.Path(__file__).parent / "scripts" / "mirrored_audio.py"


def clips(lengths, seed=0, amplitude=0.5):
    rng = np.random.default_rng(seed)
    waves = np.zeros((len(lengths), SAMPLES), np.float32)
    for row, length in enumerate(lengths):
        waves[row, :length] = rng.uniform(-amplitude, amplitude, length)
        waves[row, length - 1] = amplitude
    return waves


def wav_bytes(waveform, rate=RATE):
    """A 16-bit PCM WAV file of `waveform` (samples,) or (samples, channels), written by tf.audio.encode_wav."""
    samples = waveform[:, None] if waveform.ndim == 1 else waveform
    return tf.audio.encode_wav(tf.constant(samples, tf.float32), rate).numpy()


def decoded(files):
    """What the export decodes from mono WAV files: the int16-quantised waveforms, zero-padded."""
    waves = np.zeros((len(files), SAMPLES), np.float32)
    for row, data in enumerate(files):
        audio = tf.audio.decode_wav(data)[0].numpy()[:SAMPLES, 0]
        waves[row, :len(audio)] = audio
    return waves


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_classifier(
        towers={"image": "small_cnn", "speech": {"tower": "mel_crnn", "audio_widths": (8, 16)}, "text": "gru"},
        fusion="gated", class_names=CLASS_NAMES, vocabulary=VOCABULARY, image_size=32, sequence_length=6,
        embedding_dim=8, text_units=8, fusion_units=8, sample_rate=RATE, num_samples=SAMPLES, mel_bins=16,
        audio_units=12, modality_dropout=0.0)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return mmzoo.export_model(model, tmp_path_factory.mktemp("exports") / "spoken" / "1")


@pytest.fixture(scope="module")
def served(exported):
    return mmzoo.load_exported(exported)


def request(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (batch, 32, 32, 3)).astype(np.uint8),
            "speech": clips(rng.integers(200, SAMPLES, batch), seed=seed),
            "text": np.array(["what color is the circle", "how many", "is the square left of the circle"] * batch,
                             dtype=object)[:batch]}


def keras_probabilities(model, inputs):
    tensors = {key: tf.constant(value.astype(np.float32) if key == "image" else value) for key, value in inputs.items()}
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(tensors, training=False)))


def test_signatures_take_waveforms_and_wav_bytes(exported, served):
    loaded = tf.saved_model.load(exported)
    assert set(loaded.signatures) == {"serving_default", "serving_image_bytes", "serving_wav_bytes",
                                      "serving_presence"}
    default = loaded.signatures["serving_default"].structured_input_signature[1]
    assert default["speech"].dtype == tf.float32 and default["speech"].shape.as_list() == [None, SAMPLES]
    wav = loaded.signatures["serving_wav_bytes"].structured_input_signature[1]
    assert set(wav) == {"image", "speech_wav", "text"} and wav["speech_wav"].dtype == tf.string
    assert set(loaded.signatures["serving_image_bytes"].structured_input_signature[1]) == {"image_bytes", "speech",
                                                                                          "text"}
    assert served.audio_inputs() == {"speech": {"sample_rate": RATE, "num_samples": SAMPLES}}
    with open(os.path.join(exported, "assets.extra", "mmzoo.json")) as f:
        assert json.load(f)["inputs"]["speech"] == {"kind": "audio", "sample_rate": RATE, "num_samples": SAMPLES}


def test_serving_default_equals_keras(model, served):
    inputs = request(batch=4, seed=1)
    out = served(inputs)
    expected = keras_probabilities(model, inputs)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    assert list(out["label"]) == [CLASS_NAMES[i] for i in expected.argmax(-1)]
    empty = served({key: value[:0] for key, value in inputs.items()})
    assert empty["probabilities"].shape == (0, 3) and empty["label"].shape == (0,)


def test_wav_bytes_equal_the_waveform_through_serving_default(served):
    inputs = request(batch=3, seed=2)
    files = [wav_bytes(wave[:int(np.flatnonzero(wave)[-1]) + 1]) for wave in inputs["speech"]]  # unpadded files
    from_wav = served.predict_wav_bytes({"image": inputs["image"], "speech_wav": files, "text": inputs["text"]})
    quantised = served({**inputs, "speech": decoded(files)})
    np.testing.assert_allclose(from_wav["probabilities"], quantised["probabilities"], atol=1e-6)
    np.testing.assert_allclose(from_wav["probabilities"], served(inputs)["probabilities"], atol=1e-4)
    assert list(from_wav["label"]) == list(quantised["label"])


def test_stereo_is_mixed_down_and_long_files_are_cropped(served):
    inputs = request(batch=2, seed=3)
    mono = inputs["speech"]
    stereo = [wav_bytes(np.stack([wave, wave], axis=1)) for wave in mono]
    long = [wav_bytes(np.concatenate([wave, np.full(1000, 0.3, np.float32)])) for wave in mono]
    as_mono = served.predict_wav_bytes({"image": inputs["image"], "speech_wav": [wav_bytes(w) for w in mono],
                                        "text": inputs["text"]})["probabilities"]
    for files in (stereo, long):
        out = served.predict_wav_bytes({"image": inputs["image"], "speech_wav": files, "text": inputs["text"]})
        np.testing.assert_allclose(out["probabilities"], as_mono, atol=1e-6)
    left_only = [wav_bytes(np.stack([wave, np.zeros_like(wave)], axis=1)) for wave in mono]
    halved = served({**inputs, "speech": decoded([wav_bytes(w) for w in mono]) / 2})["probabilities"]
    out = served.predict_wav_bytes({"image": inputs["image"], "speech_wav": left_only, "text": inputs["text"]})
    np.testing.assert_allclose(out["probabilities"], halved, atol=1e-5)  # the mean of the channels


def test_a_wav_of_another_sample_rate_is_refused_naming_input_and_rates(served, exported):
    inputs = request(batch=2, seed=4)
    files = [wav_bytes(inputs["speech"][0]), wav_bytes(inputs["speech"][1], rate=16000)]
    with pytest.raises(ValueError, match=r"Input 'speech_wav' example 1: a WAV file sampled at 16000 Hz; the "
                                         r"model takes 8000 Hz audio"):
        served.predict_wav_bytes({"image": inputs["image"], "speech_wav": files, "text": inputs["text"]})
    # A client that skips mmzoo's Python checks (TF Serving) gets the graph's assertion.
    signature = tf.saved_model.load(exported).signatures["serving_wav_bytes"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input speech_wav: a WAV file sampled at 16000 Hz; "
                                                              "the model takes 8000 Hz audio"):
        signature(image=tf.constant(inputs["image"]), speech_wav=tf.constant(files), text=tf.constant(inputs["text"]))


def _chunk(name, body):
    return name + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _fmt(tag=1, channels=1, bits=16, extra=b""):
    block = channels * bits // 8
    return _chunk(b"fmt ", struct.pack("<HHIIHH", tag, channels, RATE, RATE * block, block, bits) + extra)


def _riff(*chunks):
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


SAMPLES_16 = np.arange(-5, 5, dtype="<i2").tobytes()
# 16-bit PCM as WAVE_FORMAT_EXTENSIBLE: cbSize 22, valid bits, channel mask, the PCM sub-format GUID.
EXTENSIBLE = struct.pack("<HHI", 22, 16, 4) + bytes.fromhex("0100000000001000800000aa00389b71")
# WAV bytes tf.audio.decode_wav decodes (True) or refuses (False), each as some writer makes them.
WAV_LAYOUTS = {
    "plain": (_riff(_fmt(), _chunk(b"data", SAMPLES_16)), True),
    "fmt of 18 bytes": (_riff(_fmt(extra=b"\0\0"), _chunk(b"data", SAMPLES_16)), True),
    "LIST between fmt and data (ffmpeg)": (_riff(_fmt(), _chunk(b"LIST", b"INFOabcd"), _chunk(b"data", SAMPLES_16)),
                                           True),
    "LIST after data": (_riff(_fmt(), _chunk(b"data", SAMPLES_16), _chunk(b"LIST", b"INFOabcd")), True),
    "extensible 16-bit": (_riff(_fmt(tag=0xFFFE, extra=EXTENSIBLE), _chunk(b"data", SAMPLES_16)), False),
    "LIST before fmt": (_riff(_chunk(b"LIST", b"INFOabcd"), _fmt(), _chunk(b"data", SAMPLES_16)), False),
    "streamed length": (_riff(_fmt()) + b"data" + struct.pack("<I", 0xFFFFFFFF) + SAMPLES_16, False),
    "no samples": (_riff(_fmt(), _chunk(b"data", b"")), False),
    "float": (_riff(_fmt(tag=3, bits=32), _chunk(b"data", np.zeros(4, "<f4").tobytes())), False),
    "two data chunks": (_riff(_fmt(), _chunk(b"data", SAMPLES_16), _chunk(b"data", SAMPLES_16)), False),
    "odd chunk after data (padded)": (_riff(_fmt(), _chunk(b"data", SAMPLES_16), _chunk(b"LIST", b"INFOabc")),
                                      False),
    "odd chunk before data (padded)": (_riff(_fmt(), _chunk(b"LIST", b"INFOabc"), _chunk(b"data", SAMPLES_16)),
                                       False),
}


@pytest.mark.parametrize("layout", WAV_LAYOUTS)
def test_the_python_check_refuses_exactly_what_decode_wav_refuses(layout):
    data, decodes = WAV_LAYOUTS[layout]
    refusal = decode_wav_refusal(data, wav_header(data))
    try:
        audio, _ = tf.audio.decode_wav(data)
        decoded = audio.shape[0] > 0
    except tf.errors.InvalidArgumentError:
        decoded = False
    assert decoded == decodes and (refusal is None) == decodes, refusal


def _eight_bit_wav():
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(1)
        f.setframerate(RATE)
        f.writeframes(bytes(range(256)))
    return buffer.getvalue()


def test_bad_audio_requests_get_one_line_errors(served):
    inputs = request(batch=2, seed=5)
    speech = inputs["speech"]
    bad = [(speech[0], r"Input 'speech' must be float32 waveforms of shape \[batch, 4000\].*one clip: wrap it"),
           (speech[:, :3000], r"Received: shape \(2, 3000\) \(crop or zero-pad each clip at the end to 4000"),
           ((speech * 32767).astype(np.int16), "Received: dtype int16 .*divide int16 samples by 32768"),
           (speech * 3, r"Received: values from .* \(scale or clip them"),
           (np.where(speech > 0.4, np.nan, speech), "holds NaN or infinite samples")]
    for value, message in bad:
        with pytest.raises(ValueError, match=message):
            served({**inputs, "speech": value})
    silent_tail = wav_bytes(np.concatenate([speech[0][:100], np.zeros(50, np.float32)]))
    convert = r"ffmpeg -i IN\.wav -ar 8000 -ac 1 -c:a pcm_s16le OUT\.wav, or send mmzoo\.data\.wav\.load_clip\(path, "
    files = [([b"not a wav file at all"], r"^Input 'speech_wav' example 0: the file is not a WAV file .*" + convert),
             (["a.wav"], "expected the bytes of a WAV file, got str"),
             ([_eight_bit_wav()], "8-bit PCM samples; the export decodes 16-bit PCM; .*" + convert),
             ([WAV_LAYOUTS["extensible 16-bit"][0]], r"format tag 0xfffe \(WAVE_FORMAT_EXTENSIBLE\).*" + convert),
             ([WAV_LAYOUTS["LIST before fmt"][0]], "a 'LIST' chunk before its fmt chunk.*" + convert),
             ([WAV_LAYOUTS["streamed length"][0]], r"has no data length \(0xFFFFFFFF: written while streaming.*"
              + convert),
             ([WAV_LAYOUTS["no samples"][0]], "the file has no samples; .*" + convert),
             (np.array([silent_tail]), "is truncated.*not a numpy bytes array"), (silent_tail, "wrap it in a list")]
    for value, message in files:
        with pytest.raises(ValueError, match=message) as error:
            served.predict_wav_bytes({"image": inputs["image"][:1], "speech_wav": value, "text": inputs["text"][:1]})
        assert "\n" not in str(error.value)
    # The same file as a list of bytes keeps its zero tail and is served.
    served.predict_wav_bytes({"image": inputs["image"][:1], "speech_wav": [silent_tail], "text": inputs["text"][:1]})


def test_absent_audio_is_served_with_its_silent_placeholder(model, served):
    inputs = request(batch=2, seed=6)
    without = served({"image": inputs["image"], "text": inputs["text"]})
    flagged = served({**inputs, "speech_present": np.zeros(2, bool)})
    np.testing.assert_allclose(without["probabilities"], flagged["probabilities"], atol=1e-6)
    reference = model({"image": tf.constant(inputs["image"], tf.float32), "text": tf.constant(inputs["text"])})
    np.testing.assert_allclose(without["probabilities"], keras.ops.softmax(reference).numpy(), atol=1e-5)


def test_crnn_is_traced_without_cudnn(model, exported):
    rnns = [layer for layer in model._flatten_layers(recursive=True) if hasattr(layer, "use_cudnn")]
    assert any(hasattr(layer, "use_cudnn") for layer in model.audio_towers["speech"].layers)  # the CRNN's GRU
    with export_module._portable_recurrent_layers(model):
        assert all(layer.use_cudnn is False for layer in rnns)
    assert all(layer.use_cudnn == "auto" for layer in rnns)
    graph = tf.saved_model.load(exported).signatures["serving_wav_bytes"].graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    assert not any(op.startswith("Cudnn") for op in ops) and "DecodeWav" in ops
    assert "While" in ops or "StatelessWhile" in ops


def test_an_audio_encoder_exports_embedding_signatures(tmp_path):
    keras.utils.set_random_seed(0)
    tower = build_audio_tower("mel_cnn", sample_rate=RATE, num_samples=SAMPLES, mel_bins=16, widths=(8,), time_pools=1,
                              units=6)
    served = mmzoo.load_exported(mmzoo.export_model({"audio": tower}, tmp_path / "encoders"))
    assert {"embed_audio", "embed_audio_wav"} <= set(served.signatures)
    waves = clips([SAMPLES, 700], seed=7)
    np.testing.assert_allclose(served.embed_waveforms(waves), tower(waves).numpy(), atol=1e-5)
    files = [wav_bytes(wave) for wave in waves]
    np.testing.assert_allclose(served.embed_wav_bytes(files), tower(decoded(files)).numpy(), atol=1e-5)


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica():
    # A subprocess: logical CPU devices must be configured before TensorFlow initialises.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_step"] > 1e-3 and result["max_abs_diff"] <= 1e-5
    # SpecAugment: each replica draws its own masks (the mirrored SeedGenerator alone would give both the same).
    assert result["spec_augment_masked"] and result["spec_augment_replicas_differ"]
    assert result["spec_augment_replica0_is_one_device"]
