"""Audio input kind and towers: the log-mel front end (frame count, masks, per-example normalisation, float32),
SpecAugment, mel_cnn / mel_crnn shapes and masks, batch independence, config round trips, and classifiers with an
audio input beside image and text inputs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.classifier import build_classifier, load_model
from mmzoo.towers import (AudioInput, LogMelSpectrogram, SpecAugment, WaveformMask, build_audio_tower,
                          get_input_kind, list_towers, output_length, time_downsampling)
from helpers import VOCABULARY

RATE, SAMPLES, STRIDE = 8000, 4000, 80  # 10 ms frames at 8 kHz: 80 samples
AUDIO = dict(sample_rate=RATE, num_samples=SAMPLES, mel_bins=16, audio_units=12)
TOWER = dict(sample_rate=RATE, num_samples=SAMPLES, mel_bins=16, units=12, widths=(8, 16))
SMALL = {"audio_widths": (8, 16)}


def clips(lengths, seed=0, amplitude=0.5, samples=SAMPLES):
    """float32 [len(lengths), samples]: noise of `amplitude` for each clip's first `length` samples, then zeros."""
    rng = np.random.default_rng(seed)
    waves = np.zeros((len(lengths), samples), np.float32)
    for row, length in enumerate(lengths):
        waves[row, :length] = rng.uniform(-amplitude, amplitude, length)
        if length:
            waves[row, length - 1] = amplitude  # the clip ends exactly there
    return waves


# === Front end ===


@pytest.mark.parametrize("samples", [4000, 4079, 4080])
def test_frame_count_is_the_stfts_also_where_melspectrogram_says_one_more(samples):
    layer = LogMelSpectrogram(sample_rate=RATE, mel_bins=16)
    symbolic = layer(keras.Input((samples,)))
    computed = layer(clips([samples // 2], samples=samples))
    assert layer.stride == STRIDE and symbolic.shape[1] == computed.shape[1] == 1 + samples // STRIDE
    keras_says = keras.layers.MelSpectrogram(fft_length=256, sequence_stride=STRIDE).compute_output_shape(
        (None, samples))[-1]
    # 4079 % 80 == 79: Keras' compute_output_shape is one frame off there (the case this layer corrects).
    assert keras_says == computed.shape[1] + (1 if samples % STRIDE == STRIDE - 1 else 0)


def test_frame_and_token_masks_follow_the_last_non_zero_sample():
    lengths = [SAMPLES, 1000, 81, 1, 0]
    waves = clips(lengths)
    frames = WaveformMask(STRIDE)(waves).numpy()
    tokens = WaveformMask(STRIDE, downsampling=4)(waves).numpy()
    assert frames.shape == (5, 51) and tokens.shape == (5, 13)
    np.testing.assert_array_equal(frames.sum(1), [51, 13, 2, 1, 1])  # an all-zero clip keeps one frame
    np.testing.assert_array_equal(tokens.sum(1), [output_length(n, sample_rate=RATE) if n else 1 for n in lengths])
    assert all(row[:n].all() and not row[n:].any() for row, n in zip(tokens, tokens.sum(1)))  # a prefix
    assert output_length(1000, sample_rate=RATE) == 4 and time_downsampling(3) == 8


def test_normalisation_is_per_example_over_valid_frames_and_ignores_padding():
    layer = LogMelSpectrogram(sample_rate=RATE, mel_bins=16)
    short = clips([1000], seed=1)
    features = layer(short).numpy()[0]
    valid = 1000 // STRIDE + 1
    assert np.abs(features[valid:]).max() == 0.0  # padding frames are 0
    assert abs(features[:valid].mean()) < 1e-4 and abs(features[:valid].std() - 1.0) < 1e-3
    # The same clip in a longer zero-padded input: the same valid frames, whatever padding follows.
    longer = np.concatenate([short, np.zeros((1, 2000), np.float32)], axis=1)
    np.testing.assert_allclose(layer(longer).numpy()[0, :valid], features[:valid], atol=1e-5)


def test_padding_changes_nothing_once_half_an_fft_of_zeros_follows_the_clip():
    layer = LogMelSpectrogram(sample_rate=RATE, mel_bins=16)
    assert layer.fft_length // 2 == 128
    filling = clips([SAMPLES], seed=5)  # no padding: the STFT mirrors the clip's own end past the input's
    half_fft, longer = (np.pad(filling, [(0, 0), (0, extra)]) for extra in (128, 2000))
    frames = 1 + SAMPLES // STRIDE
    full, padded, more = (layer(x).numpy()[0, :frames] for x in (filling, half_fft, longer))
    np.testing.assert_allclose(padded, more, atol=1e-5)
    assert np.abs(full[-1] - padded[-1]).max() > 0.5  # docs/audio.md: ~1.6 in the last frame
    assert np.abs(full[:-1] - padded[:-1]).max() < 0.1  # the others move through the normalisation only


def test_a_change_of_gain_leaves_the_features_nearly_unchanged():
    layer = LogMelSpectrogram(sample_rate=RATE, mel_bins=16)
    loud = clips([3000], seed=4)
    np.testing.assert_allclose(layer(loud * 0.25).numpy(), layer(loud).numpy(), atol=1e-3)


def test_a_clips_features_do_not_depend_on_its_batch():
    quiet = clips([1500], seed=2, amplitude=0.01)
    batch = np.concatenate([clips([SAMPLES], seed=3, amplitude=1.0), quiet, np.zeros((1, SAMPLES), np.float32)])
    front = LogMelSpectrogram(sample_rate=RATE, mel_bins=16)
    np.testing.assert_allclose(front(quiet).numpy()[0], front(batch).numpy()[1], atol=1e-5)
    keras.utils.set_random_seed(0)
    tower = build_audio_tower("mel_crnn", output="tokens", **TOWER)
    alone, in_batch = tower(quiet), tower(batch)
    np.testing.assert_allclose(alone[0].numpy()[0], in_batch[0].numpy()[1], atol=1e-5)
    np.testing.assert_array_equal(alone[1].numpy()[0], in_batch[1].numpy()[1])


def test_front_end_is_float32_under_mixed_float16():
    quiet_tail = clips([1000, 10])
    quiet_tail[0, 1000:2000] = 1e-8  # 0 in float16: the clip ends at 2000 only if the masks compute in float32
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        front = LogMelSpectrogram(sample_rate=RATE, mel_bins=16)
        frame_mask = WaveformMask(STRIDE)
        tower = build_audio_tower("mel_cnn", output="tokens", **TOWER)
        tokens, _ = tower(clips([2000, 10], amplitude=1e-3))
        _, token_mask = tower(quiet_tail)
        frames = frame_mask(quiet_tail)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert front.compute_dtype == "float32" and tower.get_layer("log_mel").compute_dtype == "float32"
    assert frame_mask.compute_dtype == tower.get_layer("token_mask").compute_dtype == "float32"
    assert tower.get_layer("stage0_conv").compute_dtype == "float16"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(tokens)))
    np.testing.assert_array_equal(np.sum(frames, axis=1), [2000 // STRIDE + 1, 1])  # what the front end normalises
    np.testing.assert_array_equal(np.sum(token_mask, axis=1), [output_length(2000, sample_rate=RATE), 1])


# === SpecAugment ===


def _augment(seed, features, mask):
    layer = SpecAugment(time_masks=2, time_mask_frames=4, freq_masks=1, freq_mask_bins=3, seed=seed)
    return layer, layer(features, frame_mask=mask, training=True).numpy()


def test_spec_augment_is_seeded_training_only_and_masks_valid_frames():
    features = np.ones((4, 30, 16), np.float32)
    mask = np.arange(30)[None] < np.array([[30], [10], [5], [30]])
    layer, first = _augment(7, features, mask)
    _, again = _augment(7, features, mask)
    _, other = _augment(8, features, mask)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and (first == 0).any()
    np.testing.assert_array_equal(layer(features, frame_mask=mask, training=False), features)
    np.testing.assert_array_equal(layer(features, frame_mask=mask), features)
    time_only = SpecAugment(time_masks=3, time_mask_frames=4, freq_masks=0, seed=1)(
        features, frame_mask=mask, training=True).numpy()
    dropped_frames = (time_only == 0).all(axis=2)
    for row, valid in enumerate([30, 10, 5, 30]):
        assert not dropped_frames[row, valid:].any()  # bands lie within the clip's valid frames
        assert dropped_frames[row].sum() <= 3 * 4


def test_spec_augment_in_a_tower_changes_training_outputs_only():
    keras.utils.set_random_seed(0)
    tower = build_audio_tower("mel_cnn", **dict(TOWER, spec_augment={"time_masks": 2, "seed": 3}))
    waves = clips([SAMPLES, 2000])
    np.testing.assert_allclose(tower(waves), tower(waves), atol=0)
    front = keras.Model(tower.input, tower.get_layer("spec_augment").output)
    assert not np.allclose(front(waves, training=True), front(waves, training=False))


# === Layer configs ===


@pytest.mark.parametrize("layer", [
    LogMelSpectrogram(sample_rate=RATE, mel_bins=20, frame_length_ms=32.0, frame_step_ms=16.0, max_freq=3000.0),
    SpecAugment(time_masks=1, time_mask_frames=5, freq_masks=3, freq_mask_bins=2, seed=4),
    WaveformMask(STRIDE, downsampling=4),
], ids=lambda layer: type(layer).__name__)
def test_layer_configs_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
    if isinstance(layer, LogMelSpectrogram):
        waves = clips([3000])
        np.testing.assert_allclose(clone(waves), layer(waves), atol=0)


# === Towers ===


@pytest.mark.parametrize("tower, options, width", [
    ("mel_cnn", {}, 12), ("mel_crnn", {}, 12), ("mel_crnn", {"recurrent": "bilstm"}, 24),
    ("mel_crnn", {"recurrent": "lstm", "pooling": "last"}, 12),
])
def test_tower_shapes_and_token_masks(tower, options, width):
    assert list_towers("audio") == ["mel_cnn", "mel_crnn"]
    waves = clips([SAMPLES, 1000, 0])
    pooled = build_audio_tower(tower, **TOWER, **options)(waves)
    tokens, mask = build_audio_tower(tower, output="tokens", **TOWER, **options)(waves)
    assert pooled.shape == (3, width) and tokens.shape == (3, 13, width) and mask.shape == (3, 13)
    np.testing.assert_array_equal(np.sum(mask, axis=1), [13, 4, 1])
    assert np.all(np.isfinite(pooled)) and np.all(np.isfinite(tokens))


def test_time_pools_set_the_downsampling():
    tokens, mask = build_audio_tower("mel_cnn", output="tokens", **dict(TOWER, widths=(4, 4, 4), time_pools=1))(
        clips([1000]))
    assert tokens.shape[1] == 26 and int(np.sum(mask)) == output_length(1000, sample_rate=RATE, time_pools=1) == 7


def test_audio_kind_options_and_errors():
    kind = get_input_kind("audio")
    modality = kind.modality("speech", "mel_crnn", {"sample_rate": RATE, "num_samples": SAMPLES,
                                                    "audio_widths": [8, 16]})
    assert isinstance(kind, AudioInput) and modality.shape == (SAMPLES,) and modality.dtype == "float32"
    assert modality.options["audio_widths"] == (8, 16) and kind.time_downsampling(modality) == 4
    assert kind.num_tokens(modality) == 13
    np.testing.assert_array_equal(kind.placeholder(modality, 2), np.zeros((2, SAMPLES), np.float32))
    padded = kind.prepare(modality, tf.ones((2, 100)))
    cropped = kind.prepare(modality, tf.ones((5000,)))
    assert padded.shape == (2, SAMPLES) and float(tf.reduce_sum(padded)) == 200 and cropped.shape == (SAMPLES,)
    bad = [({"num_samples": 100}, r"Audio input 'speech': `num_samples` must be an integer >= 257"),
           ({"audio_time_pools": 3, "audio_widths": (8, 16)}, "at most the number of CNN stages"),
           ({"audio_recurrent": "rnn"}, "`audio_recurrent` must be one of gru, lstm, bigru, bilstm"),
           ({"spec_augment": {"masks": 2}}, "`spec_augment` must be None, False, True or a dict"),
           ({"sample_rate": 8000.5}, "`sample_rate` must be an integer"),
           ({"hop": 3}, r"Unknown option\(s\) \['hop'\] for the audio input 'speech'")]
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            kind.modality("speech", "mel_cnn", options)


# === Classifiers ===


def _classifier(towers, fusion, **extra):
    keras.utils.set_random_seed(0)
    return build_classifier(towers=towers, fusion=fusion, num_classes=3, vocabulary=VOCABULARY, image_size=32,
                            sequence_length=6, embedding_dim=8, text_units=8, fusion_units=8, **AUDIO, **extra)


def _inputs(model, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    values = {"image": lambda: rng.integers(0, 256, (batch, 32, 32, 3)).astype(np.float32),
              "audio": lambda: clips(rng.integers(0, SAMPLES, batch), seed=seed),
              "text": lambda: np.array(["what color is the circle", "how many", "", "left of"] * batch)[:batch]}
    return {key: tf.constant(values[m.kind]()) for key, m in model.modalities.items()}


CASES = {
    "image+speech gated": ({"image": "small_cnn", "speech": {"tower": "mel_cnn", **SMALL}}, "gated"),
    "speech+text attention": ({"speech": {"tower": "mel_crnn", **SMALL}, "text": "gru"}, "attention"),
    "speech+text concat": ({"speech": {"tower": "mel_crnn", **SMALL}, "text": "gru"}, "concat"),
    "image+speech+text coattention": ({"image": "small_cnn", "speech": {"tower": "mel_cnn", **SMALL},
                                       "text": "lstm"}, "coattention"),
}


@pytest.mark.parametrize("case", CASES)
def test_classifier_with_audio_saves_loads_and_predicts_the_same(case, tmp_path):
    model = _classifier(*CASES[case])
    inputs = _inputs(model)
    assert model.modalities["speech"].kind == "audio" and list(model.audio_towers) == ["speech"]
    assert model.get_config()["sample_rate"] == RATE and model.get_config()["num_samples"] == SAMPLES
    logits = model(inputs).numpy()
    model.save(tmp_path / "m.keras")
    restored = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(restored(inputs).numpy(), logits, atol=1e-6)
    assert restored.get_config() == json.loads(json.dumps(model.get_config()))  # tuples come back as lists


def test_audio_tokens_reach_a_token_fusion_with_their_mask():
    model = _classifier(*CASES["speech+text attention"])
    speech = model.fusion_features[list(model.modalities).index("speech")]
    assert speech.shape[1:] == (13, 12) and getattr(speech, "_keras_mask", None) is not None
    waves = clips([SAMPLES, 1000, 81])
    _, mask = model.audio_towers["speech"](waves)
    np.testing.assert_array_equal(np.sum(mask, axis=1), [13, 4, 1])


@pytest.mark.parametrize("case", ["speech+text attention", "image+speech+text coattention"])
def test_a_token_fusion_ignores_what_lies_under_the_audio_token_mask(case):
    model = _classifier(*CASES[case])
    inputs = dict(_inputs(model, batch=3), speech=tf.constant(clips([SAMPLES, 1000, 81])))
    features = keras.Model(model.backbone.inputs, list(model.fusion_features))(model.preprocess_inputs(inputs))
    masks = [getattr(feature, "_keras_mask", None) for feature in features]
    speech = list(model.modalities).index("speech")
    tokens, valid = features[speech].numpy(), masks[speech].numpy()[..., None]
    assert valid.sum(axis=(1, 2)).tolist() == [13, 4, 1]
    noise = np.random.default_rng(0).normal(0.0, 10.0, tokens.shape).astype(np.float32)

    def fused(speech_tokens):
        values = [tf.constant(speech_tokens) if i == speech else f for i, f in enumerate(features)]
        return model.fusion(values, mask=masks).numpy()

    np.testing.assert_allclose(fused(np.where(valid, tokens, noise)), fused(tokens), atol=1e-5)
    assert not np.allclose(fused(np.where(valid, noise, tokens)), fused(tokens), atol=1e-3)  # valid ones count


def test_a_users_audio_tower_taking_kwargs_gets_the_audio_options(monkeypatch):
    from mmzoo.towers import audio, registry

    monkeypatch.setattr(registry, "_TOWERS", dict(registry._TOWERS))
    received = {}

    @registry.register_tower("my_audio", kind="audio")
    def my_audio(output="pooled", dropout=0.0, name="my_audio", **options):
        received.update(options)
        options.pop("recurrent"), options.pop("pooling")
        return audio.mel_cnn(output=output, dropout=dropout, name=name, **options)

    model = _classifier({"speech": {"tower": "my_audio", **SMALL}, "text": "gru"}, "concat")
    assert received == {"sample_rate": RATE, "num_samples": SAMPLES, "mel_bins": 16, "frame_length_ms": 25.0,
                        "frame_step_ms": 10.0, "widths": (8, 16), "time_pools": 2, "units": 12,
                        "recurrent": "gru", "pooling": "mean", "spec_augment": None}
    assert model.audio_towers["speech"].output.shape == (None, 12)


def test_audio_options_per_input_and_shared():
    model = _classifier({"near": {"tower": "mel_cnn", **SMALL}, "far": {"tower": "mel_crnn", "num_samples": 3000,
                                                                         "sample_rate": 16000, **SMALL}}, "sum",
                        spec_augment=True)
    near, far = model.modalities["near"], model.modalities["far"]
    assert (near.options["sample_rate"], near.shape) == (RATE, (SAMPLES,))
    assert (far.options["sample_rate"], far.shape) == (16000, (3000,))
    assert near.options["spec_augment"] is True and model.get_config()["spec_augment"] is True
    image_text = build_classifier(image_tower="small_cnn", text_tower="gru", fusion="concat", num_classes=3,
                                  vocabulary=VOCABULARY, image_size=32, sample_rate=RATE)
    assert "sample_rate" not in image_text.get_config()  # configs without audio stay as they were


def test_classifier_with_audio_trains_a_step_and_preprocesses_waveforms():
    model = _classifier(*CASES["speech+text concat"], spec_augment={"seed": 1})
    inputs = _inputs(model, batch=8)
    numeric = model.preprocess_inputs(inputs)
    np.testing.assert_array_equal(numeric["speech"], inputs["speech"])  # no pipeline step for audio
    backbone = model.backbone
    backbone.compile(optimizer=keras.optimizers.SGD(0.1),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tower = model.audio_towers["speech"]
    before = [w.numpy() for w in tower.trainable_weights]
    history = backbone.fit(numeric, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.allclose(a, w.numpy()) for a, w in zip(before, tower.trainable_weights))


def test_an_absent_audio_input_is_silence_the_fusion_leaves_out():
    model = _classifier(*CASES["image+speech gated"], modality_dropout=0.0)
    inputs = _inputs(model, batch=2)
    without = model({"image": inputs["image"]}).numpy()
    flagged = model({**inputs, "speech_present": tf.zeros([2], tf.bool)}).numpy()
    np.testing.assert_allclose(without, flagged, atol=1e-6)
    assert not np.allclose(without, model(inputs).numpy())


def test_recipes_can_name_audio_towers():
    model = mmzoo.build_classifier(towers={"speech": {"tower": "mel_cnn", **SMALL}}, num_classes=2, **AUDIO)
    assert model(_inputs(model, batch=2)).shape == (2, 2)
