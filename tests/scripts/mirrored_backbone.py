"""Train a classifier's numeric backbone under MirroredStrategy on 2 logical CPUs, text vectorized in tf.data.

Run as a subprocess by tests/test_distribution.py: logical devices must be set before TensorFlow starts.
Prints JSON with the max |weights(2 replicas) - weights(1 replica)| after one step on the same global batch.
"""

import json
import sys

import mmzoo
import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0])
from helpers import tiny_batch, tiny_overrides  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def one_step(devices):
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(dropout=0.0))
        backbone = mmzoo.get_backbone(model)
        backbone.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    vectorizer = mmzoo.get_vectorizer(model)
    x, y = tiny_batch(batch_size=8, seed=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).map(
        lambda inputs, labels: ({"image": inputs["image"], "token_ids": vectorizer(inputs["text"])}, labels)
    )
    backbone.fit(dataset, epochs=1, verbose=0)
    # The full model (raw strings in) shares the trained weights.
    image, text = tf.constant(x["image"]), tf.constant(list(x["text"]))
    full = model({"image": image, "text": text}, training=False)
    part = backbone({"image": image, "token_ids": vectorizer(text)}, training=False)
    np.testing.assert_allclose(full, part, atol=1e-6)
    return [w.numpy() for w in model.weights]


single = one_step(["/cpu:0"])
double = one_step(["/cpu:0", "/cpu:1"])
print(json.dumps({"max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, double))}))
