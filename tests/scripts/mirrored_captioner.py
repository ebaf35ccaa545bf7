"""One training step of a captioner on 1 and on 2 logical CPU replicas with the same global batch.

Run as a subprocess by tests/test_captioning_training.py for one decoder (the GRU; another can be named on the
command line; the loss's global-batch average does not depend on it): logical devices must be set before
TensorFlow starts, and a second 2-replica MirroredStrategy in the same process reused
the first one's collective instance keys (its all-reduce then mixed the two models' gradients: a shape mismatch).
The captions have different lengths, so the two replicas hold different numbers of real tokens: a per-replica
mean would weight them differently and the weights would differ. Prints JSON with the max |weights(2 replicas) -
weights(1 replica)| and the largest step a weight took.
"""

import json
import sys

import mmzoo  # noqa: F401  (oneDNN flag before TensorFlow)
import keras
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from mmzoo.captioning.model import build_captioner  # noqa: E402
from mmzoo.captioning.packing import pack_dataset  # noqa: E402

WORDS = ["a", "red", "blue", "circle", "square", "and", "small"]
# Replica 0 gets the first two captions (long), replica 1 the last two (short).
CAPTIONS = ["a small red circle and a blue square", "a red circle and a small blue square", "a circle", "red"]


def one_step(devices, decoder):
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_captioner(decoder=decoder, vocabulary=WORDS, max_length=10, image_size=32, units=16,
                                embedding_dim=8, num_heads=2, dropout=0.0)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    initial = [w.numpy() for w in model.weights]
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    raw = tf.data.Dataset.from_tensor_slices({"image": images, "text": CAPTIONS}).batch(4)
    model.fit(pack_dataset(model, raw), epochs=1, verbose=0)
    step = max(float(np.abs(w.numpy() - i).max()) for w, i in zip(model.weights, initial))
    return [w.numpy() for w in model.weights], step


decoder = sys.argv[1] if len(sys.argv) > 1 else "gru"  # "gru", "lstm" or "transformer"
single, step = one_step(["/cpu:0"], decoder)
double, _ = one_step(["/cpu:0", "/cpu:1"], decoder)
print(json.dumps({decoder: {"max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, double)),
                            "max_step": step}}))
