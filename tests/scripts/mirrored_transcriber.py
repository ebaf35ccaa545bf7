"""One training step of a transcriber (mel_crnn + bidirectional GRU, CTC) on 1 and on 2 logical CPUs.

Run as a subprocess by tests/test_transcription_training.py: logical devices must be set before TensorFlow
starts. Prints JSON with the max |weights(2 replicas) - weights(1 replica)| after one SGD step on the same global
batch, the largest step of a trainable weight (so a step that moved nothing cannot pass) and the loss each
reported. The CTC loss sums each replica's examples over the global batch size (CTCLoss), the log-mel front end
normalises per example and the CNN's BatchNormalization is synchronized, so nothing depends on how the batch is
split. Clips of different lengths, transcripts of different lengths, and one transcript too long for its clip
(weighed 0) on one replica only.
"""

import json

import keras
import numpy as np
import tensorflow as tf

import mmzoo

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

# Imported once the devices are set: building their lookup tables and constants initialises TensorFlow's devices.
from mmzoo.transcription.data import pack_dataset  # noqa: E402
from mmzoo.transcription.model import build_transcriber  # noqa: E402

TEXTS = ["a red circle", "the small square", "green", "a blue triangle", "red", "the circle", "a square", "small"]


def batch(size=8, samples=4000, seed=0):
    rng = np.random.default_rng(seed)
    waves = np.zeros((size, samples), np.float32)
    for row, length in enumerate([4000, 3900, 2500, 4000, 1800, 3000, 40, 2200][:size]):
        waves[row, :length] = rng.uniform(-1.0, 1.0, length) * (0.01 if row % 2 else 0.8)  # quiet and loud clips
    return waves, TEXTS[:size]


def one_step(devices):
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_transcriber(texts=TEXTS, sample_rate=8000, num_samples=4000, mel_bins=16, audio_widths=(8, 16),
                                  audio_units=12, dropout=0.0)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    initial = [w.numpy() for w in model.weights]
    waves, texts = batch()
    dataset = pack_dataset(model, tf.data.Dataset.from_tensor_slices({"audio": waves, "text": texts}).batch(8))
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    step = max(float(np.abs(w.numpy() - i).max()) for w, i in zip(model.weights, initial) if w.trainable)
    return [w.numpy() for w in model.weights], step, float(history.history["loss"][0])


single, step, single_loss = one_step(["/cpu:0"])
double, _, double_loss = one_step(["/cpu:0", "/cpu:1"])
print(json.dumps({"max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, double)),
                  "max_step": step, "loss_1": single_loss, "loss_2": double_loss}))
