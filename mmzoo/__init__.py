"""mmzoo: a Keras 3 / TensorFlow model zoo for two-input image + text models."""

import os

# TensorFlow reads this flag once, when it is first imported. oneDNN is off by default on AMD CPUs and turning
# it on made ResNet50 training 2-3x faster on the 2-core machine we measured (see docs/benchmarks.md). A value the
# user already set wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
