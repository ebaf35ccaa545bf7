import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mmzoo  # noqa: E402,F401  (sets TF_ENABLE_ONEDNN_OPTS before TensorFlow is imported)
