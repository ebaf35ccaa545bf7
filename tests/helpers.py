"""Tiny inputs shared by the tests: 32 px images, a handful of words, three classes."""

import numpy as np

VOCABULARY = ["what", "color", "is", "the", "circle", "square", "red", "blue", "left", "of", "how", "many"]
CLASS_NAMES = ["red", "blue", "two"]
TEXTS = ["what color is the circle", "what color is the square", "how many circles", "is the circle left of the square"]
IMAGE_SIZE = 32
SEQUENCE_LENGTH = 8


def tiny_batch(batch_size=4, seed=0):
    """({"image": uint8 [B, 32, 32, 3], "text": object strings [B]}, int labels [B])."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch_size, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    texts = np.array([TEXTS[i % len(TEXTS)] for i in range(batch_size)], dtype=object)
    labels = np.arange(batch_size) % len(CLASS_NAMES)
    return {"image": images, "text": texts}, labels


def tiny_overrides(**extra):
    """build_model overrides that keep any recipe small enough for a 2-core CI machine."""
    overrides = dict(
        num_classes=len(CLASS_NAMES),
        class_names=CLASS_NAMES,
        vocabulary=VOCABULARY,
        image_size=IMAGE_SIZE,
        sequence_length=SEQUENCE_LENGTH,
        embedding_dim=16,
        text_units=16,
        fusion_units=16,
    )
    overrides.update(extra)
    return overrides


def tiny_dataset(batch_size=8, batches=2):
    """A tf.data.Dataset of `batches` tiny batches, as trainers take them (strings as a string tensor)."""
    import tensorflow as tf

    x, y = tiny_batch(batch_size=batch_size * batches, seed=0)
    features = {"image": x["image"], "text": tf.constant(list(x["text"]))}
    return tf.data.Dataset.from_tensor_slices((features, y)).batch(batch_size)


# Audio inputs of the tiny models: 0.5 s at 8 kHz, narrow towers.
AUDIO_SAMPLE_RATE = 8000
AUDIO_NUM_SAMPLES = 4000


def tiny_audio_overrides(**extra):
    """`tiny_overrides` plus the audio builder arguments that keep an audio tower tiny (ignored without audio)."""
    return tiny_overrides(sample_rate=AUDIO_SAMPLE_RATE, num_samples=AUDIO_NUM_SAMPLES, mel_bins=16, audio_units=16,
                          **extra)


def tiny_waveforms(batch_size=4, seed=0, num_samples=AUDIO_NUM_SAMPLES):
    """float32 [B, num_samples] in [-1, 1]: tones of different pitch and length, zero-padded at the end."""
    rng = np.random.default_rng(seed)
    time = np.arange(num_samples) / AUDIO_SAMPLE_RATE
    waves = np.zeros((batch_size, num_samples), np.float32)
    for row in range(batch_size):
        length = int(rng.integers(num_samples // 4, num_samples + 1))
        tone = 0.5 * np.sin(2 * np.pi * rng.uniform(200, 2000) * time[:length])
        waves[row, :length] = tone + 0.05 * rng.standard_normal(length)
    return np.clip(waves, -1.0, 1.0).astype(np.float32)


def tiny_model_batch(model, batch_size=4, seed=0):
    """(`tiny_batch`'s image and text, plus `tiny_waveforms` for each audio input, for the inputs `model` takes,
    labels)."""
    inputs, labels = tiny_batch(batch_size=batch_size, seed=seed)
    features = {}
    for name, modality in model.modalities.items():
        if modality.kind == "audio":
            features[name] = tiny_waveforms(batch_size, seed, num_samples=modality.options["num_samples"])
        else:
            features[name] = inputs[modality.kind]
    return features, labels
