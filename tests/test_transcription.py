"""Speech transcription (mmzoo.transcription): transcript normalisation and character ids, WER/CER against
hand-worked values, the transcriber's shapes, lengths, config and .keras round trip, the CTC loss against
hand-computed probabilities and keras.ops.ctc_loss, its replica-safe reduction, greedy and beam decoding, a
training step, mixed precision. Export: tests/test_transcription_export.py; training and the command line:
tests/test_transcription_training.py."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.transcription import characters, metrics
from mmzoo.transcription.data import pack_dataset, valid_tokens
from mmzoo.transcription.decoding import decode_logits
from mmzoo.transcription.loss import CTCLoss, ctc_per_example
from mmzoo.transcription.model import PADDING_LOGIT, SpeechTranscriber, build_transcriber

pytestmark = pytest.mark.xdist_group("transcription")

RATE, SAMPLES = 8000, 4000
TEXTS = ["a red circle", "the small square", "green", "a blue triangle"]
TINY = dict(sample_rate=RATE, num_samples=SAMPLES, mel_bins=16, audio_widths=(8, 16), audio_units=16)


def tiny_transcriber(**overrides):
    keras.utils.set_random_seed(0)
    return build_transcriber(texts=TEXTS, **{**TINY, **overrides})


def clips(lengths, seed=0):
    """float32 [len(lengths), SAMPLES]: noise of each length, then exact zeros."""
    rng = np.random.default_rng(seed)
    waves = np.zeros((len(lengths), SAMPLES), np.float32)
    for row, length in enumerate(lengths):
        waves[row, :length] = rng.uniform(-0.5, 0.5, length)
        waves[row, length - 1] = 0.5
    return waves


@pytest.fixture(scope="module")
def transcriber():
    return tiny_transcriber()


# === Characters ===


def test_normalisation_lowercases_and_drops_what_is_not_spoken():
    assert characters.normalize_transcript("There's a RED-circle, at the left.") == "there's a red circle at the left"
    assert characters.normalize_transcript(b"  \xc3\x89t\xc3\xa9  3 l\xe2\x80\x99eau ") == "été 3 l'eau"
    assert characters.normalize_transcript("...") == ""
    assert characters.normalize_transcripts(["A b", "C!"]) == ["a b", "c"]


def test_vocabulary_is_the_sorted_characters_of_the_transcripts():
    assert characters.character_vocabulary(["Bad cab.", "a'b"]) == [" ", "'", "a", "b", "c", "d"]
    with pytest.raises(ValueError, match="no characters"):
        characters.character_vocabulary(["...", ""])
    with pytest.raises(ValueError, match="single characters"):
        characters.check_vocabulary(["ab", "c"])
    with pytest.raises(ValueError, match="more than once"):
        characters.check_vocabulary(["a", "a"])


def test_labels_are_ids_after_the_blank_and_unknown_characters_are_dropped():
    encoder = characters.LabelEncoder(["a", "b", "l", " "][::-1])  # ids: " "=1, l=2, b=3, a=4
    labels = encoder.dense(tf.constant(["Ball!", "a z b"])).numpy()
    np.testing.assert_array_equal(labels, [[3, 4, 2, 2], [4, 1, 1, 3]])  # "a z b": the z dropped
    # One step per label plus one blank between equal neighbours: "ball" 4 + 1, "a  b" 4 + 1 (the two spaces).
    np.testing.assert_array_equal(characters.required_steps(labels).numpy(), [5, 5])


# === Metrics (hand-worked) ===


def test_edit_distance_hand_worked():
    assert metrics.edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert metrics.edit_distance("", "abc") == 3 and metrics.edit_distance("abc", "") == 3
    assert metrics.edit_distance("flaw", "lawn") == 2  # -f, +n
    assert metrics.edit_distance("abc", "abc") == 0
    assert metrics.edit_distance("the cat sat".split(), "cat sat down".split()) == 2  # -the, +down


def test_word_and_character_error_rates_hand_worked():
    # the cat sat on the mat -> the cat sit on mat: 1 substitution (sat/sit) + 1 deletion (the) over 6 words.
    assert metrics.word_error_rate(["the cat sat on the mat"], ["the cat sit on mat"]) == pytest.approx(2 / 6)
    # Corpus rate: (2 + 1) edits over (6 + 2) words, not the mean of 2/6 and 1/2.
    assert metrics.word_error_rate(["the cat sat on the mat", "a dog"], ["the cat sit on mat", "a fog"]) == \
        pytest.approx(3 / 8)
    # "red circle" (10 characters, the space included) -> "rad circles": a->e substitution, +s.
    assert metrics.character_error_rate(["red circle"], ["rad circles"]) == pytest.approx(2 / 10)
    # Normalised first: case and punctuation are no errors; insertions can push the rate past 1.
    assert metrics.word_error_rate(["The cat."], ["the cat"]) == 0.0
    assert metrics.word_error_rate(["a"], ["b c d"]) == pytest.approx(3.0)
    result = metrics.evaluate_transcripts(["a red circle", "green"], ["a red circle", "grey"])
    assert result == {"wer": pytest.approx(1 / 4), "cer": pytest.approx(2 / 17), "exact_match": 0.5, "examples": 2}
    with pytest.raises(ValueError, match="same length"):
        metrics.word_error_rate(["a"], [])
    with pytest.raises(ValueError, match="empty"):
        metrics.character_error_rate(["..."], ["a"])


# === The model ===


def test_shapes_lengths_and_what_the_model_is(transcriber):
    assert transcriber.vocabulary == characters.character_vocabulary(TEXTS)
    assert transcriber.id_to_token[0] == "" and len(transcriber.id_to_token) == len(transcriber.vocabulary) + 1
    # 10 ms frames, one time pool: 2 frames a token; 4000 samples -> 51 frames -> 26 steps.
    assert transcriber.num_steps == mmzoo.towers.output_length(SAMPLES, sample_rate=RATE, time_pools=1) == 26
    lengths = [4000, 1000, 81, 1]
    outputs = transcriber.logits_model({"audio": clips(lengths)})
    expected = [mmzoo.towers.output_length(n, sample_rate=RATE, time_pools=1) for n in lengths]
    np.testing.assert_array_equal(outputs["lengths"].numpy(), expected)
    np.testing.assert_array_equal(valid_tokens(transcriber, clips(lengths)).numpy(), expected)
    logits = outputs["logits"].numpy()
    assert logits.dtype == np.float32 and logits.shape == (4, 26, len(transcriber.id_to_token))
    # Every step after a clip's end is a certain blank.
    for row, valid in enumerate(expected):
        np.testing.assert_array_equal(logits[row, valid:, 0], 0.0)
        np.testing.assert_array_equal(logits[row, valid:, 1:], PADDING_LOGIT)
        assert np.all(logits[row, :valid, 1:] > PADDING_LOGIT / 2)


def test_config_round_trip_and_keras_file(transcriber, tmp_path):
    config = transcriber.get_config()
    assert config["audio_time_pools"] == 1 and config["audio_recurrent"] == "bigru" and config["sample_rate"] == RATE
    rebuilt = SpeechTranscriber.from_config(config)
    assert rebuilt.get_config() == config
    path = tmp_path / "t.keras"
    transcriber.compile()
    transcriber.save(path)
    loaded = mmzoo.transcription.load_transcriber(path)
    waves = clips([4000, 2500])
    np.testing.assert_allclose(loaded({"audio": waves}), transcriber({"audio": waves}), atol=1e-6)
    assert list(loaded.transcribe(waves)["transcript"]) == list(transcriber.transcribe(waves)["transcript"])
    assert isinstance(loaded.loss, CTCLoss) and loaded.optimizer is not None  # recompiled as saved


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="vocabulary"):
        build_transcriber(**TINY)
    with pytest.raises(ValueError, match="audio_tower"):
        build_transcriber(texts=TEXTS, audio_tower="resnet50", **TINY)
    with pytest.raises(ValueError, match="audio_recurrent"):
        build_transcriber(texts=TEXTS, audio_recurrent="rnn", **TINY)
    with pytest.raises(ValueError, match="dropout"):
        build_transcriber(texts=TEXTS, dropout=1.0, **TINY)
    with pytest.raises(ValueError, match="mel_crnn_ctc"):
        mmzoo.transcription.train_transcriber("small_cnn_lstm_concat", "x.csv")


def test_mel_cnn_tower_and_recipe_build():
    model = tiny_transcriber(audio_tower="mel_cnn", audio_time_pools=0)
    assert model.num_steps == 51 and "mel_crnn" not in [layer.name for layer in model.audio_tower.layers]
    recipe = mmzoo.build_model("mel_crnn_ctc", vocabulary=list("ab "), **{k: TINY[k] for k in ("sample_rate",
                                                                                                 "num_samples")})
    # The recipe: a 20 ms hop, no time pooling: 50 tokens a second.
    assert recipe.num_steps == 26 and recipe.get_config()["frame_step_ms"] == 20.0
    assert "mel_crnn_ctc" in mmzoo.list_models(task="transcribe") and "mel_crnn_ctc" not in mmzoo.list_models()


# === Loss ===


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("implementation", ["native", "keras"])
def test_ctc_hand_computed(implementation):
    logits = np.random.default_rng(1).normal(size=(1, 2, 3)).astype(np.float32)
    p = _softmax(logits[0])
    # Label [1] over 2 steps: alignments (1,1), (0,1), (1,0).
    expected = -math.log(p[0, 1] * p[1, 1] + p[0, 0] * p[1, 1] + p[0, 1] * p[1, 0])
    loss = ctc_per_example(tf.constant([[1]]), logits, implementation=implementation).numpy()
    assert loss[0] == pytest.approx(expected, rel=1e-5)
    # Label [1, 1] needs a blank between: only (1, 0, 1) over 3 steps.
    logits3 = np.random.default_rng(2).normal(size=(1, 3, 3)).astype(np.float32)
    p3 = _softmax(logits3[0])
    loss3 = ctc_per_example(tf.constant([[1, 1]]), logits3, implementation=implementation).numpy()
    assert loss3[0] == pytest.approx(-math.log(p3[0, 1] * p3[1, 0] * p3[2, 1]), rel=1e-5)


def test_masked_logits_over_all_steps_equal_ctc_over_the_valid_steps(transcriber):
    waves = clips([4000, 3000, 2000])  # 26, 19 and 13 tokens: room for 12, 17 and 6 steps of labels
    outputs = transcriber.logits_model({"audio": waves})
    labels = characters.LabelEncoder(transcriber.vocabulary).dense(tf.constant(TEXTS[:3]))
    label_lengths = tf.reduce_sum(tf.cast(labels > 0, tf.int32), axis=1)
    # keras.ops.ctc_loss with the token mask's lengths, on the logits before the blank padding.
    raw = keras.Model(transcriber.input, transcriber.get_layer("character_logits").output)({"audio": waves})
    reference = keras.ops.ctc_loss(labels, raw, label_lengths, outputs["lengths"]).numpy()
    for implementation in ("native", "keras"):
        full = ctc_per_example(labels, outputs["logits"], implementation=implementation).numpy()
        np.testing.assert_allclose(full, reference, rtol=1e-4)


def test_native_and_keras_gradients_agree(transcriber):
    labels = characters.LabelEncoder(transcriber.vocabulary).dense(tf.constant(TEXTS[:2]))
    logits = tf.constant(np.random.default_rng(3).normal(size=(2, 40, len(transcriber.id_to_token))), tf.float32)
    gradients = []
    for implementation in ("native", "keras"):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = tf.reduce_sum(ctc_per_example(labels, logits, implementation=implementation))
        gradients.append(tape.gradient(loss, logits).numpy())
    np.testing.assert_allclose(gradients[0], gradients[1], atol=1e-4)


def test_loss_is_the_weighted_mean_per_example():
    labels = tf.constant([[1, 2], [2, 0], [1, 1]])
    logits = tf.constant(np.random.default_rng(4).normal(size=(3, 6, 3)), tf.float32)
    per_example = ctc_per_example(labels, logits).numpy()
    assert float(CTCLoss()(labels, logits)) == pytest.approx(per_example.mean(), rel=1e-6)
    weights = tf.constant([1.0, 0.0, 1.0])
    assert float(CTCLoss()(labels, logits, weights)) == pytest.approx((per_example[0] + per_example[2]) / 2, rel=1e-6)
    # A transcript that cannot fit (3 labels + 1 repeat in 2 steps): "native" skips it (0), "keras" gives inf;
    # weighed 0, neither reaches the loss.
    short = logits[:, :2]
    too_long = tf.constant([[1, 1, 2], [2, 0, 0], [1, 0, 0]])
    assert ctc_per_example(too_long, short).numpy()[0] == 0.0
    for implementation in ("native", "keras"):
        with tf.GradientTape() as tape:
            tape.watch(short)
            value = CTCLoss(implementation)(too_long, short, tf.constant([0.0, 1.0, 1.0]))
        assert np.isfinite(float(value)) and np.all(np.isfinite(tape.gradient(value, short).numpy()))
    with pytest.raises(ValueError, match="implementation"):
        CTCLoss("cudnn")


def test_pack_dataset_weighs_too_long_transcripts_zero(transcriber):
    waves = clips([4000, 40])  # 40 samples: 1 valid token, too few for "green"
    dataset = tf.data.Dataset.from_tensor_slices({"audio": waves, "text": ["Green.", "green"]}).batch(2)
    (x, labels, weights), = list(pack_dataset(transcriber, dataset))
    assert set(x) == {"audio"} and labels.dtype == tf.int32 and labels.shape == (2, 5)
    np.testing.assert_array_equal(weights.numpy(), [1.0, 0.0])
    report = mmzoo.transcription.data.fit_report(transcriber, dataset)
    assert report["examples"] == 2 and report["too_long"] == 1 and report["max_required_fraction"] == 6.0  # "green": 5 + 1


# === Decoding ===


def _logits_from_probabilities(probabilities):
    return tf.constant(np.log(np.asarray(probabilities, np.float32))[None])


def test_greedy_merges_repeats_and_drops_blanks():
    tokens = ["", "a", "b"]
    # Steps: a a blank a b b -> "aab" (the blank separates the two a's).
    path = [1, 1, 0, 1, 2, 2]
    probabilities = np.full((6, 3), 0.1)
    probabilities[np.arange(6), path] = 0.8
    out = decode_logits(_logits_from_probabilities(probabilities), tf.constant([6]), tokens)
    assert out["transcript"].numpy()[0] == b"aab" and out["length"].numpy()[0] == 3
    np.testing.assert_array_equal(out["token_ids"].numpy()[0], [1, 1, 2, 0, 0, 0])
    assert out["log_probability"].numpy()[0] == pytest.approx(6 * math.log(0.8), rel=1e-5)
    # Only the valid steps count: the first 2 give "a".
    assert decode_logits(_logits_from_probabilities(probabilities), tf.constant([2]), tokens)["transcript"][0] == b"a"


def test_beam_search_finds_the_likelier_transcript_greedy_misses():
    # Two steps of p(blank) = 0.6, p(a) = 0.4: the best path is blank blank (""), p = 0.36, but "a" has the
    # paths a-a, a-blank, blank-a: 0.16 + 0.24 + 0.24 = 0.64.
    logits = _logits_from_probabilities([[0.6, 0.4], [0.6, 0.4]])
    greedy = decode_logits(logits, tf.constant([2]), ["", "a"], "greedy")
    beam = decode_logits(logits, tf.constant([2]), ["", "a"], "beam", beam_width=4)
    assert greedy["transcript"].numpy()[0] == b"" and greedy["length"].numpy()[0] == 0
    assert beam["transcript"].numpy()[0] == b"a"
    assert beam["log_probability"].numpy()[0] == pytest.approx(math.log(0.64), abs=1e-4)
    with pytest.raises(ValueError, match="strategy"):
        decode_logits(logits, tf.constant([2]), ["", "a"], "sampling")
    with pytest.raises(ValueError, match="beam_width"):
        decode_logits(logits, tf.constant([2]), ["", "a"], "beam", beam_width=0)


def test_transcribe_batch_of_one_equals_batch_of_many(transcriber):
    waves = clips([4000, 1200, 300, 2900])
    for strategy in ("greedy", "beam"):
        together = transcriber.transcribe(waves, strategy=strategy)
        for row in range(len(waves)):
            alone = transcriber.transcribe(waves[row:row + 1], strategy=strategy)
            assert alone["transcript"][0] == together["transcript"][row]
            np.testing.assert_array_equal(alone["token_ids"][0], together["token_ids"][row])
            assert alone["log_probability"][0] == pytest.approx(together["log_probability"][row], abs=1e-3)
    # Shorter clips are zero-padded, longer ones cropped, to num_samples; one clip must come in a list.
    padded = transcriber.transcribe(waves[:, :3000])["transcript"]
    assert padded[0] == transcriber.transcribe(np.pad(waves[:1, :3000], ((0, 0), (0, 1000))))["transcript"][0]
    with pytest.raises(ValueError, match="wrap it in a list"):
        transcriber.transcribe(waves[0])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        transcriber.transcribe(waves * 3)


# === Training ===


def _batches(model, texts, seed=0):
    waves = clips([4000, 3500, 3000, 3900][:len(texts)], seed=seed)
    return pack_dataset(model, tf.data.Dataset.from_tensor_slices({"audio": waves, "text": texts}).batch(len(texts)))


def test_fit_lowers_the_loss():
    model = tiny_transcriber(dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = _batches(model, TEXTS).cache()
    history = model.fit(data.repeat(8), epochs=1, verbose=0, shuffle=False)
    before = model.evaluate(data, verbose=0)
    model.fit(data.repeat(8), epochs=1, verbose=0, shuffle=False)
    assert model.evaluate(data, verbose=0) < before < history.history["loss"][0]


def test_mixed_float16_keeps_logits_and_loss_in_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = tiny_transcriber()
        assert model.get_layer("character_logits").compute_dtype == "float32"
        model.compile()
        logits = model({"audio": clips([4000, 2000])})
        assert logits.dtype == tf.float32
        loss = model.train_on_batch(*next(iter(_batches(model, TEXTS[:2]))))
        assert np.isfinite(loss)
    finally:
        keras.config.set_dtype_policy(previous)
