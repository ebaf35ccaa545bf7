"""Knowledge distillation: a student learns from labels and from a teacher's softened predictions.

    L = alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))  [+ feature_weight * MSE]

The student may see less than the teacher (cross-modal distillation: an image + text teacher, a text-only or
image-only student), which `keras.distillation.Distiller` refuses; its `LogitsDistillation` loss is reused. The
teacher is a Keras classifier or an exported SavedModel (mmzoo.export_model), whose probabilities are computed
in the input pipeline since a SavedModel takes raw strings. Each model's own input-pipeline preprocessing
(`mmzoo.preprocessing.preprocess_features`) turns the raw batch into what its backbone takes.
"""

import os

import keras
import tensorflow as tf
from keras import ops

from mmzoo.classifier import get_embedding_model
from mmzoo.export import ExportedModel, load_exported
from mmzoo.preprocessing import preprocess_features
from mmzoo.trainers.base import Trainer, check_fraction, global_mean


class Distiller(Trainer):
    """Train `student` with `alpha * label loss + (1 - alpha) * distillation loss` from a frozen `teacher`.

    Args:
        teacher: an mmzoo classifier (`mmzoo.build_model` / `build_classifier`), or the path of (or an
            `ExportedModel` from) an `mmzoo.export_model` SavedModel.
        student: an mmzoo classifier whose inputs are a subset of the teacher's (by name), with the same
            classes.
        alpha: weight of the label loss, in [0, 1]; 1 ignores the teacher, 0 ignores the labels.
        temperature: softening temperature T > 0 of both distributions.
        feature_weight: weight of an extra MSE between the student's and the teacher's joint embeddings (the
            inputs of their heads), through a learned projection when widths differ; needs a Keras teacher.
    """

    def __init__(self, teacher, student, alpha=0.1, temperature=3.0, feature_weight=0.0, seed=None, **kwargs):
        alpha = check_fraction(alpha, "alpha", low_open=False, high_open=False)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"`temperature` must be a number > 0. Received: temperature={temperature!r}")
        if isinstance(feature_weight, bool) or not isinstance(feature_weight, (int, float)) or feature_weight < 0:
            raise ValueError(f"`feature_weight` must be a number >= 0. Received: feature_weight={feature_weight!r}")
        student_inputs = _input_names(student, "student")
        if isinstance(teacher, (str, os.PathLike)):
            teacher = load_exported(teacher)
        exported = isinstance(teacher, ExportedModel)
        teacher_inputs = teacher.input_names() if exported else _input_names(teacher, "teacher")
        missing = sorted(set(student_inputs) - set(teacher_inputs))
        if missing:
            raise ValueError(
                f"The student takes input(s) {missing} that the teacher lacks; a teacher must see at least what "
                f"its student sees. Teacher inputs: {sorted(teacher_inputs)}, student inputs: {sorted(student_inputs)}"
            )
        _check_same_classes(teacher, student, exported)
        if feature_weight and exported:
            raise ValueError(
                "Feature distillation needs the teacher's intermediate embedding, which an exported SavedModel does "
                f"not serve; give the Keras teacher or feature_weight=0. Received: feature_weight={feature_weight!r}"
            )
        loss_names = ("loss", "student_loss", "distillation_loss") + (("feature_loss",) if feature_weight else ())
        super().__init__(loss_names=loss_names, seed=seed, **kwargs)
        self.alpha = alpha
        self.temperature = float(temperature)
        self.feature_weight = float(feature_weight)
        self.student = student
        self.student_inputs = student_inputs
        self.student_backbone = student.backbone
        self.exported_teacher = teacher if exported else None
        self.teacher_inputs = teacher_inputs
        # The loss object, not the default loss="kl_divergence": Keras 3.15 resolves that string to the plain
        # function, skips its softmax branch and takes the KL of raw logits (measured: 16.1 instead of 1.09).
        self.logits_distillation = keras.distillation.LogitsDistillation(
            temperature=self.temperature, loss=keras.losses.KLDivergence()
        )
        self.label_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        if not exported:
            teacher.trainable = False  # frozen: no gradients, BatchNorm in inference mode
            self.teacher = teacher
            self.teacher_backbone = teacher.backbone
        if feature_weight:
            self.teacher_embedding = get_embedding_model(teacher)
            self.student_embedding = get_embedding_model(student)
            width = self.teacher_embedding.output.shape[-1]
            self.feature_projection = keras.layers.Dense(width, name="feature_projection")
            self.feature_projection.build(tuple(self.student_embedding.output.shape))
        self.built = True

    # === Data ===

    def preprocess(self, x, y, seed):
        """Raw batch -> `{"student": its backbone's inputs, "teacher": the teacher's}` (or, for an exported
        teacher, `"teacher_logits"` computed here, since a SavedModel takes raw inputs)."""
        missing = sorted(set(self.teacher_inputs) - set(x))
        if missing:
            raise ValueError(f"The dataset lacks input(s) {missing} the teacher needs. It has: {sorted(x)}")
        features = {"student": preprocess_features(self.student, x)}
        if self.exported_teacher is not None:
            probabilities = self.exported_teacher.serve_tensors({name: x[name] for name in self.teacher_inputs})
            features["teacher_logits"] = tf.math.log(tf.maximum(probabilities, 1e-12))  # softmax-equivalent
        else:
            features["teacher"] = preprocess_features(self.teacher, x)
        return features, y

    # === Losses ===

    def call(self, x, training=False):
        """The student's logits for preprocessed inputs."""
        return ops.cast(self.student_backbone(x["student"], training=training), "float32")

    def compute_losses(self, x, y, sample_weight=None, training=False):
        student_logits = self(x, training=training)
        if self.exported_teacher is not None:
            teacher_logits = x["teacher_logits"]
        else:
            teacher_logits = self.teacher_backbone(x["teacher"], training=False)
        teacher_logits = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
        # Both keras losses are replica-scaled (they divide by the number of replicas), like global_mean.
        losses = {
            "student_loss": self.label_loss(y, student_logits, sample_weight=sample_weight),
            "distillation_loss": self.logits_distillation.compute_loss(teacher_logits, student_logits),
        }
        losses["loss"] = self.alpha * losses["student_loss"] + (1.0 - self.alpha) * losses["distillation_loss"]
        if self.feature_weight:
            target = ops.stop_gradient(ops.cast(self.teacher_embedding(x["teacher"], training=False), "float32"))
            student = ops.cast(self.feature_projection(self.student_embedding(x["student"], training=training)), "float32")
            losses["feature_loss"] = global_mean(ops.mean(ops.square(student - target), axis=-1))
            losses["loss"] = losses["loss"] + self.feature_weight * losses["feature_loss"]
        return losses, student_logits

    @property
    def extra_metrics(self):
        return [self.accuracy]

    def update_extra_metrics(self, x, y, outputs):
        self.accuracy.update_state(y, outputs)

    @property
    def inference_model(self):
        return self.student


def _input_names(model, argument):
    """The names of an mmzoo classifier's inputs, in its order; a one-line error for anything else."""
    if not isinstance(model, keras.Model) or not all(
        hasattr(model, attribute) for attribute in ("modalities", "backbone", "preprocess_inputs")
    ):
        raise ValueError(
            f"`{argument}` must be an mmzoo classifier (mmzoo.build_model / build_classifier"
            f"{', or an exported SavedModel' if argument == 'teacher' else ''}). Received: {argument}={model!r}"
        )
    return tuple(model.modalities)


def _check_same_classes(teacher, student, exported):
    student_classes = student.num_classes
    teacher_classes = teacher.num_classes() if exported else teacher.num_classes
    if teacher_classes != student_classes:
        raise ValueError(
            f"The teacher predicts {teacher_classes} classes and the student {student_classes}; distillation "
            "needs the same classes in the same order."
        )
    teacher_names = teacher.class_names() if exported else teacher.class_names
    student_names = student.class_names
    if teacher_names and student_names and list(teacher_names) != list(student_names):
        raise ValueError(
            f"The teacher's classes {list(teacher_names)} differ from the student's {list(student_names)}; "
            "distillation needs the same classes in the same order."
        )
