"""Train a classifier's numeric backbone under MirroredStrategy on 2 logical CPUs, text vectorized in tf.data.

Run as a subprocess by tests/test_distribution.py: logical devices must be set before TensorFlow starts.
Prints JSON with the max |weights(2 replicas) - weights(1 replica)| after one step on the same global batch, the
largest disagreement between the two replicas' copies of a weight, and the largest step of a trainable weight.
`--optimizer fused_adam` (or `keras_adam`, to compare) compiles with `mmzoo.compile_model` and mmzoo's fused Adam
(Keras' Adam) instead of Keras' SGD.
"""

import argparse
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


parser = argparse.ArgumentParser()
parser.add_argument("--optimizer", choices=["sgd", "fused_adam", "keras_adam"], default="sgd")
OPTIMIZER = parser.parse_args().optimizer


def one_step(devices):
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(dropout=0.0))
        backbone = mmzoo.get_backbone(model)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if OPTIMIZER == "sgd":
            backbone.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
        else:
            adam = mmzoo.optimizers.Adam if OPTIMIZER == "fused_adam" else keras.optimizers.Adam
            # epsilon 1e-3: with the default 1e-7, a weight whose gradient is ~1e-7 moves by a sizeable part of
            # lr on a float round-off of that gradient (2e-5 here, Keras' Adam the same).
            mmzoo.compile_model(backbone, adam(1e-3, epsilon=1e-3), loss=loss)
    initial = [w.numpy() for w in model.weights]
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
    # Each replica holds its own copy of a mirrored weight: both must have taken the same step.
    copies = [[c.numpy() for c in w.value.values] for w in model.weights if hasattr(w.value, "values")]
    disagreement = max((float(np.abs(c[0] - other).max()) for c in copies for other in c[1:]), default=0.0)
    step = max(float(np.abs(w.numpy() - i).max()) for w, i in zip(model.weights, initial) if w.trainable)
    return [w.numpy() for w in model.weights], disagreement, step


single, _, step = one_step(["/cpu:0"])
double, disagreement, _ = one_step(["/cpu:0", "/cpu:1"])
print(json.dumps({
    "max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(single, double)),
    "max_replica_disagreement": disagreement,
    "max_step": step,
}))
