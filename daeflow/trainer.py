"""Fit a model on a PairSource and return the result; knows nothing about MLflow."""

import math
import time
from dataclasses import dataclass, field

from daeflow.config import TrainOptions
from daeflow.pipeline import training_dataset


@dataclass
class TrainResult:
    """What training produced: the model holding its best weights, and how it went."""

    model: object
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_psnr: float = math.nan
    stop_reason: str = "epochs"
    train_seconds: float = 0.0  # the whole fit, validation included
    images_per_second: float = 0.0  # steady training throughput, validation excluded


def compile_model(model, options: TrainOptions) -> None:
    """Adam on mean squared error, XLA as the options say."""
    import keras

    jit = "auto" if options.jit_compile is None else options.jit_compile
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=options.learning_rate),
        loss="mse",
        jit_compile=jit,
    )


def _callbacks(val, options, steps, write):
    from daeflow import callbacks as cb

    validator = cb.Validator(val.source, val.indices, options.batch_size)
    best = cb.BestWeights()
    budget = cb.TimeBudget(options.time_budget) if options.time_budget else None
    chain = [validator, best]
    if options.lr_schedule != "constant" or budget:
        chain.append(
            cb.Schedule(options.lr_schedule, options.learning_rate, options.epochs, steps, budget)
        )
    if options.early_stopping:
        import keras

        chain.append(
            keras.callbacks.EarlyStopping("val_psnr", mode="max", patience=options.early_stopping)
        )
    if budget:
        chain.append(budget)
    if write:
        chain.append(cb.EpochPrinter(options.epochs, write))
    return validator, best, budget, chain


def fit(
    model,
    train,
    val,
    options: TrainOptions,
    extra_callbacks=(),
    write=print,
) -> TrainResult:
    """Train on the `train` subset, validate on `val` each epoch, keep the best weights."""
    import keras

    from daeflow.callbacks import EpochTimer

    keras.utils.set_random_seed(options.seed)
    compile_model(model, options)
    repeats = options.patches_per_image if options.patch_size else 1
    dataset = training_dataset(
        train.source,
        train.indices,
        options.batch_size,
        options.seed,
        options.patch_size,
        options.augment,
        repeats,
    )
    images_per_epoch = len(train) * repeats
    validator, best, budget, chain = _callbacks(
        val, options, math.ceil(images_per_epoch / options.batch_size), write
    )
    timer = EpochTimer()  # first, so it stops the clock before validation starts
    start = time.perf_counter()
    history = model.fit(
        dataset,
        epochs=options.epochs,
        verbose=0,
        shuffle=False,
        callbacks=[timer, *chain, *extra_callbacks],
    )
    return TrainResult(
        model=model,
        history=[
            dict(zip(history.history, v, strict=True))
            for v in zip(*history.history.values(), strict=True)
        ],
        best_epoch=best.best_epoch,
        best_val_psnr=best.best,
        stop_reason=_stop_reason(len(history.epoch), options, budget),
        train_seconds=time.perf_counter() - start,
        images_per_second=images_per_epoch / timer.steady_seconds(),
    )


def _stop_reason(epochs_run: int, options: TrainOptions, budget) -> str:
    if budget is not None and budget.ended_training:
        return "time_budget"
    if epochs_run < options.epochs:
        return "early_stopping"
    return "epochs"
