"""Import Keras on the TensorFlow backend once, without TensorFlow's start-up chatter."""

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _stderr_silenced():
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ logs ignore Python's sys.stderr."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def load_keras():
    """Import and return keras; the first call also initialises TensorFlow's devices quietly."""
    if "tensorflow" not in sys.modules:
        with _stderr_silenced():
            import tensorflow as tf

            tf.config.list_physical_devices()
    import keras

    return keras
