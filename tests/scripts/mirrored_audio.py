"""One training step of a speech + text classifier (mel_crnn + GRU) on 1 and on 2 logical CPUs.

Run as a subprocess by tests/test_audio_export.py: logical devices must be set before TensorFlow starts. Prints
JSON with the max |weights(2 replicas) - weights(1 replica)| after one SGD step on the same global batch and the
largest step of a trainable weight (so a step that moved nothing cannot pass). The log-mel front end normalises
per example and the CNN's BatchNormalization is synchronized, so nothing depends on how the batch is split.
Also reports whether a seeded SpecAugment draws different masks on the two replicas (it should: each folds its
replica id into the seed).
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


def spec_augment_per_replica():
    """The time-band masks a seeded SpecAugment draws for the same examples on each of 2 replicas, and on one
    device: replicas fold their id into the seed, so theirs differ (the SeedGenerator's state is mirrored)."""
    from mmzoo.towers import SpecAugment

    features = tf.ones((4, 60, 8))
    masks = []
    for devices in (["/cpu:0", "/cpu:1"], ["/cpu:0"]):
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            layer = SpecAugment(time_masks=2, time_mask_frames=20, freq_masks=0, seed=5)
        out = strategy.run(tf.function(lambda: layer(features, training=True)))
        masks += [(value.numpy() == 0).all(axis=2) for value in strategy.experimental_local_results(out)]
    return masks  # [replica 0 of 2, replica 1 of 2, one device]


single, step = one_step(["/cpu:0"])
double, _ = one_step(["/cpu:0", "/cpu:1"])
first, second, alone = spec_augment_per_replica()
print(json.dumps({"max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, double)),
                  "max_step": step, "spec_augment_replicas_differ": bool((first != second).any()),
                  "spec_augment_masked": bool(first.any() and second.any()),
                  "spec_augment_replica0_is_one_device": bool((first == alone).all())}))
