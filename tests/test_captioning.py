"""Captioners: metrics against hand-computed values, packing, decoder steps equal to teacher forcing, in-graph
generation (greedy and beam) scored as the model scores it, .keras round trips, the registry and bad arguments."""

import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from mmzoo.captioning.metrics import bleu, cider_d, evaluate_captions, exact_match
from mmzoo.captioning.model import build_captioner
from mmzoo.captioning.packing import END_ID, START_ID, CaptionPacker, pack_dataset

WORDS = ["a", "red", "blue", "circle", "square", "small", "large", "there", "is"]
CAPTIONS = ["a red circle", "there is a small blue square.", "a large red square", "a circle"]
MAX_LENGTH = 8


def _images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# === Metrics, against values worked out by hand ===


def test_bleu_matches_hand_computed_corpus_value():
    hypotheses = ["the cat sat on the mat", "a red circle at the top"]
    references = [["the cat is on the mat"], ["a red circle at the top"]]
    # Clipped matches / hypothesis n-grams, pooled: 1-grams (5 + 6) / 12, 2-grams (3 + 5) / 10, 3-grams (1 + 4) / 8,
    # 4-grams (0 + 3) / 6; hypothesis and reference lengths are both 12, so no brevity penalty.
    expected = (11 / 12 * 8 / 10 * 5 / 8 * 3 / 6) ** 0.25
    assert bleu(hypotheses, references) == pytest.approx(expected, abs=1e-12)
    assert bleu(["the cat sat on the mat"], [["the cat is on the mat"]]) == 0.0  # no 4-gram in common


def test_bleu_brevity_penalty_and_closest_reference():
    # Every n-gram of the 5-word hypothesis matches; the closest reference has 6 words: BP = exp(1 - 6/5).
    assert bleu(["a red circle at the"], [["a red circle at the top", "a red circle at the top left too"]]) == \
        pytest.approx(math.exp(1 - 6 / 5), abs=1e-12)
    assert bleu(["A red circle, at the top."], [["a red circle at the top"]]) == pytest.approx(1.0)


def test_cider_d_matches_hand_computed_values():
    references = [["a b"], ["c d"]]
    # Each n-gram occurs in one of 2 images: weight log(2). Identical captions: cosine 1 for 1- and 2-grams, none of
    # order 3 or 4 (0), no length difference: 10 * (1 + 1 + 0 + 0) / 4 = 5 per image.
    assert cider_d(["a b", "c d"], references) == pytest.approx(5.0, abs=1e-12)
    # "a" against "a b": 1-gram cosine log2^2 / (log2 * sqrt(2) log2) = 1/sqrt(2), damped by the length difference
    # (0 vs 1 bigram): exp(-1 / 72); no 2-grams. The other image scores 5.
    first = 10 * (1 / math.sqrt(2) * math.exp(-1 / 72)) / 4
    assert cider_d(["a", "c d"], references) == pytest.approx((first + 5.0) / 2, abs=1e-12)
    # An n-gram every image's references hold weighs 0 ("a"): the rest still match perfectly.
    assert cider_d(["a b", "a c"], [["a b"], ["a c"]]) == pytest.approx(5.0, abs=1e-12)


def test_exact_match_and_several_references():
    hypotheses = ["a red circle", "a blue square"]
    references = [["A red circle.", "a circle"], ["a red square"]]
    assert exact_match(hypotheses, references) == 0.5
    scores = evaluate_captions(hypotheses, references)
    assert set(scores) == {"exact_match", "bleu4", "cider_d"} and scores["exact_match"] == 0.5
    with pytest.raises(ValueError, match="one list of references per hypothesis"):
        bleu(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="at least one reference caption"):
        cider_d(["a"], [[]])


# === Packing ===


def test_packing_frames_truncates_and_weights():
    packer = CaptionPacker(["a", "red", "circle"], max_length=5)
    token_ids, targets, weights = (t.numpy() for t in packer(tf.constant(["A red, circle!", "a blue circle"])))
    a, red, circle = 4, 5, 6
    np.testing.assert_array_equal(token_ids, [[START_ID, a, red, circle, END_ID], [START_ID, a, 1, circle, END_ID]])
    np.testing.assert_array_equal(targets, [[a, red, circle, END_ID, 0], [a, 1, circle, END_ID, 0]])
    np.testing.assert_array_equal(weights, [[1, 1, 1, 1, 0]] * 2)
    short = CaptionPacker(["a", "red", "circle"], max_length=3)
    token_ids, targets, weights = (t.numpy() for t in short(tf.constant(["a red circle"])))
    np.testing.assert_array_equal(token_ids, [[START_ID, a, red]])
    np.testing.assert_array_equal(targets, [[a, red, END_ID]])  # cut to max_length - 1 words; the end stays
    with pytest.raises(ValueError, match="batch of strings"):
        packer(tf.constant("one caption"))


# === Models ===


# Every test of the module-scoped captioners runs on one xdist worker, so only that worker builds them.
SHARED = pytest.mark.xdist_group("captioners")


@pytest.fixture(scope="module", params=["gru", "transformer"])
def captioner(request):
    keras.utils.set_random_seed(0)
    return build_captioner(decoder=request.param, vocabulary=WORDS, max_length=MAX_LENGTH, image_size=32, units=16,
                           embedding_dim=8, num_heads=2, dropout=0.0)


def _batch(model):
    raw = tf.data.Dataset.from_tensor_slices({"image": _images(), "text": CAPTIONS}).batch(4)
    return next(iter(pack_dataset(model, raw)))


@SHARED
def test_decoding_steps_equal_teacher_forcing(captioner):
    x, targets, weights = _batch(captioner)
    logits = captioner(x, training=False).numpy()
    assert logits.shape == (4, MAX_LENGTH, len(WORDS) + 4) and logits.dtype == np.float32
    cache = captioner.decoder.start(captioner.encoder(tf.cast(x["image"], tf.float32)), MAX_LENGTH)
    for index in range(MAX_LENGTH):
        step_logits, cache = captioner.decoder.step(x["token_ids"][:, index], tf.constant(index), cache)
        np.testing.assert_allclose(step_logits.numpy(), logits[:, index], atol=1e-4)


def _score(model, token_ids, images):
    """The log-probability the model gives `token_ids` (each up to its end token) under teacher forcing."""
    inputs = np.concatenate([np.full((len(token_ids), 1), START_ID), token_ids[:, :-1]], axis=1)
    logits = model({"image": images.astype("float32"), "token_ids": inputs}, training=False)
    log_probabilities = tf.nn.log_softmax(logits).numpy()
    chosen = np.take_along_axis(log_probabilities, token_ids[..., None], axis=-1)[..., 0]
    return (chosen * (token_ids > 0)).sum(axis=1)


@SHARED
@pytest.mark.parametrize("strategy, num_beams", [("greedy", 1), ("beam", 3)])
def test_generate_returns_consistent_captions_ids_and_scores(captioner, strategy, num_beams):
    images = _images(seed=1)
    out = captioner.generate(images, strategy=strategy, num_beams=num_beams)
    assert out["caption"].shape == (4,) and out["token_ids"].shape == (4, MAX_LENGTH)
    vocabulary = captioner.id_to_token
    for caption, ids in zip(out["caption"], out["token_ids"]):
        real = [i for i in ids if i > END_ID]
        assert caption == " ".join(vocabulary[i] for i in real)
        ends = list(ids).index(END_ID) if END_ID in ids else MAX_LENGTH - 1
        assert not ids[ends + 1:].any(), ids  # nothing after the end token
        assert all(i > END_ID for i in ids[:ends]), ids  # never padding, unknown or start before it
    np.testing.assert_allclose(out["log_probability"], _score(captioner, out["token_ids"], images), atol=1e-3)


@SHARED
@pytest.mark.parametrize("length_penalty", [1.0, 0.0])
def test_beam_never_scores_below_greedy(captioner, length_penalty):
    # The score beam search ranks finished captions by: log-probability over length ** length_penalty, the end
    # token counted. The widest beam here (4 of 13 tokens) keeps greedy's path or finds a better caption.
    images = _images(n=16, seed=4)

    def score(out):
        lengths = (out["token_ids"] > 0).sum(axis=1)
        return out["log_probability"] / lengths.astype("float32") ** length_penalty

    greedy = score(captioner.generate(images))
    for num_beams in (2, 4):
        beam = captioner.generate(images, strategy="beam", num_beams=num_beams, length_penalty=length_penalty)
        assert (score(beam) >= greedy - 1e-4).all(), (num_beams, score(beam), greedy)


@SHARED
def test_beam_of_one_is_greedy_and_shorter_max_length(captioner):
    images = _images(seed=2)
    greedy = captioner.generate(images)
    np.testing.assert_array_equal(captioner.generate(images, strategy="beam", num_beams=1)["token_ids"],
                                  greedy["token_ids"])
    short = captioner.generate(images, max_length=3)
    np.testing.assert_array_equal(short["token_ids"], greedy["token_ids"][:, :3])
    resized = captioner.generate(np.repeat(np.repeat(images, 2, axis=1), 2, axis=2))  # 64 px, resized to 32
    assert resized["caption"].shape == (4,)
    # Float pixels are rounded and clipped to uint8 as the export's are: the same captions as the uint8 image.
    nudged = np.clip(images.astype("float32") + 0.4, None, 255.4)
    np.testing.assert_array_equal(captioner.generate(nudged)["token_ids"], greedy["token_ids"])


@SHARED
def test_keras_file_round_trip(captioner, tmp_path):
    x, _, _ = _batch(captioner)
    path = tmp_path / "captioner.keras"
    captioner.save(path)
    reloaded = mmzoo.captioning.load_captioner(path)
    np.testing.assert_allclose(reloaded(x).numpy(), captioner(x).numpy(), atol=1e-6)
    assert reloaded.get_config() == captioner.get_config()
    images = _images(seed=3)
    np.testing.assert_array_equal(reloaded.generate(images)["token_ids"], captioner.generate(images)["token_ids"])


def test_load_model_and_captioning_export_in_a_fresh_process(tmp_path):
    # A new interpreter has imported nothing of mmzoo.captioning: load_model must register the captioner itself.
    keras.utils.set_random_seed(0)
    model = build_captioner(vocabulary=WORDS, max_length=4, image_size=16, units=4, embedding_dim=4)
    path = tmp_path / "captioner.keras"
    model.save(path)
    # The captioner's export shares the request checks (mmzoo.serving_checks), not the classifier export's.
    code = ("import sys, mmzoo; assert 'tensorflow' not in sys.modules; "
            "import mmzoo.captioning.export; assert 'mmzoo.export' not in sys.modules, 'mmzoo.export imported'; "
            "m = mmzoo.load_model(sys.argv[1]); print(type(m).__name__, m.task)")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["ImageCaptioner", "caption"]


# === Registry and errors ===


def test_registry_is_task_aware():
    captioners = mmzoo.list_models(task="caption")
    assert {"small_cnn_gru_captioner", "small_cnn_lstm_captioner", "small_cnn_transformer_captioner"} <= set(captioners)
    assert not set(captioners) & set(mmzoo.list_models())  # the default lists classifiers, as before
    every_task = mmzoo.list_models() + captioners + mmzoo.list_models(task="transcribe")
    assert sorted(mmzoo.list_models(task=None)) == sorted(every_task)
    model = mmzoo.build_model("small_cnn_lstm_captioner", vocabulary=WORDS, max_length=6, image_size=32, units=8,
                              embedding_dim=4)
    assert model.name == "small_cnn_lstm_captioner" and model.get_config()["decoder"] == "lstm"
    assert model.output.shape == (None, 6, len(WORDS) + 4)
    with pytest.raises(ValueError, match=r"Unknown argument\(s\) \['num_classes'\].*max_length"):
        mmzoo.build_model("small_cnn_gru_captioner", vocabulary=WORDS, num_classes=3)
    with pytest.raises(ValueError, match="`task` must be one of"):
        mmzoo.list_models(task="translate")


@pytest.mark.parametrize("overrides, message", [
    ({"decoder": "rnn"}, "`decoder` must be one of gru, lstm, transformer. Received: decoder='rnn'"),
    ({"max_length": 1}, r"`max_length` must be an integer >= 2 .* Received: max_length=1"),
    ({"vocabulary": None}, "Give the caption `vocabulary`"),
    ({"vocabulary": ["[start]", "[end]"]}, "at least one word"),
    ({"image_tower": "nope"}, "nope"),
])
def test_bad_builder_arguments(overrides, message):
    arguments = dict(vocabulary=WORDS, image_size=32, units=8)
    arguments.update(overrides)
    with pytest.raises(ValueError, match=message):
        build_captioner(**arguments)


@SHARED
def test_bad_generation_and_data_arguments(captioner):
    images = _images(n=1)
    with pytest.raises(ValueError, match="`strategy` must be one of greedy, beam. Received: strategy='sample'"):
        captioner.generate(images, strategy="sample")
    with pytest.raises(ValueError, match="`num_beams` must be a positive integer. Received: num_beams=0"):
        captioner.generate(images, strategy="beam", num_beams=0)
    with pytest.raises(ValueError, match=rf"`max_length` must be an integer in \[1, {MAX_LENGTH}\].*max_length=99"):
        captioner.generate(images, max_length=99)
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]. Received: shape \(32, 32, 3\)"):
        captioner.generate(images[0])
    unbatched = tf.data.Dataset.from_tensor_slices({"image": _images(), "text": CAPTIONS})
    with pytest.raises(ValueError, match="must be batched"):
        pack_dataset(captioner, unbatched)
