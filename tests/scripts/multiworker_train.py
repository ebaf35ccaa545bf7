"""One worker of a multi-worker training; tests/test_multiworker.py starts two of them, each with its TF_CONFIG.

    TF_CONFIG=... python multiworker_train.py WEIGHTS.npz TRAIN.csv VAL.csv OUTPUT_DIR EXPORT_DIR IMAGE_SIZE

Calls `mmzoo.train(..., strategy="multiworker")` as any launcher would (Ray Train's `TensorflowTrainer` does the
same: it sets TF_CONFIG and calls a function on each worker), then saves the trained backbone's weights to
WEIGHTS.npz so the test can check that every worker ends with the same model.
"""

import sys

import numpy as np

import mmzoo

weights_path, train_csv, val_csv, output_dir, export_dir, image_size = sys.argv[1:]
result = mmzoo.train("small_cnn_lstm_concat", train_csv, validation_data=val_csv, image_size=int(image_size),
                     batch_size=16, epochs=1, learning_rate=3e-3, schedule="cosine", strategy="multiworker",
                     output_dir=output_dir, export_dir=export_dir, verbose=0)
np.savez(weights_path, *[np.asarray(w.numpy()) for w in mmzoo.get_backbone(result.model).weights])
