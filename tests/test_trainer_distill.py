"""Distillation: the loss formula, cross-modal and feature distillation, exported teachers, refusals, distribution,
mixed precision and export of the student."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmzoo
from helpers import CLASS_NAMES, tiny_batch, tiny_dataset, tiny_overrides
from mmzoo.classifier import build_classifier
from mmzoo.trainers import Distiller

pytestmark = pytest.mark.xdist_group("trainer_distill")
HARNESS = pathlib.Path(__file__).parent / "scripts" / "trainer_replicas.py"


def tiny_teacher():
    return mmzoo.build_model("small_cnn_lstm_concat", **tiny_overrides(dropout=0.0))


def text_student(**extra):
    options = tiny_overrides(dropout=0.0, **extra)
    options.pop("image_size")
    return build_classifier(image_tower=None, text_tower="gru", fusion=None, **options)


def first_batch(distiller, dataset):
    return next(iter(distiller._prepare(dataset, "x", training=False)))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_loss_is_alpha_label_loss_plus_t2_kl(alpha):
    keras.utils.set_random_seed(0)
    teacher, student = tiny_teacher(), text_student()
    distiller = Distiller(teacher, student, alpha=alpha, temperature=2.5)
    x, y = first_batch(distiller, tiny_dataset())
    losses, student_logits = distiller.compute_losses(x, y)
    t = teacher.backbone(x["teacher"]).numpy() / 2.5
    s = student_logits.numpy() / 2.5
    p, q = softmax(t), softmax(s)
    kl = (p * (np.log(p) - np.log(q))).sum(axis=-1).mean() * 2.5**2
    np.testing.assert_allclose(float(losses["distillation_loss"]), kl, rtol=1e-4, atol=1e-6)
    label = -np.log(softmax(student_logits.numpy())[np.arange(len(y)), y.numpy()]).mean()
    np.testing.assert_allclose(float(losses["student_loss"]), label, rtol=1e-5)
    np.testing.assert_allclose(float(losses["loss"]), alpha * label + (1 - alpha) * kl, rtol=1e-4, atol=1e-6)


def test_cross_modal_student_learns_and_teacher_stays_frozen(tmp_path):
    keras.utils.set_random_seed(0)
    teacher, student = tiny_teacher(), text_student()
    teacher_weights = [w.numpy() for w in teacher.weights]
    student_weights = [w.numpy() for w in student.weights]
    distiller = Distiller(teacher, student, alpha=0.5, temperature=2.0, feature_weight=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    before = distiller.evaluate(tiny_dataset(), verbose=0, return_dict=True)
    history = distiller.fit(tiny_dataset(), validation_data=tiny_dataset(), epochs=5, verbose=0).history
    after = distiller.evaluate(tiny_dataset(), verbose=0, return_dict=True)
    assert {"loss", "student_loss", "distillation_loss", "feature_loss", "accuracy", "val_loss"} <= set(history)
    assert after["loss"] < before["loss"]
    for a, b in zip(teacher_weights, teacher.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(student_weights, student.weights))

    # Only the student is exported; it takes text alone.
    served = mmzoo.load_exported(mmzoo.export_model(distiller, tmp_path / "student"))
    x, _ = tiny_batch(batch_size=3)
    outputs = served({"text": list(x["text"])})
    expected = tf.nn.softmax(student({"text": tf.constant(list(x["text"]))}))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-5)
    assert set(outputs["label"]) <= set(CLASS_NAMES)


def test_a_frozen_student_tower_stays_as_it_was():
    # bench/distillation.py --object-epochs freezes the student's pretrained image tower: only the rest may learn.
    keras.utils.set_random_seed(0)
    teacher, student = tiny_teacher(), tiny_teacher()
    tower = mmzoo.get_image_tower(student)
    tower.trainable = False
    frozen = [w.numpy() for w in tower.weights]
    rest = [w.numpy() for w in student.trainable_weights]
    distiller = Distiller(teacher, student, alpha=0.5, temperature=2.0)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    distiller.fit(tiny_dataset(), epochs=2, verbose=0)
    for before, after in zip(frozen, tower.weights):
        np.testing.assert_array_equal(before, after.numpy())
    kernels = [(before, after) for before, after in zip(rest, student.trainable_weights) if after.path.endswith("kernel")]
    assert kernels and all(not np.allclose(before, after.numpy()) for before, after in kernels)


def test_exported_teacher_gives_the_same_targets_as_the_keras_teacher(tmp_path):
    keras.utils.set_random_seed(0)
    teacher = tiny_teacher()
    path = mmzoo.export_model(teacher, tmp_path / "teacher")
    from_keras = Distiller(teacher, text_student(), alpha=0.2, temperature=3.0)
    from_export = Distiller(str(path), text_student(), alpha=0.2, temperature=3.0)
    x_keras, _ = first_batch(from_keras, tiny_dataset())
    x_export, _ = first_batch(from_export, tiny_dataset())
    keras_logits = teacher.backbone(x_keras["teacher"])
    np.testing.assert_allclose(
        tf.nn.softmax(x_export["teacher_logits"]), tf.nn.softmax(keras_logits), atol=1e-5
    )
    from_export.compile(optimizer="adam")
    history = from_export.fit(tiny_dataset(), epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"alpha": -0.1}, r"`alpha` must be a number in \[0, 1\]. Received: alpha=-0.1"),
        ({"alpha": 1.5}, r"`alpha` must be a number in \[0, 1\]"),
        ({"alpha": True}, r"`alpha` must be a number"),
        ({"temperature": 0}, r"`temperature` must be a number > 0. Received: temperature=0"),
        ({"temperature": -2.0}, r"`temperature` must be a number > 0"),
        ({"temperature": "3"}, r"`temperature` must be a number > 0"),
        ({"feature_weight": -1.0}, r"`feature_weight` must be a number >= 0"),
    ],
)
def test_invalid_settings_raise_before_training(options, message):
    with pytest.raises(ValueError, match=message):
        Distiller(tiny_teacher(), text_student(), **options)


def test_a_student_input_the_teacher_lacks_is_refused():
    teacher = text_student()
    student = tiny_teacher()
    with pytest.raises(ValueError, match=r"student takes input\(s\) \['image'\] that the teacher lacks"):
        Distiller(teacher, student)


def test_teacher_and_student_must_predict_the_same_classes(tmp_path):
    with pytest.raises(ValueError, match="teacher predicts 3 classes and the student 4"):
        Distiller(tiny_teacher(), text_student(num_classes=4, class_names=["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match=r"teacher's classes \['red', 'blue', 'two'\] differ"):
        Distiller(tiny_teacher(), text_student(class_names=["blue", "red", "two"]))
    path = mmzoo.export_model(tiny_teacher(), tmp_path / "teacher")
    with pytest.raises(ValueError, match="teacher predicts 3 classes and the student 4"):
        Distiller(path, text_student(num_classes=4, class_names=None))
    with pytest.raises(ValueError, match="Feature distillation needs the teacher's intermediate embedding"):
        Distiller(path, text_student(), feature_weight=1.0)
    # An export records its class names, so they are compared too.
    with pytest.raises(ValueError, match=r"teacher's classes \['red', 'blue', 'two'\] differ"):
        Distiller(path, text_student(class_names=["blue", "red", "two"]))


def test_mixed_precision_scales_the_loss_and_trains():
    def one_step(policy):
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(0)
            teacher, student = tiny_teacher(), text_student()
            distiller = Distiller(teacher, student, alpha=0.5, temperature=2.0)
            distiller.compile(optimizer=keras.optimizers.SGD(0.5))
            kernel = student.get_layer("backbone").get_layer("head").logits.kernel
            before = kernel.numpy()
            distiller.fit(tiny_dataset(batches=1), epochs=1, verbose=0)
            return distiller, np.abs(kernel.numpy() - before).max()
        finally:
            keras.mixed_precision.set_global_policy("float32")

    _, full = one_step("float32")
    distiller, mixed = one_step("mixed_float16")
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    assert 0.5 < mixed / full < 2.0
    # Its layers keep their mixed_float16 policy: it goes on training.
    before = distiller.evaluate(tiny_dataset(), verbose=0, return_dict=True)["loss"]
    history = distiller.fit(tiny_dataset(), epochs=4, verbose=0).history
    after = distiller.evaluate(tiny_dataset(), verbose=0, return_dict=True)["loss"]
    assert np.isfinite(history["loss"]).all() and after < before


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_replica():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, str(HARNESS), "distill"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_step"] > 1e-3
    assert result["max_abs_diff"] <= 1e-5
