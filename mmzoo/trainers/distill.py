"""Knowledge distillation: a student learns from labels and from a teacher's softened predictions.

    L = alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))  [+ feature_weight * MSE]

The student may see less than the teacher (cross-modal distillation: an image + text teacher, a text-only or
image-only student), which `keras.distillation.Distiller` refuses; its `LogitsDistillation` loss is reused. The
teacher is a Keras classifier or an exported SavedModel (mmzoo.export_model), whose probabilities are computed
in the input pipeline since a SavedModel takes raw strings.
"""

import os

import keras
import tensorflow as tf
from keras import ops

from mmzoo.classifier import get_backbone, get_embedding_model, get_vectorizer
from mmzoo.export import ExportedModel, load_exported
from mmzoo.heads import find_class_names
from mmzoo.trainers.base import Trainer, check_fraction, global_mean

MODALITIES = ("image", "text")


class Distiller(Trainer):
    """Train `student` with `alpha * label loss + (1 - alpha) * distillation loss` from a frozen `teacher`.

    Args:
        teacher: an mmzoo classifier (`keras.Model` on raw `{"image", "text"}`), or the path of (or an
            `ExportedModel` from) an `mmzoo.export_model` SavedModel.
        student: an mmzoo classifier whose inputs are a subset of the teacher's, with the same classes.
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
        student_inputs = _modalities(student, "student")
        if isinstance(teacher, (str, os.PathLike)):
            teacher = load_exported(teacher)
        exported = isinstance(teacher, ExportedModel)
        teacher_inputs = _exported_modalities(teacher) if exported else _modalities(teacher, "teacher")
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
        self.student_backbone = get_backbone(student)
        self.student_vectorizer = get_vectorizer(student)
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
            self.teacher_backbone = get_backbone(teacher)
            self.teacher_vectorizer = get_vectorizer(teacher)
        if feature_weight:
            self.teacher_embedding = get_embedding_model(teacher)
            self.student_embedding = get_embedding_model(student)
            width = self.teacher_embedding.output.shape[-1]
            self.feature_projection = keras.layers.Dense(width, name="feature_projection")
            self.feature_projection.build(tuple(self.student_embedding.output.shape))
        self.built = True

    # === Data ===

    def preprocess(self, x, y, seed):
        missing = sorted(set(self.teacher_inputs) - set(x))
        if missing:
            raise ValueError(f"The dataset lacks input(s) {missing} the teacher needs. It has: {sorted(x)}")
        features = {}
        if "image" in self.teacher_inputs:
            features["image"] = tf.cast(x["image"], tf.float32)
        if self.student_vectorizer is not None:
            features["student_token_ids"] = self.student_vectorizer(x["text"])
        if self.exported_teacher is not None:
            probabilities = self.exported_teacher.serve_tensors({name: x[name] for name in self.teacher_inputs})
            features["teacher_logits"] = tf.math.log(tf.maximum(probabilities, 1e-12))  # softmax-equivalent
        elif self.teacher_vectorizer is not None:
            features["teacher_token_ids"] = self.teacher_vectorizer(x["text"])
        return features, y

    def _student_feed(self, x):
        feed = {"image": x["image"]} if "image" in self.student_inputs else {}
        if "text" in self.student_inputs:
            feed["token_ids"] = x["student_token_ids"]
        return feed

    def _teacher_feed(self, x):
        feed = {"image": x["image"]} if "image" in self.teacher_inputs else {}
        if "text" in self.teacher_inputs:
            feed["token_ids"] = x["teacher_token_ids"]
        return feed

    # === Losses ===

    def call(self, x, training=False):
        """The student's logits for preprocessed inputs."""
        return ops.cast(self.student_backbone(self._student_feed(x), training=training), "float32")

    def compute_losses(self, x, y, sample_weight=None, training=False):
        student_logits = self(x, training=training)
        if self.exported_teacher is not None:
            teacher_logits = x["teacher_logits"]
        else:
            teacher_logits = self.teacher_backbone(self._teacher_feed(x), training=False)
        teacher_logits = ops.stop_gradient(ops.cast(teacher_logits, "float32"))
        # Both keras losses are replica-scaled (they divide by the number of replicas), like global_mean.
        losses = {
            "student_loss": self.label_loss(y, student_logits, sample_weight=sample_weight),
            "distillation_loss": self.logits_distillation.compute_loss(teacher_logits, student_logits),
        }
        losses["loss"] = self.alpha * losses["student_loss"] + (1.0 - self.alpha) * losses["distillation_loss"]
        if self.feature_weight:
            target = ops.stop_gradient(ops.cast(self.teacher_embedding(self._teacher_feed(x), training=False), "float32"))
            student = ops.cast(self.feature_projection(self.student_embedding(self._student_feed(x), training=training)), "float32")
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


def _modalities(model, argument):
    try:
        inputs = model.input
    except (AttributeError, ValueError):
        inputs = None
    if not isinstance(model, keras.Model) or not isinstance(inputs, dict) or not set(inputs) <= set(MODALITIES):
        raise ValueError(
            f"`{argument}` must be an mmzoo classifier (a keras.Model on a dict of 'image' and/or 'text' inputs"
            f"{', or an exported SavedModel' if argument == 'teacher' else ''}). Received: {argument}={model!r}"
        )
    return tuple(name for name in MODALITIES if name in inputs)


def _exported_modalities(exported):
    names = exported.input_names()
    unknown = sorted(set(names) - set(MODALITIES))
    if unknown:
        raise ValueError(f"The exported teacher at {exported.path} takes inputs {unknown}; expected 'image'/'text'.")
    return tuple(name for name in MODALITIES if name in names)


def _num_classes(model):
    return model.output.shape[-1]


def _check_same_classes(teacher, student, exported):
    student_classes = _num_classes(student)
    teacher_classes = teacher.num_classes() if exported else _num_classes(teacher)
    if teacher_classes != student_classes:
        raise ValueError(
            f"The teacher predicts {teacher_classes} classes and the student {student_classes}; distillation "
            "needs the same classes in the same order."
        )
    # An export serves labels but not the list of names, so only a Keras teacher's names can be compared.
    teacher_names = None if exported else find_class_names(teacher)
    student_names = find_class_names(student)
    if teacher_names and student_names and list(teacher_names) != list(student_names):
        raise ValueError(
            f"The teacher's classes {list(teacher_names)} differ from the student's {list(student_names)}; "
            "distillation needs the same classes in the same order."
        )
