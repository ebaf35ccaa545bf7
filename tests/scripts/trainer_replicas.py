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


def _tiny_dataset():
    from helpers import tiny_dataset

    return tiny_dataset(batch_size=8, batches=1)  # one global batch


@case
def masked():
    import mmzoo
    from helpers import tiny_overrides
    from mmzoo.trainers import MaskedPretrainer

    model = mmzoo.build_model("small_cnn_bilstm_attention", **tiny_overrides(dropout=0.0))
    trainer = MaskedPretrainer(model, mask_rate=0.4, image_mask_rate=0.25, seed=3)
    return trainer, _tiny_dataset(), lambda t: t.weights


@case
def distill():
    import mmzoo
    from helpers import tiny_overrides
    from mmzoo.trainers import Distiller

    teacher = mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(dropout=0.0))
    student_options = tiny_overrides(dropout=0.0)
    student_options.pop("image_size")
    student = mmzoo.build_classifier(image_tower=None, text_tower="gru", fusion=None, **student_options)
    trainer = Distiller(teacher, student, alpha=0.5, temperature=2.0, feature_weight=0.5)
    return trainer, _tiny_dataset(), lambda t: t.student.weights + t.feature_projection.weights


@case
def contrastive():
    from helpers import IMAGE_SIZE, VOCABULARY, tiny_batch
    from mmzoo.trainers.contrastive import build_dual_encoder

    trainer = build_dual_encoder(
        vocabulary=VOCABULARY, image_size=IMAGE_SIZE, sequence_length=6, projection_dim=8,
        embedding_dim=8, text_units=8, temperature=0.5,
    )
    x, _ = tiny_batch(batch_size=8, seed=1)
    texts = [" ".join(VOCABULARY[i:i + 3]) for i in range(8)]  # 8 different captions: 8 distinct positives
    dataset = tf.data.Dataset.from_tensor_slices({"image": x["image"], "text": texts}).batch(8)
    return trainer, dataset, lambda t: t.weights


if __name__ == "__main__":
    main(sys.argv[1])
