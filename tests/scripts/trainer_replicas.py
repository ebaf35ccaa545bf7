"""One optimizer step of a trainer on 2 replicas vs 1 (MirroredStrategy, logical CPUs), same global batch.

    python tests/scripts/trainer_replicas.py CASE

Run as a subprocess by the trainer tests: logical devices must be set before TensorFlow starts. Prints JSON with
the max |weight(2 replicas) - weight(1 replica)| over the trained model's weights after one `fit` step, the
largest change one step made (so a step that did nothing cannot pass), and the loss each run reported. A case is a function `make(seed) -> (trainer, dataset, weights_of)` registered in
`CASES`; it builds its models (dropout 0, synchronized BatchNorm) and returns a dataset of ONE global batch.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0])

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

CASES = {}


def case(function):
    CASES[function.__name__] = function
    return function


def one_step(make, devices):
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        trainer, dataset, weights_of = make()
        trainer.compile(optimizer=keras.optimizers.SGD(0.5))
    before = [w.numpy() for w in weights_of(trainer)]
    history = trainer.fit(dataset, epochs=1, verbose=0)
    after = [w.numpy() for w in weights_of(trainer)]
    step = max(float(np.abs(a - b).max()) for a, b in zip(after, before))
    return after, float(history.history["loss"][-1]), step


def main(name):
    make = CASES[name]
    single, single_loss, step = one_step(make, ["/cpu:0"])
    double, double_loss, _ = one_step(make, ["/cpu:0", "/cpu:1"])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(single, double))
    print(json.dumps({"max_abs_diff": diff, "max_step": step, "loss_1": single_loss, "loss_2": double_loss}))


# === Cases ===


if __name__ == "__main__":
    main(sys.argv[1])
