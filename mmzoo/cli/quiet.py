"""Start-up messages a user cannot act on, silenced at their source (TensorFlow C++ lines: stderr_filter.py)."""

import logging
import os


class _DropMessage(logging.Filter):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def filter(self, record):
        return self.text not in record.getMessage()


# tensorflow-datasets 4.9 logs this deprecation of its own API from inside its builders, once per feature and split:
# ten lines a run that the user cannot act on.
TFDS_DTYPE_DEPRECATION = _DropMessage("`FeatureConnector.dtype` is deprecated")


def quiet_known_noise():
    """Silence start-up messages a user cannot act on, each at its source; warnings and errors stay visible.

    `TF_CPP_MIN_LOG_LEVEL=1` (read when TensorFlow is first imported; a value the user set wins) drops
    TensorFlow's C++ INFO lines once its logging is set up, such as the tf.data buffer size notes; its warnings and
    errors still show. The few lines it writes while being imported (the oneDNN notice, CUDA stubs) come before
    abseil's logging is initialised, which then prints every level whatever the setting (an open abseil-cpp
    issue): `mmzoo.cli.stderr_filter` drops those.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    absl_logger = logging.getLogger("absl")
    if TFDS_DTYPE_DEPRECATION not in absl_logger.filters:
        absl_logger.addFilter(TFDS_DTYPE_DEPRECATION)
