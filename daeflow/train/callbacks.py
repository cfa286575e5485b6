"""Keras callbacks of the trainer: validation PSNR, NaN guard, best weights, early stopping,
time budget, learning-rate schedule, history, progress.

All they remember between epochs lives in one TrainingState, so that a checkpoint holds
it and a resumed run continues exactly. Epochs are numbered from 1 wherever a user sees
them (state.epoch is the number of epochs completed).
"""

import math
import time
from dataclasses import asdict, dataclass, field

from daeflow.errors import TrainingError
from daeflow.infer.evaluation import evaluate
from daeflow.runtime.backend import load_keras
from daeflow.runtime.signals import raise_requested_stop
from daeflow.runtime.tiles import MARGIN
from daeflow.train import objectives

keras = load_keras()


@dataclass
class TrainingState:
    """What training has done so far, besides the model's and the optimizer's weights."""

    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)  # each completed epoch's logs
    best_val_psnr: float = -math.inf  # at the best epoch (nan without clean targets)
    best_val_loss: float = math.inf  # at the best epoch
    best_epoch: int = 0
    epochs_without_gain: int = 0
    elapsed: float = 0.0  # seconds of training before the current stretch (time budget)
    epoch_seconds: list[float] = field(default_factory=list)  # training part of each epoch
    stop_reason: str = "epochs"
    best_weights: list | None = field(default=None, repr=False)  # not part of as_dict

    def as_dict(self) -> dict:
        """JSON-ready, without the weights."""
        values = asdict(self)
        values.pop("best_weights")
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingState":
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


class SignalCheck(keras.callbacks.Callback):
    """Stops training for a Ctrl-C or SIGTERM whose exception was swallowed where it landed."""

    # A batch-end hook would make Keras wait for each batch's loss: batch begin costs nothing.
    def on_train_batch_begin(self, batch, logs=None):
        raise_requested_stop()

    def on_epoch_end(self, epoch, logs=None):
        raise_requested_stop()


class EpochTimer(keras.callbacks.Callback):
    """Seconds each epoch spends training, before any end-of-epoch work such as validation."""

    def __init__(self, state: TrainingState):
        super().__init__()
        self.state, self.start = state, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch_seconds.append(time.perf_counter() - self.start)


def steady_seconds(epoch_seconds: list[float]) -> float:
    """Median epoch time, leaving out the first epoch (tracing) when there are others."""
    times = epoch_seconds[1:] or epoch_seconds
    return max(float(sorted(times)[len(times) // 2]), 1e-9) if times else 1e-9


class AveragedWeights(keras.callbacks.Callback):
    """With --ema-momentum, each epoch ends with the optimizer's moving average of the
    weights in the model, for whatever follows (validation, the best weights, checkpoints,
    pictures); the next epoch trains on from the weights as trained. A checkpoint is written
    at an epoch's end, so a resumed run starts with the averages in the model."""

    def __init__(self, state: TrainingState):
        super().__init__()
        self.state, self.averaged = state, False

    def on_train_begin(self, logs=None):
        self.averaged = self.state.epoch > 0  # resumed from an epoch's end

    def on_epoch_begin(self, epoch, logs=None):
        if self.averaged:
            self._swap()

    def on_epoch_end(self, epoch, logs=None):
        if not self.averaged:
            self._swap()

    def _swap(self) -> None:
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        for variable, average in zip(
            optimizer._trainable_variables, optimizer._model_variables_moving_average, strict=True
        ):
            trained = variable.numpy()
            variable.assign(average)
            average.assign(trained)
        self.averaged = not self.averaged


class Validator(keras.callbacks.Callback):
    """Adds val_loss, and val_psnr and val_ssim where the validation images have clean
    versions (per-image means), to the logs of every `every`-th epoch and of the last one
    (the epoch limit, or a stop already decided, such as the time budget's).

    With clean targets val_loss is the mean squared error against them; without, it is the
    objective's own loss on the noisy validation images, its random parts fixed per image.
    """

    def __init__(
        self,
        source,
        indices,
        batch_size,
        multiple=1,
        objective=None,
        params=None,
        seed=0,
        margin=MARGIN,
        every=1,
    ):
        super().__init__()
        self.source, self.indices, self.batch_size = source, indices, batch_size
        self.multiple, self.objective, self.seed = multiple, objective, seed
        self.margin = margin  # the model's tile margin, for images validated by tiles
        self.objective_params = params or {}  # not `params`: Keras sets that of a callback
        self.every = every

    def due(self, epoch: int) -> bool:
        """Whether the epoch (counted from 0, as Keras does) is validated."""
        last = epoch + 1 >= self.params.get("epochs", epoch + 1) or self.model.stop_training
        return last or (epoch + 1) % self.every == 0

    def on_epoch_end(self, epoch, logs=None):
        if not self.due(epoch):
            return
        objective = self.objective
        if objective is not None and not objective.needs_clean:
            losses = objectives.loss_per_image(
                self.model, self.source, self.indices, objective, self.objective_params,
                self.seed, self.multiple,
            )  # fmt: skip
            logs.update(val_loss=float(losses.mean()))
        if self.source.has_clean:
            scores = evaluate(
                self.model, self.source, self.indices, self.batch_size, self.multiple,
                margin=self.margin,
            )  # fmt: skip
            means = scores.means("val_")
            logs.update(val_psnr=means["val_psnr"], val_ssim=means["val_ssim"])
            logs.setdefault("val_loss", means["val_mse"])


class StopOnNaN(keras.callbacks.Callback):
    """Ends training with an error when the loss or validation becomes NaN or infinite."""

    def __init__(self, learning_rate):
        super().__init__()
        self.learning_rate = learning_rate

    def on_epoch_end(self, epoch, logs=None):
        bad = [k for k in ("loss", "val_loss") if k in logs and not math.isfinite(logs[k])]
        if bad:
            raise TrainingError(
                f"Training diverged: {bad[0]} became {logs[bad[0]]} in epoch {epoch + 1}. "
                f"Lower --learning-rate (was {self.learning_rate:g}) or check the data."
            )


class Schedule(keras.callbacks.Callback):
    """Sets the learning rate each batch from the progress through epochs or the time budget:
    a linear warm-up over the first `warmup` of it, then the schedule over the rest.

    The optimizer's rate is assigned when it has moved by more than STEP of itself (an assign
    costs about as much as 2 % of a small network's training step)."""

    STEP = 1e-3

    def __init__(self, kind, base_rate, epochs, steps_per_epoch, budget=None, warmup=0.0):
        super().__init__()
        self.kind, self.base_rate, self.budget, self.warmup = kind, base_rate, budget, warmup
        self.steps_per_epoch = steps_per_epoch
        self.total_steps, self.epoch = max(1, epochs * steps_per_epoch), 0
        self.assigned = None  # the rate last given to the optimizer

    def rate(self, progress: float) -> float:
        progress = min(1.0, progress)
        if progress < self.warmup:
            return self.base_rate * progress / self.warmup
        progress = (progress - self.warmup) / (1 - self.warmup)
        if self.kind == "cosine":
            return self.base_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
        if self.kind == "step":
            return self.base_rate * 0.1 ** min(2, int(progress * 3))
        return self.base_rate

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        progress = (self.epoch * self.steps_per_epoch + batch) / self.total_steps
        if self.budget is not None:
            progress = max(progress, self.budget.fraction_used())
        rate, assigned = self.rate(progress), self.assigned
        if assigned is None or abs(rate - assigned) > self.STEP * max(rate, assigned):
            self.model.optimizer.learning_rate.assign(rate)
            self.assigned = rate

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())


class Bookkeeper(keras.callbacks.Callback):
    """Records each finished epoch in the state: logs, best weights, early stopping, time."""

    def __init__(self, state: TrainingState, patience: int | None = None, monitor="val_psnr"):
        super().__init__()
        self.state, self.patience, self.monitor = state, patience, monitor
        self.before, self.start = state.elapsed, None

    def better(self, logs) -> bool:
        """Whether this epoch beats the best so far: higher PSNR, or lower loss."""
        if self.monitor == "val_psnr":
            return logs["val_psnr"] > self.state.best_val_psnr
        return logs["val_loss"] < self.state.best_val_loss

    def on_train_begin(self, logs=None):
        self.before, self.start = self.state.elapsed, time.perf_counter()

    def used(self) -> float:
        """Seconds of training so far, the earlier stretches of a resumed run included."""
        return self.before + (time.perf_counter() - self.start if self.start else 0.0)

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        state.epoch = epoch + 1
        state.history.append({k: float(v) for k, v in logs.items()})
        state.elapsed = self.used()
        if "val_loss" not in logs:
            return  # not a validated epoch (--val-every)
        if self.better(logs):
            state.best_val_psnr = float(logs.get("val_psnr", math.nan))
            state.best_val_loss, state.best_epoch = float(logs["val_loss"]), epoch + 1
            state.best_weights = self.model.get_weights()
        state.epochs_without_gain = epoch + 1 - state.best_epoch
        stopping = self.model.stop_training  # for another reason, such as the time budget
        if self.patience and state.epochs_without_gain >= self.patience and not stopping:
            self.model.stop_training = True
            state.stop_reason = "early_stopping"

    def on_train_end(self, logs=None):
        if self.state.best_weights is not None:
            self.model.set_weights(self.state.best_weights)


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the epoch in which the wall-clock budget runs out."""

    def __init__(self, seconds, bookkeeper: Bookkeeper):
        super().__init__()
        self.seconds, self.bookkeeper = seconds, bookkeeper

    def fraction_used(self) -> float:
        return self.bookkeeper.used() / self.seconds

    def on_epoch_end(self, epoch, logs=None):
        if self.fraction_used() >= 1:
            self.model.stop_training = True
            self.bookkeeper.state.stop_reason = "time_budget"


class EpochPrinter(keras.callbacks.Callback):
    """Prints one line per epoch: losses, validation PSNR/SSIM and time."""

    def __init__(self, epochs, write=print):
        super().__init__()
        self.epochs, self.write, self.start = epochs, write, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        of = f"/{self.epochs}" if self.epochs is not None else ""
        scores = (
            f"val_psnr {logs['val_psnr']:.2f} dB  val_ssim {logs['val_ssim']:.4f}  "
            if "val_psnr" in logs
            else ""
        )
        validation = f"val_loss {logs['val_loss']:.5f}  " if "val_loss" in logs else ""
        self.write(
            f"epoch {epoch + 1:>3}{of}  loss {logs['loss']:.5f}  {validation}{scores}{seconds:.1f}s"
        )


class StopWhen(keras.callbacks.Callback):
    """Stops training after an epoch for which `judge(epoch, logs)` says so (epochs from 1).

    The judge sees the epoch's complete logs; the stop is recorded as `reason` (e.g. a
    hyperparameter search pruning a trial that is clearly worse than others).
    """

    def __init__(self, judge, state: TrainingState, reason: str):
        super().__init__()
        self.judge, self.state, self.reason = judge, state, reason

    def on_epoch_end(self, epoch, logs=None):
        if self.judge(epoch + 1, logs):
            self.model.stop_training = True
            self.state.stop_reason = self.reason
