"""Training objectives as `keras.Model` wrappers used with plain `fit`/`evaluate`.

Each trainer has a custom `train_step`/`test_step` that stays correct under `tf.distribute` and mixed precision
(see `mmzoo.trainers.base`), and an `inference_model` that `mmzoo.export_model` exports in its place.
"""

from mmzoo.trainers.base import Trainer
from mmzoo.trainers.contrastive import DualEncoder, build_dual_encoder, evaluate_retrieval, retrieval_recall
from mmzoo.trainers.distill import Distiller
from mmzoo.trainers.masked import MaskedPretrainer
from mmzoo.trainers.objects import build_object_grid_model, grid_size, pretrain_objects

__all__ = [
    "Distiller",
    "DualEncoder",
    "MaskedPretrainer",
    "Trainer",
    "build_dual_encoder",
    "build_object_grid_model",
    "evaluate_retrieval",
    "grid_size",
    "pretrain_objects",
    "retrieval_recall",
]
