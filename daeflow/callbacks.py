"""Keras callbacks of the trainer: validation PSNR, best weights, time budget, LR, progress."""

import math
import time

from daeflow.backend import load_keras
from daeflow.evaluation import evaluate

keras = load_keras()


class EpochTimer(keras.callbacks.Callback):
    """Seconds each epoch spends training, before any end-of-epoch work such as validation."""

    def __init__(self):
        super().__init__()
        self.start, self.seconds = 0.0, []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)

    def steady_seconds(self) -> float:
        """Median epoch time, leaving out the first epoch (tracing) when there are others."""
        times = self.seconds[1:] or self.seconds
        return max(float(sorted(times)[len(times) // 2]), 1e-9)


class Validator(keras.callbacks.Callback):
    """Adds val_loss, val_psnr and val_ssim (per-image means) to each epoch's logs."""

    def __init__(self, source, indices, batch_size):
        super().__init__()
        self.source, self.indices, self.batch_size = source, indices, batch_size
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        scores = evaluate(self.model, self.source, self.indices, self.batch_size)
        means = scores.means("val_")
        logs.update(
            val_loss=means["val_mse"], val_psnr=means["val_psnr"], val_ssim=means["val_ssim"]
        )
        self.seconds += time.perf_counter() - start


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation PSNR and restores them at the end."""

    def __init__(self):
        super().__init__()
        self.best, self.best_epoch, self.weights = -math.inf, -1, None

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_psnr"] > self.best:
            self.best, self.best_epoch = logs["val_psnr"], epoch
            self.weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the epoch in which the wall-clock budget runs out."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.start, self.ended_training = seconds, None, False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def fraction_used(self) -> float:
        return (time.perf_counter() - self.start) / self.seconds if self.start else 0.0

    def on_epoch_end(self, epoch, logs=None):
        if self.fraction_used() >= 1:
            self.model.stop_training = True
            self.ended_training = True


class Schedule(keras.callbacks.Callback):
    """Sets the learning rate each batch from the progress through epochs or the time budget."""

    def __init__(self, kind, base_rate, epochs, steps_per_epoch, budget=None):
        super().__init__()
        self.kind, self.base_rate, self.budget = kind, base_rate, budget
        self.total_steps, self.step = max(1, epochs * steps_per_epoch), 0

    def rate(self, progress: float) -> float:
        progress = min(1.0, progress)
        if self.kind == "cosine":
            return self.base_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
        if self.kind == "step":
            return self.base_rate * 0.1 ** min(2, int(progress * 3))
        return self.base_rate

    def on_train_batch_begin(self, batch, logs=None):
        progress = self.step / self.total_steps
        if self.budget is not None:
            progress = max(progress, self.budget.fraction_used())
        self.model.optimizer.learning_rate.assign(self.rate(progress))
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())


class EpochPrinter(keras.callbacks.Callback):
    """Prints one line per epoch: losses, validation PSNR/SSIM and time."""

    def __init__(self, epochs, write=print):
        super().__init__()
        self.epochs, self.write, self.start = epochs, write, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        self.write(
            f"epoch {epoch + 1:>3}/{self.epochs}  loss {logs['loss']:.5f}  "
            f"val_loss {logs['val_loss']:.5f}  val_psnr {logs['val_psnr']:.2f} dB  "
            f"val_ssim {logs['val_ssim']:.4f}  {seconds:.1f}s"
        )
