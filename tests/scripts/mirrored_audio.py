"""One training step of a speech + text classifier (mel_crnn + GRU) on 1 and on 2 logical CPUs.

Run as a subprocess by tests/test_audio_export.py: logical devices must be set before TensorFlow starts. Prints
JSON with the max |weights(2 replicas) - weights(1 replica)| after one SGD step on the same global batch and the
largest step of a trainable weight (so a step that moved nothing cannot pass). The log-mel front end normalises
per example and the CNN's BatchNormalization is synchronized, so nothing depends on how the batch is split.
"""

import json
import sys

import mmzoo
import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0])
from helpers import VOCABULARY  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def batch(size=8, samples=4000, seed=0):
    rng = np.random.default_rng(seed)
    waves = np.zeros((size, samples), np.float32)
    for row, length in enumerate(rng.integers(500, samples, size)):
        waves[row, :length] = rng.uniform(-1.0, 1.0, length) * (0.01 if row % 2 else 0.8)  # quiet and loud clips
    texts = np.array(["what color is the circle", "how many", "is the square left of the circle", ""] * size)[:size]
    return waves, texts, np.arange(size) % 3


def one_step(devices):
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = mmzoo.build_classifier(
            towers={"speech": {"tower": "mel_crnn", "audio_widths": (8, 16)}, "text": "gru"}, fusion="concat",
            num_classes=3, vocabulary=VOCABULARY, sequence_length=6, embedding_dim=8, text_units=8, fusion_units=8,
            sample_rate=8000, num_samples=4000, mel_bins=16, audio_units=12, dropout=0.0)
        backbone = model.backbone
        backbone.compile(optimizer=keras.optimizers.SGD(0.1),
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    initial = [w.numpy() for w in model.weights]
    waves, texts, labels = batch()
    vectorizer = model.vectorizers["text"]
    dataset = tf.data.Dataset.from_tensor_slices(((waves, texts), labels)).batch(8).map(
        lambda inputs, y: ({"speech": inputs[0], "token_ids": vectorizer(inputs[1])}, y))
    backbone.fit(dataset, epochs=1, verbose=0)
    step = max(float(np.abs(w.numpy() - i).max()) for w, i in zip(model.weights, initial) if w.trainable)
    return [w.numpy() for w in model.weights], step


single, step = one_step(["/cpu:0"])
double, _ = one_step(["/cpu:0", "/cpu:1"])
print(json.dumps({"max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, double)),
                  "max_step": step}))
