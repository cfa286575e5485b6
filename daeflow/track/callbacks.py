"""Keras callbacks that log to the active MLflow run; what they log is computed elsewhere.

Epochs are numbered from 1, as the CLI prints them: Keras's epoch 0 is MLflow step 1.
"""

import time

import numpy as np

from daeflow.runtime.backend import load_keras
from daeflow.track.names import TAG_EPOCHS_DONE, TAG_HEARTBEAT, epoch_metric

keras = load_keras()


class EpochLogger(keras.callbacks.Callback):
    """Logs every numeric value of each epoch's logs as an MLflow metric, step = epoch number,
    and a heartbeat tag (the time), by which `daeflow runs` tells a live run from a dead one.

    Steps up to `logged` are not logged again: a resumed run that trains once more an epoch
    logged before its process died (after its last checkpoint) leaves no duplicate step.
    """

    def __init__(self, journal, logged: int = 0):
        super().__init__()
        self.journal, self.logged = journal, logged

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 <= self.logged:
            return
        values = {
            epoch_metric(k): float(v)
            for k, v in (logs or {}).items()
            if np.isscalar(v) or np.ndim(v) == 0
        }
        self.journal.metrics(values, step=epoch + 1)
        self.journal.tags({TAG_HEARTBEAT: f"{time.time():.0f}", TAG_EPOCHS_DONE: str(epoch + 1)})


class ImageLogger(keras.callbacks.Callback):
    """Logs `render(model)`, an RGB picture, under `key`: after the first epoch, every
    `every`-th epoch and the last one, so that a long run logs a bounded number of pictures.
    With `every` None (no epoch limit is known), after epochs 1, 2, 4, 8, ... and the last."""

    def __init__(self, render, journal, key: str, every: int | None = 1, logged: int = 0):
        super().__init__()
        self.render, self.journal, self.key = render, journal, key
        self.every = None if every is None else max(1, every)
        self.last, self.logged = 0, logged  # steps up to `logged` are there already

    def due(self, epoch: int) -> bool:
        """Whether the picture after `epoch` (counted from 1) is logged, the last one aside."""
        if self.every is None:
            return epoch & (epoch - 1) == 0  # a power of two
        return epoch == 1 or epoch % self.every == 0

    def on_epoch_end(self, epoch, logs=None):
        self.last = epoch + 1
        if self.last > self.logged and self.due(self.last):
            self._log(self.last)

    def on_train_end(self, logs=None):
        if self.last > self.logged:
            self._log(self.last)  # weights at the end of the last epoch, before any restore

    def _log(self, step: int) -> None:
        self.journal.image(self.render(self.model), key=self.key, step=step)
        self.logged = step
