"""Speech <-> text retrieval: the dual encoder over {audio, text} (docs/audio.md, "Speech <-> text retrieval"):
building and its checks, a2t/t2a losses and recall, learning to pair recordings with texts, recall over a split
against chance, the encoders' config round trip and export, the bundled spoken captions."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
import mmzoo.data
from mmzoo.trainers.contrastive import (DualEncoder, build_dual_encoder, embed_dataset, evaluate_retrieval,
                                        retrieval_recall)
from helpers import AUDIO_SAMPLE_RATE

WORDS = ["low", "high", "red", "blue", "one", "two", "left", "right"]
TINY_AUDIO = dict(sample_rate=AUDIO_SAMPLE_RATE, num_samples=2000, mel_bins=16, audio_widths=(8, 8),
                  audio_units=16)
TINY = dict(audio_tower="mel_cnn", audio_options=TINY_AUDIO, text_tower="gru", sequence_length=4, embedding_dim=8,
            text_units=16, projection_dim=16)


def _pairs(n=8, seed=0):
    """`n` recordings (a tone of its own pitch, of its own length) and the word each goes with."""
    rng = np.random.default_rng(seed)
    time = np.arange(TINY_AUDIO["num_samples"]) / AUDIO_SAMPLE_RATE
    waves = np.zeros((n, TINY_AUDIO["num_samples"]), np.float32)
    for i in range(n):
        length = int(rng.integers(1000, 2001))
        waves[i, :length] = 0.5 * np.sin(2 * np.pi * (150 * 2 ** (i / 2)) * time[:length])
    return waves, np.array([WORDS[i % len(WORDS)] for i in range(n)], dtype=object)


def _dataset(waves, texts, batch_size=8):
    return tf.data.Dataset.from_tensor_slices({"audio": waves, "text": tf.constant(list(texts))}).batch(batch_size)


def test_audio_dual_encoder_takes_waveforms_and_texts():
    dual = build_dual_encoder(vocabulary=WORDS, **TINY)
    assert dual.media == "audio" and dual.directions == ("a2t", "t2a")
    assert dual.image_encoder is None and dual.media_encoder is dual.audio_encoder
    audio = dual.modalities["audio"]
    assert audio.kind == "audio" and audio.shape == (2000,)
    assert dict(audio.options) == {"sample_rate": AUDIO_SAMPLE_RATE, "num_samples": 2000}
    assert set(dual.inference_model) == {"audio", "text"}
    waves, texts = _pairs()
    embeddings = dual.audio_encoder(waves)
    assert embeddings.shape == (8, 16)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_audio_dual_encoder_learns_to_pair_recordings_and_texts():
    """Eight recordings, eight words: after training on the pairs, every recording's own word is the nearest of
    the eight texts and back (recall@1 = 1 both ways), which the untrained encoders do not reach."""
    keras.utils.set_random_seed(0)
    dual = build_dual_encoder(vocabulary=WORDS, learn_temperature=False, temperature=0.1, recall_at=(1,), seed=0,
                              **TINY)
    waves, texts = _pairs()
    data = _dataset(waves, texts)
    before = evaluate_retrieval(dual, data, ks=(1,))
    dual.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = dual.fit(data.repeat(), steps_per_epoch=60, epochs=1, verbose=0).history
    assert {"loss", "a2t_loss", "t2a_loss", "a2t_recall_at_1", "t2a_recall_at_1"} <= set(history)
    after = evaluate_retrieval(dual, data, ks=(1,))
    assert after["a2t_recall_at_1"] == after["t2a_recall_at_1"] == 1.0, after
    assert min(before["a2t_recall_at_1"], before["t2a_recall_at_1"]) < 1.0, before
    assert after["a2t_chance_at_1"] == pytest.approx(1 / 8) and after["num_examples"] == 8


def test_recall_is_named_by_direction_and_counts_ties_against_the_query():
    rng = np.random.default_rng(0)
    texts = rng.standard_normal((10, 4)).astype(np.float32)
    result = retrieval_recall(texts, texts, ks=(1, 5), directions=("a2t", "t2a"))
    assert result["a2t_recall_at_1"] == result["t2a_recall_at_1"] == 1.0
    assert result["a2t_chance_at_5"] == pytest.approx(0.5)
    collapsed = retrieval_recall(np.ones((10, 4)), np.ones((10, 4)), ks=(1,), directions=("a2t", "t2a"))
    assert collapsed["a2t_recall_at_1"] == 0.0
    assert "i2t_recall_at_1" in retrieval_recall(texts, texts, ks=(1,))  # the default names stay
    with pytest.raises(ValueError, match="`directions` must be two names"):
        retrieval_recall(texts, texts, directions=("a2t",))


@pytest.mark.parametrize("arguments, message", [
    (dict(image_tower="small_cnn"), "Give `image_tower` or `audio_tower`"),
    (dict(audio_options=None, audio_tower="mel_rnn"), "mel_rnn"),
    (dict(audio_options=dict(TINY_AUDIO, hop=3)), "hop"),
    (dict(audio_options=dict(TINY_AUDIO, sample_rate=500)), "sample_rate"),
])
def test_audio_dual_encoder_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_dual_encoder(vocabulary=WORDS, **dict(TINY, **arguments))
    with pytest.raises(ValueError, match="`audio_options` is a dict of audio input options that goes with"):
        build_dual_encoder(vocabulary=WORDS, audio_options=TINY_AUDIO)


def test_dual_encoder_takes_one_of_image_and_audio_encoders():
    dual = build_dual_encoder(vocabulary=WORDS, **TINY)
    image = build_dual_encoder(vocabulary=WORDS, image_size=16, sequence_length=4, embedding_dim=8, text_units=16,
                               projection_dim=16)
    with pytest.raises(ValueError, match="Give one of `image_encoder` and `audio_encoder`.*both"):
        DualEncoder(image.image_encoder, dual.text_encoder, audio_encoder=dual.audio_encoder)
    with pytest.raises(ValueError, match="neither"):
        DualEncoder(text_encoder=dual.text_encoder)


def test_config_round_trip_and_export_serve_the_same_embeddings(tmp_path):
    dual = build_dual_encoder(vocabulary=WORDS, **TINY)
    waves, texts = _pairs(4)
    restored = DualEncoder.from_config(dual.get_config())
    assert restored.media == "audio" and restored.directions == ("a2t", "t2a")
    version = mmzoo.export_model(dual, tmp_path / "speech_text")
    served = mmzoo.load_exported(version)
    assert served.audio_inputs() == {"audio": {"sample_rate": AUDIO_SAMPLE_RATE, "num_samples": 2000}}
    np.testing.assert_allclose(served.embed_waveforms(waves), dual.audio_encoder(waves), atol=1e-5)
    np.testing.assert_allclose(served.embed_texts(list(texts)), dual.text_encoder(tf.constant(list(texts))),
                               atol=1e-5)
    wav = tf.audio.encode_wav(waves[0][:, None], AUDIO_SAMPLE_RATE).numpy()
    heard = tf.audio.decode_wav(wav).audio.numpy()[:, 0][None]
    np.testing.assert_allclose(served.embed_wav_bytes([wav]), dual.audio_encoder(heard), atol=1e-5)


def test_embeds_the_bundled_spoken_captions():
    """The spoken captions' `speech` comes as "audio" (mmzoo.data), at the data's rate and clip length."""
    data, info = mmzoo.data.load("mmzoo_shapes/spoken_captions", "test[:6]", batch_size=3, with_info=True)
    dual = build_dual_encoder(vocabulary=info.vocabulary, **dict(
        TINY, sequence_length=40, audio_options=dict(TINY_AUDIO, sample_rate=info.sample_rate,
                                                      num_samples=info.num_samples)))
    recordings, embedded_texts, captions = embed_dataset(dual, data)
    assert recordings.shape == embedded_texts.shape == (6, 16) and len(captions) == 6
    assert all(isinstance(caption, str) and caption for caption in captions)
