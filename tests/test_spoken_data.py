"""Tests of the spoken `mmzoo_shapes` configs: the shipped clips, utterance assembly, the TFDS configs and the
conversion of stored audio to model input (`mmzoo.data.speech`)."""

import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import mmzoo.data  # noqa: F401  (registers mmzoo_shapes)
from mmzoo.data import bundled, shapes, speech
from mmzoo.data.speech import clips as clip_bank

DUMMY_DATA = pathlib.Path(shapes.__file__).parent / "dummy_data"
SPOKEN = ("vqa_spoken", "spoken_captions")


def _written_words(text: str) -> list[str]:
    """The words of a bundled text, split independently of mmzoo.data.speech's own tokenizer."""
    return text.rstrip(".?").replace(",", "").split()


# ---------------------------------------------------------------------------------------------- the clips


def test_shipped_clips_cover_the_vocabulary_in_every_voice():
    bank = speech.load_clips()
    assert os.path.getsize(clip_bank.CLIPS_PATH) <= 3 * 1024**2
    assert bank.sample_rate == speech.SAMPLE_RATE == bundled.SPEECH_SAMPLE_RATE == shapes.SPEECH_SAMPLE_RATE
    assert len(bank.voices) >= 8 and len(bank.settings) == len(bank.voices)
    vocabulary = set(shapes.spoken_vocabulary())
    assert {"circle", "squares", "purple", "left", "above", "how", "many", "picture", "center"} <= vocabulary
    assert vocabulary <= set(bank.words)
    for voice in range(len(bank.voices)):
        for word in bank.words:
            clip = bank.clip(voice, word)
            assert clip.dtype == np.float32
            assert 0.03 * bank.sample_rate < len(clip) < 0.8 * bank.sample_rate, (voice, word, len(clip))
            assert 0.5 < np.abs(clip).max() <= 1.0, (voice, word)  # peak-normalised, not silent
            # Trimmed: sound (above 1.5 % of the peak; the trim threshold is 2 % before mu-law) within the first and
            # the last 20 ms.
            edge = int(0.02 * bank.sample_rate)
            assert min(np.abs(clip[:edge]).max(), np.abs(clip[-edge:]).max()) > 0.015 * np.abs(clip).max()
    # Voices differ: the same word is not the same waveform twice.
    lengths = {len(bank.clip(voice, "triangle")) for voice in range(len(bank.voices))}
    assert len(lengths) >= len(bank.voices) // 2


def test_vocabulary_covers_every_generated_text():
    vocabulary = set(shapes.spoken_vocabulary())
    for task in ("vqa", "captions", "spoken_captions"):
        for index in range(300):
            text = shapes.generate_example(task, "train", index, image_size=32)["text"]
            assert set(_written_words(text)) <= vocabulary, text


def test_unknown_word_and_empty_text_are_errors():
    with pytest.raises(ValueError, match="'hexagon'"):
        speech.speak("is there a hexagon?", np.random.default_rng(0))
    with pytest.raises(ValueError, match="no word"):
        speech.speak("?", np.random.default_rng(0))


def test_mulaw_round_trip_is_within_quantisation():
    x = np.linspace(-1, 1, 2001, dtype=np.float32)
    y = clip_bank.mulaw_decode(clip_bank.mulaw_encode(x))
    assert np.all(np.abs(y - x) <= 0.025 * np.abs(x) + 3e-4)  # 8-bit mu-law: relative error, fine near zero
    assert clip_bank.mulaw_encode(x).dtype == np.uint8


# ---------------------------------------------------------------------------------------------- assembly


def test_assembly_is_deterministic_and_every_utterance_differs():
    a = shapes.generate_example("vqa_spoken", "train", 5)
    b = shapes.generate_example("vqa_spoken", "train", 5)
    np.testing.assert_array_equal(a["speech"], b["speech"])
    assert a["speech"].dtype == np.int16
    others = [shapes.generate_example("vqa_spoken", "train", 6)["speech"],
              shapes.generate_example("vqa_spoken", "test", 5)["speech"],
              shapes.generate_example("vqa_spoken", "train", 5, seed=1)["speech"]]
    for other in others:
        assert len(other) != len(a["speech"]) or not np.array_equal(other, a["speech"])
    # The same text, spoken 40 times: voices, lengths and levels all vary.
    utterances = [speech.speak("what color is the circle?", np.random.default_rng(i)) for i in range(40)]
    assert len({u.voice for u in utterances}) >= 8
    assert len({len(u.samples) for u in utterances}) >= 35
    peaks = [np.abs(u.samples).max() / 32768 for u in utterances]
    assert min(peaks) < 0.35 and max(peaks) > 0.6


def test_spoken_words_are_the_written_text_word_for_word():
    for task in SPOKEN:
        for split in ("train", "test"):
            for index in range(60):
                example = shapes.generate_example(task, split, index)
                assert list(example["speech_words"]) == _written_words(example["text"]), example["text"]
                assert list(example["speech_words"]) == speech.transcript(example["text"])


def test_utterances_fit_num_samples():
    for task in SPOKEN:
        limit = shapes.SPEECH_NUM_SAMPLES[task]
        lengths = [len(shapes.generate_example(task, "validation", i)["speech"]) for i in range(150)]
        assert max(lengths) <= limit
        assert np.mean(lengths) > 0.3 * limit  # the limit is not far from what the texts need
    # A text too long for the limit is spoken faster, whole: every word is still there.
    text = "is the red circle left of the blue square in the image? " * 3
    utterance = speech.speak(text, np.random.default_rng(0), max_samples=16_000)
    assert len(utterance.samples) <= 16_000 and len(utterance.words) == 3 * 12


def test_noise_follows_the_drawn_snr():
    """Between the words there is only noise: almost none at 100 dB SNR, about the speech level at 0 dB."""
    def gap_to_speech_power(snr):
        variation = speech.Variation(snr_db=(snr, snr), lead=(0.3, 0.3), tilt=(0.0, 0.0))
        x = speech.speak("red", np.random.default_rng(0), variation=variation).samples.astype(np.float64)
        lead = x[: int(0.28 * speech.SAMPLE_RATE)]
        word = x[int(0.3 * speech.SAMPLE_RATE):]
        return np.mean(lead**2) / np.mean(word**2)

    assert gap_to_speech_power(100.0) < 1e-6
    assert 0.3 < gap_to_speech_power(0.0) < 1.0


def test_vqa_spoken_examples_are_the_vqa_examples():
    for index in range(5):
        spoken = shapes.generate_example("vqa_spoken", "validation", index)
        written = shapes.generate_example("vqa", "validation", index)
        np.testing.assert_array_equal(spoken["image"], written["image"])
        for key in ("text", "label", "question_type", "objects"):
            assert spoken[key] == written[key], key


def test_released_vqa_and_captions_are_unchanged_by_1_2_0():
    """1.2.0 only added configs: its fingerprints of vqa and captions are 1.1.0's (tests/test_data_builder.py
    checks that generation still produces them)."""
    assert str(shapes.MmzooShapes.VERSION) == "1.2.0"
    old = json.loads((DUMMY_DATA / "golden_v1.1.0.json").read_text())
    assert json.loads((DUMMY_DATA / "golden_v1.2.0.json").read_text()) == old


def test_spoken_configs_and_bundled_constants_agree():
    assert shapes.shapes_config("vqa_spoken").num_examples == {"train": 6000, "validation": 1000, "test": 1000}
    assert shapes.shapes_config("vqa").num_examples == {"train": 10000, "validation": 1000, "test": 1000}
    with pytest.raises(ValueError, match="task"):
        shapes.shapes_config("spoken_vqa")
    names = {bundled.VQA_SPOKEN: bundled.VQA_SPOKEN_NUM_SAMPLES,
             bundled.SPOKEN_CAPTIONS: bundled.SPOKEN_CAPTIONS_NUM_SAMPLES}
    for name, num_samples in names.items():
        builder = tfds.builder(name, data_dir="/nonexistent-mmzoo-test-dir")
        feature = builder.info.features["speech"]
        assert isinstance(feature, tfds.features.Audio)
        assert feature.dtype == tf.int16 and feature.sample_rate == bundled.SPEECH_SAMPLE_RATE
        assert builder.info.metadata["speech_num_samples"] == num_samples
        assert builder.info.metadata["speech_sample_rate"] == bundled.SPEECH_SAMPLE_RATE
        assert {"image", "text", "label", "objects"} <= set(builder.info.features)
    captions = tfds.builder(bundled.SPOKEN_CAPTIONS, data_dir="/nonexistent-mmzoo-test-dir")
    assert captions.info.features["label"].num_classes == bundled.SPOKEN_CAPTIONS_NUM_CLASSES
    vqa = tfds.builder(bundled.VQA_SPOKEN, data_dir="/nonexistent-mmzoo-test-dir")
    assert vqa.info.features["label"].num_classes == bundled.VQA_NUM_CLASSES
    assert "question_type" in vqa.info.features


# ---------------------------------------------------------------------------------------------- TFDS


class MmzooShapesVqaSpokenTest(tfds.testing.DatasetBuilderTestCase):
    """The TFDS contract (build, splits, reload, specs) on tiny spoken configs."""

    DATASET_CLASS = shapes.MmzooShapes
    BUILDER_CONFIG_NAMES_TO_TEST = [
        shapes.shapes_config("vqa_spoken", image_size=32, num_train=4, num_validation=2, num_test=2)]
    SPLITS = {"train": 4, "validation": 2, "test": 2}
    SKIP_CHECKSUMS = True


class MmzooShapesSpokenCaptionsTest(MmzooShapesVqaSpokenTest):
    BUILDER_CONFIG_NAMES_TO_TEST = [
        shapes.shapes_config("spoken_captions", image_size=32, num_train=4, num_validation=2, num_test=2)]


def test_a_built_spoken_config_stores_the_generated_speech(tmp_path):
    config = shapes.shapes_config("spoken_captions", image_size=32, num_train=3, num_validation=1, num_test=1)
    builder = tfds.builder("mmzoo_shapes", config=config, data_dir=str(tmp_path))
    builder.download_and_prepare()
    examples = list(builder.as_dataset(split="train").as_numpy_iterator())
    stored = {example["text"].decode(): example["speech"] for example in examples}
    for index in range(3):
        generated = shapes.generate_example("spoken_captions", "train", index, image_size=32)
        np.testing.assert_array_equal(stored[generated["text"]], generated["speech"])
    # Stored compactly: zlib int16, not TFDS' default int64 per sample.
    record_bytes = sum(f.stat().st_size for f in pathlib.Path(builder.data_dir).glob("*train.tfrecord*"))
    assert record_bytes < 2.2 * sum(len(s) for s in stored.values())
    # What a loader does with it.
    ds = builder.as_dataset(split="train").map(
        lambda ex: speech.waveform_features(ex["speech"], bundled.SPOKEN_CAPTIONS_NUM_SAMPLES))
    for waveform, raw in zip(ds.as_numpy_iterator(), (ex["speech"] for ex in examples)):
        assert waveform.shape == (bundled.SPOKEN_CAPTIONS_NUM_SAMPLES,) and waveform.dtype == np.float32
        np.testing.assert_array_equal(waveform[:len(raw)], raw / 32768.0)
        assert not waveform[len(raw):].any()


# ---------------------------------------------------------------------------------------------- waveform


def test_waveform_features_scales_pads_and_crops():
    pcm = np.array([0, 16384, -32768, 32767], np.int16)
    out = speech.waveform_features(pcm, 6).numpy()
    np.testing.assert_array_equal(out, np.array([0, 0.5, -1.0, 32767 / 32768, 0, 0], np.float32))
    np.testing.assert_array_equal(speech.waveform_features(pcm, 2).numpy(), [0.0, 0.5])
    # int64 (as TFDS may decode int16 audio) reads the same; floats are kept, clipped to [-1, 1].
    np.testing.assert_array_equal(speech.waveform_features(pcm.astype(np.int64), 6).numpy(), out)
    np.testing.assert_allclose(speech.waveform_features(np.array([0.25, -2.0], np.float32), 3).numpy(),
                               [0.25, -1.0, 0.0])
    batch = speech.waveform_features(np.stack([pcm, pcm]), 5)
    assert batch.shape == (2, 5) and batch.dtype == tf.float32


def test_waveform_features_in_a_dataset_of_unknown_lengths():
    clips = tf.data.Dataset.from_generator(
        lambda: (np.full(n, 100, np.int16) for n in (3, 9)), output_signature=tf.TensorSpec([None], tf.int16))
    out = list(clips.map(lambda x: speech.waveform_features(x, 5)).as_numpy_iterator())
    assert [o.shape for o in out] == [(5,), (5,)]
    np.testing.assert_allclose(out[0], [100 / 32768] * 3 + [0, 0])
    np.testing.assert_allclose(out[1], [100 / 32768] * 5)


def test_waveform_features_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_samples"):
        speech.waveform_features(np.zeros(3, np.int16), 0)
    with pytest.raises(TypeError, match="audio.dtype=string"):
        speech.waveform_features(tf.constant(["a"]), 4)
    with pytest.raises(ValueError, match="shape"):
        speech.waveform_features(np.zeros((1, 2, 3), np.int16), 4)
