"""Training as a library call: `mmzoo.train` is what `mmzoo train` runs.

    result = mmzoo.train("small_cnn_lstm_concat", "mmzoo_shapes/vqa", epochs=5, output_dir="runs/x",
                         export_dir="saved_models/x")
    result.test_metrics        # {"accuracy": ..., "loss": ...}
    result.paths["keras_model"]

It loads the data (a TFDS name and its splits, a .csv/.jsonl file with any image, text and audio columns, or
tf.data datasets of raw ``({"image", "text"}, label)`` batches or of other named inputs), makes the `tf.distribute`
strategy (`mmzoo.distribute`), builds the model (a recipe's towers, or one per input of the data), optionally
pretrains its image tower on object annotations (`mmzoo.trainers.objects.pretrain_objects`), fits the model's
numeric backbone on datasets preprocessed in tf.data (`mmzoo.preprocessing.preprocess_dataset`: strings
cannot be replicated, docs/architecture.md), resumes from its backup after an interruption, and writes a CSV log,
TensorBoard logs, a plot, the `.keras` model and an export (the files are named in `mmzoo.run_files`).
"""

from mmzoo.schedules import SCHEDULES, learning_rate_schedule
from mmzoo.training.data import TrainingData, load_data, load_file
from mmzoo.training.errors import OptionError, TrainingFailed
from mmzoo.training.model_inputs import AUDIO_OPTIONS
from mmzoo.training.object_epochs import AUTO_OBJECT_EPOCHS, resolve_object_epochs
from mmzoo.training.options import AUTO_VALIDATION_FRACTION, DEFAULT_AUDIO_COLUMN, DEFAULT_COLUMNS, OWN_DATA_SUFFIXES
from mmzoo.training.run import TrainResult, train
from mmzoo.training.tower_outputs import TOWER_OUTPUT_CACHE_BYTES

__all__ = ["AUDIO_OPTIONS", "AUTO_OBJECT_EPOCHS", "AUTO_VALIDATION_FRACTION", "DEFAULT_AUDIO_COLUMN", "DEFAULT_COLUMNS",
           "OWN_DATA_SUFFIXES", "OptionError", "SCHEDULES", "TOWER_OUTPUT_CACHE_BYTES", "TrainResult", "TrainingData",
           "TrainingFailed", "learning_rate_schedule", "load_data", "load_file", "resolve_object_epochs", "train"]
