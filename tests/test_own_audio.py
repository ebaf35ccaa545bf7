"""A user's own audio: WAV files read (`mmzoo.data.wav`), audio columns of `from_csv`/`from_jsonl`, audio features
of TFDS data (`mmzoo.data.load`), and what `mmzoo.train` infers from them."""

import json
import os
import struct
import warnings
import wave

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

import mmzoo.data
from mmzoo.data import DataError, from_csv, from_jsonl
from mmzoo.data.wav import WavError, fit_length, load_clip, read_wav, resample, resampled_length, wav_info

RATE = 8000  # 0.25 s clips at 8 kHz keep every file tiny


def _tone(frequency, seconds=0.25, rate=RATE, amplitude=0.5, phase=0.0):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


def _write_wav16(path, samples, rate=RATE):
    """A 16-bit PCM WAV file written by TensorFlow; `samples` (frames,) or (frames, channels)."""
    samples = np.asarray(samples, np.float32)
    path.write_bytes(tf.audio.encode_wav(samples.reshape(len(samples), -1), rate).numpy())
    return path


def _decoded(path):
    """What tf.audio.decode_wav reads from a 16-bit file, (frames, channels)."""
    return tf.audio.decode_wav(tf.io.read_file(str(path))).audio.numpy()


def _write_wave(path, ints, *, width, rate=RATE, channels=1):
    """A PCM WAV file written by the standard library's `wave`: `ints` are the raw sample values, interleaved."""
    ints = np.asarray(ints).reshape(-1)
    if width == 1:
        data = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        data = b"".join(struct.pack("<i", int(v))[:3] for v in ints)
    else:
        data = ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return path


def _write_float_wav(path, samples, rate=RATE, tag=3, bits=32):
    """A WAV file of 32-bit float samples (format tag 3), or of another tag, written by hand."""
    data = np.asarray(samples, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * bits // 8, bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(row) for row in rows]) + "\n")
    return path


@pytest.fixture
def clips(tmp_path):
    """Three 16-bit mono clips of different lengths in tmp_path/wav, and what TensorFlow decodes of each."""
    (tmp_path / "wav").mkdir()
    lengths = (2000, 1200, 1600)
    paths = [_write_wav16(tmp_path / "wav" / f"{i}.wav", _tone(200 + 100 * i, n / RATE))
             for i, n in enumerate(lengths)]
    return tmp_path, [_decoded(path)[:, 0] for path in paths]


# --- WAV files -------------------------------------------------------------------------------------------------


def test_16_bit_wav_reads_as_tensorflow_decodes_it(tmp_path):
    samples = np.random.default_rng(0).uniform(-1, 1, (700, 2)).astype(np.float32)
    path = _write_wav16(tmp_path / "s.wav", samples)
    got, rate = read_wav(path)
    assert rate == RATE and got.shape == (700, 2) and got.dtype == np.float32
    np.testing.assert_array_equal(got, _decoded(path))
    info = wav_info(path)
    assert (info.channels, info.bits, info.encoding, info.frames) == (2, 16, "pcm", 700)


@pytest.mark.parametrize("width, scale", [(1, 128), (2, 32768), (3, 2**23), (4, 2**31)])
def test_pcm_of_every_width_round_trips(tmp_path, width, scale):
    rng = np.random.default_rng(width)
    ints = rng.integers(-scale, scale, size=(300, 2))
    ints[:2] = [[-scale, scale - 1], [0, 1]]  # the extremes and zero
    got, rate = read_wav(_write_wave(tmp_path / "p.wav", ints, width=width, channels=2))
    assert rate == RATE and got.shape == (300, 2)
    np.testing.assert_allclose(got, ints / scale, rtol=0, atol=1e-7)
    assert got.min() >= -1 and got.max() <= 1  # float32 rounds (2**31 - 1) / 2**31 to 1


def test_float_wav_and_unsupported_formats(tmp_path):
    samples = np.array([0.0, 0.25, -0.5, 1.5, np.nan], np.float32)
    got, _ = read_wav(_write_float_wav(tmp_path / "f.wav", samples))
    np.testing.assert_array_equal(got[:, 0], [0.0, 0.25, -0.5, 1.0, 0.0])  # clipped, NaN as silence
    with pytest.raises(WavError, match=r"m\.wav holds mu-law audio, not PCM or float samples; convert it to PCM") as e:
        wav_info(_write_float_wav(tmp_path / "m.wav", samples, tag=7, bits=8))
    assert e.value.problem == "unsupported"
    with pytest.raises(WavError, match=r"12-bit pcm samples; supported: PCM 8/16/24/32-bit"):
        wav_info(_write_float_wav(tmp_path / "b.wav", samples, tag=1, bits=12))


@pytest.mark.parametrize("data, message, problem", [
    (b"", r"is empty", "empty"),
    (b"not a wav file at all", r"is not a WAV file \(no RIFF/WAVE header\)", "format"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", r"has no data chunk", "format"),
])
def test_broken_wav_files_are_named(tmp_path, data, message, problem):
    path = tmp_path / "bad.wav"
    path.write_bytes(data)
    with pytest.raises(WavError, match=r"bad\.wav " + message) as e:
        wav_info(path)
    assert e.value.problem == problem


def test_truncated_wav_is_refused(tmp_path):
    path = _write_wav16(tmp_path / "t.wav", _tone(300))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WavError, match=r"t\.wav is truncated: its data chunk declares 4,000 bytes, the file holds "
                                       r"3,900"):
        wav_info(path)


def test_resampling_keeps_the_sound_and_removes_what_the_new_rate_cannot_hold():
    for source, target in [(16000, 8000), (8000, 16000), (8000, 11025), (44100, 8000)]:
        tone = _tone(440, 0.25, source)
        got = resample(tone, source, target)
        assert len(got) == resampled_length(len(tone), source, target) == int(np.ceil(0.25 * target))
        want = _tone(440, len(got) / target, target)
        inner = slice(target // 50, -target // 50)  # away from the clip's edges
        np.testing.assert_allclose(got[inner], want[inner], atol=1e-4)
    above_nyquist = resample(_tone(6000, 0.25, 16000), 16000, 8000)  # 6 kHz cannot exist at 8 kHz: filtered out
    assert np.abs(above_nyquist[40:-40]).max() < 1e-3
    assert np.array_equal(resample(tone, 8000, 8000), tone)


def test_both_resampling_paths_agree(monkeypatch):
    """Small rate ratios loop over the filter's phases; others (44101 -> 16000: 16000 phases) gather windows."""
    import mmzoo.audio_files as audio_files

    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 3000).astype(np.float32)
    looped = [resample(noise, 44100, 16000), resample(noise, 8000, 11025)]
    monkeypatch.setattr(audio_files, "_MAX_PHASE_LOOP", 0)
    np.testing.assert_allclose(resample(noise, 44100, 16000), looped[0], atol=1e-6)
    np.testing.assert_allclose(resample(noise, 8000, 11025), looped[1], atol=1e-6)
    tone = _tone(440, 0.25, 44101)
    got = resample(tone, 44101, 16000)
    np.testing.assert_allclose(got[300:-300], _tone(440, len(got) / 16000, 16000)[300:-300], atol=1e-4)


def test_load_clip_mixes_down_resamples_and_fits_length(tmp_path):
    left, right = _tone(300), _tone(500)
    path = _write_wav16(tmp_path / "st.wav", np.stack([left, right], axis=1))
    decoded = _decoded(path)
    clip = load_clip(path, sample_rate=RATE, num_samples=3000)
    np.testing.assert_allclose(clip[:2000], decoded.mean(axis=1), atol=1e-7)
    assert clip.shape == (3000,) and not clip[2000:].any()
    np.testing.assert_array_equal(load_clip(path, sample_rate=RATE, num_samples=500), clip[:500])
    np.testing.assert_allclose(load_clip(path, sample_rate=16000, num_samples=4000),
                               resample(decoded.mean(axis=1), RATE, 16000), atol=1e-6)
    with pytest.raises(WavError, match=r"st\.wav has a sample rate of 8000 Hz; expected 16000 Hz"):
        load_clip(path, sample_rate=16000, num_samples=4000, resample_rate=False)
    assert fit_length(np.ones(3, np.float32), 5).tolist() == [1, 1, 1, 0, 0]


# --- from_csv / from_jsonl -----------------------------------------------------------------------------------


def test_audio_and_label_csv_loads_with_the_defaults(clips):
    root, decoded = clips
    path = _write_csv(root / "a.csv", ("audio", "label"), [("wav/0.wav", "yes"), ("wav/1.wav", "no"),
                                                           ("wav/2.wav", "yes")])
    ds, info = from_csv(path, batch_size=3, with_info=True)
    assert ds.element_spec == ({"audio": tf.TensorSpec((None, 2000), tf.float32)}, tf.TensorSpec((None,), tf.int64))
    assert (info.sample_rate, info.num_samples, dict(info.input_kinds)) == (RATE, 2000, {"audio": "audio"})
    assert info.audio_options() == {"sample_rate": RATE, "num_samples": 2000} and info.image_size is None
    features, labels = next(iter(ds))
    for i, want in enumerate(decoded):  # the longest clip sets the length; the others end in exact zeros
        np.testing.assert_array_equal(features["audio"][i, :len(want)], want)
        assert not features["audio"][i, len(want):].numpy().any()
    assert labels.numpy().tolist() == [1, 0, 1]
    cropped = next(iter(from_csv(path, batch_size=3, num_samples=1000)))[0]["audio"]
    np.testing.assert_array_equal(cropped[0], decoded[0][:1000])


def test_image_audio_label_and_audio_text_label_csvs(clips):
    root, decoded = clips
    image = np.random.default_rng(0).integers(0, 256, (8, 10, 3), np.uint8)
    (root / "im.png").write_bytes(tf.io.encode_png(image).numpy())
    path = _write_csv(root / "ia.csv", ("image", "audio", "label"), [("im.png", "wav/0.wav", "a"),
                                                                     ("im.png", "wav/1.wav", "b")])
    ds, info = from_csv(path, batch_size=2, with_info=True)
    assert ds.element_spec[0] == {"image": tf.TensorSpec((None, 8, 10, 3), tf.uint8),
                                  "audio": tf.TensorSpec((None, 2000), tf.float32)}
    assert dict(info.input_kinds) == {"image": "image", "audio": "audio"} and info.image_size == (8, 10)
    path = _write_csv(root / "at.csv", ("audio", "text", "label"), [("wav/0.wav", "hello there", "a"),
                                                                    ("wav/2.wav", "hello", "b")])
    ds, info = from_csv(path, batch_size=2, with_info=True)
    assert ds.element_spec[0] == {"text": tf.TensorSpec((None,), tf.string),
                                  "audio": tf.TensorSpec((None, 2000), tf.float32)}
    assert set(info.vocabulary) == {"hello", "there"} and info.model_kwargs()["vocabulary"]


def test_without_audio_a_missing_default_column_is_still_an_error(clips):
    root, _ = clips
    path = _write_csv(root / "x.csv", ("text", "label"), [("hi", "a")])
    with pytest.raises(DataError, match=r"has no column 'image'.*image_column"):
        from_csv(path)


def test_audio_columns_found_by_suffix_and_named_as_lists(clips):
    root, decoded = clips
    path = _write_csv(root / "c.csv", ("clip", "text", "label"), [("wav/0.wav", "a b", "x"), ("wav/1.WAV", "b", "y")])
    os.rename(root / "wav" / "1.wav", root / "wav" / "1.WAV")
    ds, info = from_csv(path, batch_size=2, with_info=True)
    assert sorted(ds.element_spec[0]) == ["audio", "text"] and info.feature_keys["audio"] == "clip"
    path = _write_csv(root / "two.csv", ("near", "far", "label"), [("wav/0.wav", "wav/2.wav", "x")])
    ds, info = from_csv(path, batch_size=1, with_info=True)  # two audio columns: keyed by their names
    assert dict(info.input_kinds) == {"near": "audio", "far": "audio"}
    features = next(iter(ds))[0]
    np.testing.assert_array_equal(features["far"][0, :1600], decoded[2])
    ds = from_csv(path, batch_size=1, audio_column=["far"], image_column=None, text_column=None)
    assert list(ds.element_spec[0]) == ["far"]
    ds = from_csv(_write_csv(root / "n.csv", ("text", "audio", "label"), [("hi", "wav/0.wav", "x")]),
                  audio_column=None, image_column=None, batch_size=1)
    assert list(ds.element_spec[0]) == ["text"]


def test_relative_and_absolute_paths(clips, tmp_path):
    root, decoded = clips
    (root / "lists").mkdir()
    path = _write_csv(root / "lists" / "r.csv", ("audio", "label"),
                      [("../wav/0.wav", "a"), (str(root / "wav" / "2.wav"), "b")])
    features = next(iter(from_csv(path, batch_size=2)))[0]["audio"]
    np.testing.assert_array_equal(features[1, :1600], decoded[2])
    path = _write_csv(root / "lists" / "rooted.csv", ("audio", "label"), [("1.wav", "a")])
    features = next(iter(from_csv(path, batch_size=1, audio_root=root / "wav")))[0]["audio"]
    np.testing.assert_array_equal(features[0], decoded[1])
    with pytest.raises(DataError, match=r"audio file not found: .*lists/1\.wav \(column 'audio'\)"):
        from_csv(path)


def test_bad_audio_files_name_file_and_row_and_can_be_skipped(clips):
    root, _ = clips
    (root / "wav" / "empty.wav").write_bytes(b"")
    (root / "wav" / "junk.wav").write_bytes(b"\x89PNG\r\n\x1a\n not audio")
    _write_float_wav(root / "wav" / "alaw.wav", np.zeros(10), tag=6, bits=8)
    path = _write_csv(root / "b.csv", ("audio", "label"), [
        ("wav/0.wav", "a"), ("wav/missing.wav", "a"), ("wav/junk.wav", "b"), ("wav/empty.wav", "b"),
        ("wav/alaw.wav", "a"), ("wav/1.wav", "b")])
    with pytest.raises(DataError, match=r"b\.csv, row 2 \(line 3\): audio file not found: .*missing\.wav "
                                        r"\(column 'audio'\)\. Fix the row, or pass skip_bad_rows=True") as e:
        from_csv(path)
    assert (e.value.row, e.value.column, e.value.path) == (2, "audio", str(path))
    with pytest.warns(UserWarning, match=r"Skipped 4 of 6 rows of .*b\.csv: row 2: audio file not found") as caught:
        ds, info = from_csv(path, skip_bad_rows=True, batch_size=None, with_info=True)
    reasons = dict(info.skipped)
    assert info.num_skipped == 4 and info.num_examples == 2 and len(list(ds)) == 2
    assert "audio file is corrupt or not a WAV file: " in reasons[3] and "is not a WAV file" in reasons[3]
    assert reasons[4].startswith("audio file is empty: ") and "A-law audio" in reasons[5]
    assert len(caught) == 1


def test_sample_rates_resampled_or_refused(clips):
    root, decoded = clips
    fast = _write_wav16(root / "wav" / "fast.wav", _tone(300, 0.25, 16000), rate=16000)
    path = _write_csv(root / "r.csv", ("audio", "label"), [("wav/fast.wav", "a"), ("wav/0.wav", "b"),
                                                           ("wav/1.wav", "a")])
    ds, info = from_csv(path, batch_size=3, with_info=True)  # 8 kHz is the most common rate
    assert (info.sample_rate, info.num_samples) == (RATE, 2000)
    features = next(iter(ds))[0]["audio"].numpy()
    np.testing.assert_allclose(features[0], resample(_decoded(fast)[:, 0], 16000, RATE), atol=1e-6)
    ds, info = from_csv(path, batch_size=3, sample_rate=16000, with_info=True)
    assert (info.sample_rate, info.num_samples) == (16000, 4000)  # the 2000-sample 8 kHz clip, at 16 kHz
    np.testing.assert_array_equal(next(iter(ds))[0]["audio"][0], _decoded(fast)[:, 0])
    with pytest.raises(DataError, match=r"r\.csv, row 1 \(line 2\): audio file .*fast\.wav \(column 'audio'\) has a "
                                        r"sample rate of 16000 Hz; expected 8000 Hz \(the most common rate of its "
                                        r"files\): convert the file, or pass resample=True"):
        from_csv(path, resample=False)
    with pytest.warns(UserWarning, match="Skipped 2 of 3 rows"):
        ds, info = from_csv(path, resample=False, sample_rate=16000, skip_bad_rows=True, with_info=True)
    assert info.num_examples == 1 and info.num_samples == 4000


def test_a_longest_clip_far_over_the_median_is_warned_about(clips):
    root, _ = clips
    _write_wav16(root / "wav" / "long.wav", _tone(300, 2.5))  # 20 000 samples, 12.5x the median
    rows = [("wav/0.wav", "a"), ("wav/1.wav", "b"), ("wav/2.wav", "a"), ("wav/long.wav", "b")]
    path = _write_csv(root / "l.csv", ("audio", "label"), rows)
    with pytest.warns(UserWarning, match=r"l\.csv: every audio clip is padded to the longest, .*long\.wav \(2\.50 s\), "
                                         r"over 4x the median clip \(0\.23 s\): pass num_samples= to crop") as caught:
        info = from_csv(path, with_info=True)[1]
    assert info.num_samples == 20_000 and len(caught) == 1 and "\n" not in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_csv(path, num_samples=2000)  # chosen: nothing to warn about
        from_csv(_write_csv(root / "s.csv", ("audio", "label"), rows[:3]))  # 2000 / 1600 samples: fine


def test_a_wav_file_changed_after_loading_fails_naming_it(clips):
    root, _ = clips
    path = _write_csv(root / "c.csv", ("audio", "label"), [("wav/0.wav", "a"), ("wav/1.wav", "b")])
    ds = from_csv(path, batch_size=2, shuffle=False, cache=False)
    (root / "wav" / "1.wav").write_bytes(b"no longer a WAV file")
    with pytest.raises(tf.errors.OpError, match=r"audio file .*1\.wav changed after the data was loaded \(it was "
                                                r"checked then\): is not a WAV file .*Load the data again"):
        next(iter(ds))


def test_jsonl_audio(clips):
    root, decoded = clips
    path = root / "a.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [
        {"audio": "wav/2.wav", "text": "one", "label": "x"}, {"audio": "wav/nope.wav", "text": "two", "label": "y"},
        {"audio": "wav/0.wav", "text": "three", "label": "y"}]) + "\n")
    with pytest.raises(DataError, match=r"a\.jsonl, row 2 \(line 2\): audio file not found: .*nope\.wav"):
        from_jsonl(path)
    with pytest.warns(UserWarning, match="Skipped 1 of 3 rows"):
        ds, info = from_jsonl(path, batch_size=2, skip_bad_rows=True, with_info=True)
    features, labels = next(iter(ds))
    assert info.num_samples == 2000 and sorted(features) == ["audio", "text"]
    np.testing.assert_array_equal(features["audio"][0, :1600], decoded[2])


def test_audio_arguments_are_checked(clips):
    root, _ = clips
    path = _write_csv(root / "a.csv", ("audio", "label"), [("wav/0.wav", "yes")])
    for kwargs, message in [({"sample_rate": 0}, r"`sample_rate` must be a positive integer or None"),
                            ({"num_samples": 2.5}, r"`num_samples` must be a positive integer"),
                            ({"resample": "yes"}, r"`resample` must be True or False"),
                            ({"audio_column": "label"}, r"\['label'\] is named more than once"),
                            ({"audio_column": None, "image_column": None, "text_column": None},
                             r"Name at least one image or text column, or an audio column")]:
        with pytest.raises(ValueError, match=message):
            from_csv(path, **kwargs)
    with pytest.raises(DataError, match=r"has no column 'speech'.*audio_column=\.\.\."):
        from_csv(path, audio_column="speech")


def test_validation_split_shares_the_audio_format(clips):
    root, _ = clips
    rows = [(f"wav/{i % 3}.wav", "ab"[i % 2]) for i in range(6)]
    train, val, info = from_csv(_write_csv(root / "v.csv", ("audio", "label"), rows), validation_split=0.5,
                                subset="both", seed=0, with_info=True)
    assert train.element_spec[0] == val.element_spec[0] == {"audio": tf.TensorSpec((None, 2000), tf.float32)}


# --- TFDS audio ----------------------------------------------------------------------------------------------


class MmzooTestAudioDataset(tfds.core.GeneratorBasedBuilder):
    """A user's TFDS dataset with audio: stereo int16 clips of varying length under another name, no image."""

    VERSION = tfds.core.Version("0.1.0")
    pkg_dir_path = epath.Path(__file__).parent  # tests/ is not a package, where TFDS looks for metadata

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "recording": tfds.features.Audio(shape=(None, 2), dtype=np.int16, sample_rate=RATE),
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=["low", "high"]),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(4)}

    def _generate_examples(self, n):
        for i in range(n):
            yield i, {"recording": _stereo_clip(i), "text": f"clip {i}", "label": i % 2}


def _stereo_clip(i):
    return (np.arange(300 + 100 * i)[:, None] * [7, -5] % 20000 - 10000).astype(np.int16)


def test_tfds_audio_is_float_mono_padded_and_declared(tmp_path):
    ds, info = mmzoo.data.load("mmzoo_test_audio_dataset", "train", data_dir=str(tmp_path), batch_size=None,
                               shuffle=False, with_info=True)
    assert ds.element_spec[0] == {"text": tf.TensorSpec((), tf.string), "audio": tf.TensorSpec((600,), tf.float32)}
    assert (info.sample_rate, info.num_samples, info.image_size) == (RATE, 600, None)  # the longest clip
    assert dict(info.input_kinds) == {"text": "text", "audio": "audio"} and info.feature_keys["audio"] == "recording"
    by_text = {features["text"].decode(): features["audio"] for features, _ in ds.as_numpy_iterator()}
    for i in range(4):
        want = _stereo_clip(i).astype(np.float32).mean(axis=1) / 32768
        np.testing.assert_allclose(by_text[f"clip {i}"][:len(want)], want, atol=1e-7)
        assert not by_text[f"clip {i}"][len(want):].any()
    ds = mmzoo.data.load("mmzoo_test_audio_dataset", "train", data_dir=str(tmp_path), num_samples=350,
                         feature_keys={"text": None}, batch_size=2)
    assert ds.element_spec[0] == {"audio": tf.TensorSpec((None, 350), tf.float32)}
    with pytest.raises(ValueError, match=r"no feature 'image' for the image"):
        mmzoo.data.load("mmzoo_test_audio_dataset", "train", data_dir=str(tmp_path), feature_keys={"image": "image"})


def test_bundled_spoken_questions_load_with_their_declared_format(tmp_path):
    from mmzoo.data import shapes
    from mmzoo.data.speech import waveform_features

    config = shapes.shapes_config("vqa_spoken", num_train=4, num_validation=2, num_test=2)
    ds, info = mmzoo.data.load("mmzoo_shapes", "test", config=config, data_dir=str(tmp_path), batch_size=None,
                               with_info=True)
    length = shapes.SPEECH_NUM_SAMPLES["vqa_spoken"]
    assert ds.element_spec[0]["audio"] == tf.TensorSpec((length,), tf.float32)
    assert sorted(ds.element_spec[0]) == ["audio", "image", "text"]
    assert (info.sample_rate, info.num_samples) == (shapes.SPEECH_SAMPLE_RATE, length)
    by_text = {features["text"]: features["audio"] for features, _ in ds.as_numpy_iterator()}
    example = shapes.generate_example("vqa_spoken", "test", 0)
    np.testing.assert_array_equal(by_text[example["text"].encode()], waveform_features(example["speech"], length))


# --- mmzoo.train ---------------------------------------------------------------------------------------------


def _audio_csv(root, columns=("audio", "label"), rows=8, rate=RATE, seconds=0.25):
    """A CSV of `columns` (audio, and image or text, and label): high or low tones, the label says which."""
    (root / "wav").mkdir(exist_ok=True)
    (root / "im.png").write_bytes(tf.io.encode_png(np.zeros((16, 16, 3), np.uint8)).numpy())
    lines = []
    for i in range(rows):
        _write_wav16(root / "wav" / f"t{i}.wav", _tone(1500 if i % 2 else 300, seconds, rate, phase=i), rate)
        values = {"audio": f"wav/t{i}.wav", "label": "high" if i % 2 else "low", "image": "im.png",
                  "text": "a high tone" if i % 2 else "a low tone"}
        lines.append(tuple(values[column] for column in columns))
    return _write_csv(root / "data.csv", columns, lines)


@pytest.mark.parametrize("towers", [
    {"audio": "mel_cnn"},
    pytest.param({"text": "gru", "audio": "mel_crnn"}, marks=pytest.mark.slow),  # ~12 s each
    pytest.param({"image": "small_cnn", "audio": "mel_cnn"}, marks=pytest.mark.slow)])
def test_train_infers_the_audio_input_from_a_csv(tmp_path, capsys, towers):
    path = _audio_csv(tmp_path, (*towers, "label"))
    options = {"towers": towers, **({"fusion": "concat"} if len(towers) > 1 else {})}
    result = mmzoo.train("small_cnn_lstm_concat", path, model_options=options, epochs=1, batch_size=4,
                         output_dir=tmp_path / "run", verbose=0)
    modality = result.model.modalities["audio"]
    assert (modality.kind, modality.tower) == ("audio", towers["audio"])
    assert (modality.options["sample_rate"], modality.options["num_samples"]) == (RATE, 2000)
    out = capsys.readouterr().out
    assert "8000 Hz audio, 0.25 s clips, audio from column 'audio'" in out and ("words" in out) == ("text" in towers)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["loss"])


@pytest.mark.parametrize("columns, recipe", [
    (("audio", "label"), "mel_crnn_classifier"),
    pytest.param(("audio", "text", "label"), "mel_crnn_gru_coattention", marks=pytest.mark.slow),  # ~15 s each
    pytest.param(("image", "audio", "label"), "coord_cnn_mel_crnn_coattention", marks=pytest.mark.slow)])
def test_mmzoo_train_on_an_audio_csv_needs_only_the_recipe(tmp_path, capsys, columns, recipe):
    from mmzoo import cli

    path = _audio_csv(tmp_path, columns)
    assert cli.main(["train", "--dataset", str(path), "--recipe", recipe, "--epochs", "1", "--batch-size", "4",
                     "--no-export", "--output-dir", str(tmp_path / "run"), "--verbose", "0"]) == 0
    model = mmzoo.load_model(tmp_path / "run" / "model.keras")
    assert {key: m.kind for key, m in model.modalities.items()} == {c: c for c in columns if c != "label"}
    assert "Not read by" not in capsys.readouterr().out


def test_a_recipe_whose_inputs_the_csv_lacks_is_refused_naming_both(tmp_path):
    from mmzoo.training import OptionError

    path = _audio_csv(tmp_path, ("image", "audio", "label"))
    # Refused before building: without texts the text tower would have no vocabulary to adapt.
    with pytest.raises(OptionError, match=r"recipe coord_cnn_mel_crnn_gru_coattention takes image \(image\), audio "
                                          r"\(audio\), text \(text\); the data has image \(image\), audio \(audio\)"):
        mmzoo.train("coord_cnn_mel_crnn_gru_coattention", path, epochs=1, output_dir=tmp_path / "run", verbose=0)
    assert not (tmp_path / "run" / "model.keras").exists()


def test_a_csv_column_the_recipe_does_not_read_is_named(tmp_path, capsys):
    path = _audio_csv(tmp_path, ("audio", "text", "label"))
    result = mmzoo.train("mel_crnn_classifier", path, epochs=1, batch_size=4, output_dir=tmp_path / "run", verbose=0)
    assert list(result.model.modalities) == ["audio"]
    assert "Not read by mel_crnn_classifier: the data's text (text); to use them" in capsys.readouterr().out


def test_audio_column_none_is_accepted_with_any_data():
    from mmzoo.training import OptionError
    from mmzoo.training.options import check_columns

    options = {"image_column": "image", "text_column": "text"}
    check_columns({**options, "data": "mmzoo_shapes/vqa", "audio_column": None})  # TFDS: nothing to read
    with pytest.raises(OptionError, match="audio_column.*goes with .csv/.jsonl data"):
        check_columns({**options, "data": "mmzoo_shapes/vqa", "audio_column": "speech"})


def test_a_built_models_audio_format_is_applied_or_refused(tmp_path):
    from mmzoo.training import OptionError

    path = _audio_csv(tmp_path, ("image", "audio", "label"))  # 8 kHz files
    model = mmzoo.build_classifier(towers={"image": "small_cnn", "audio": "mel_cnn"}, fusion="concat",
                                   num_classes=2, class_names=["high", "low"], image_size=16, sample_rate=16000,
                                   num_samples=3000)
    data = mmzoo.training.load_data(path, sample_rate=16000, num_samples=3000, batch_size=4)
    assert data.train.element_spec[0]["audio"] == tf.TensorSpec((None, 3000), tf.float32)
    assert data.info.sample_rate == 16000  # resampled to the model's rate
    clips = tf.data.Dataset.from_tensor_slices(({"image": np.zeros((2, 16, 16, 3), np.uint8),
                                                 "audio": np.zeros((2, 2000), np.float32)}, [0, 1])).batch(2)
    with pytest.raises(OptionError, match=r"model=.*declares num_samples=3000 for its audio; the data's audio has "
                                          r"2000 samples \(pad or crop the dataset's clips\): build the model with "
                                          r"num_samples=2000"):
        mmzoo.train(model, clips, epochs=1, output_dir=tmp_path / "x", verbose=0, quiet=True)
    with pytest.raises(OptionError, match=r"model_options=.*declare sample_rate=16000 for its audio; the data's audio "
                                          r"has 8000 Hz \(TFDS audio cannot be resampled\): leave out, or set, "
                                          r"sample_rate=8000"):
        mmzoo.train("small_cnn_lstm_concat", "mmzoo_test_audio_dataset", data_dir=str(tmp_path / "tfds"),
                    validation_split=None, test_split=None,
                    model_options={"towers": {"text": "gru", "audio": "mel_cnn"}, "sample_rate": 16000},
                    epochs=1, output_dir=tmp_path / "y", verbose=0, quiet=True)


def test_the_default_audio_column_yields_to_a_column_named_otherwise(clips):
    root, _ = clips
    path = _write_csv(root / "y.csv", ("audio", "label"), [("a spoken word", "x")])
    ds, info = from_csv(path, image_column=None, text_column="audio", batch_size=1, with_info=True)
    assert dict(info.input_kinds) == {"text": "text"} and info.sample_rate is None
