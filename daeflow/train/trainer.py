"""Fit a model on a PairSource and return the result; knows nothing about MLflow."""

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from daeflow.config import TrainOptions
from daeflow.runtime.tiles import MARGIN
from daeflow.train import objectives
from daeflow.train.pipeline import numpy_noise_note, steps_per_epoch, training_dataset


@dataclass
class TrainResult:
    """What training produced: the model holding its best weights, and how it went."""

    model: object
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # counted from 1, as printed; 0 if no epoch ran
    best_val_psnr: float = math.nan
    best_val_loss: float = math.nan
    stop_reason: str = "epochs"
    train_seconds: float = 0.0  # training and validation, all stretches of a resumed run
    images_per_second: float = 0.0  # steady training throughput, validation excluded


def compile_model(model, options: TrainOptions, optimizer=None) -> None:
    """Adam on the objective's loss (mean squared error unless it has its own), keeping the
    moving average of the weights with --ema-momentum, XLA as the options say (a resumed run
    keeps its optimizer)."""
    import keras

    jit = "auto" if options.jit_compile is None else options.jit_compile
    if optimizer is None and options.ema_momentum:
        from daeflow.train.averaging import AveragingAdam

        optimizer = AveragingAdam(options.ema_momentum, learning_rate=options.learning_rate)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate=options.learning_rate),
        loss=objectives.keras_loss(objectives.chosen(options), options.objective_params),
        jit_compile=jit,
    )


@dataclass
class Checkpointing:
    """Where and how often checkpoints are written, and what to do with each new one."""

    folder: Path
    every_epochs: int = 1
    every_seconds: float | None = None
    keep: int = 0
    on_written: object = None


def _callbacks(val, options, steps, multiple, write, extra, state, checkpointing, margin):
    from daeflow.train import callbacks as cb

    objective = objectives.chosen(options)
    bookkeeper = cb.Bookkeeper(state, options.early_stopping, objectives.monitor(objective))
    budget = cb.TimeBudget(options.time_budget, bookkeeper) if options.time_budget else None
    chain = [
        cb.SignalCheck(),
        cb.EpochTimer(state),  # stops the clock before validation starts
        # what follows sees the averaged weights at an epoch's end
        *([cb.AveragedWeights(state)] if options.ema_momentum else []),
        # decides whether this epoch is the last one before the Validator asks
        *([budget] if budget else []),
        cb.Validator(
            val.source,
            val.indices,
            options.batch_size,
            multiple,
            objective,
            options.objective_params,
            options.seed,
            margin,
            options.val_every,
        ),  # fmt: skip
        cb.StopOnNaN(options.learning_rate),
    ]
    if options.lr_schedule != "constant" or options.lr_warmup or budget:
        chain.append(
            cb.Schedule(
                options.lr_schedule,
                options.learning_rate,
                options.epoch_limit,
                steps,
                budget,
                options.lr_warmup,
            )
        )
    # The caller's callbacks see each epoch's complete logs and the weights of that epoch,
    # before the bookkeeper puts the best ones back at the end.
    chain += [*extra, bookkeeper]
    if checkpointing is not None:
        from daeflow.train.checkpoints import Checkpointer

        chain.append(
            Checkpointer(
                checkpointing.folder,
                state,
                checkpointing.every_epochs,
                checkpointing.every_seconds,
                checkpointing.keep,
                checkpointing.on_written,
            )
        )
    if write:
        chain.append(cb.EpochPrinter(options.epochs, write))  # None: no epoch limit
    return chain


def fit(
    model,
    train,
    val,
    options: TrainOptions,
    extra_callbacks=(),
    write=print,
    multiple: int = 1,
    state=None,
    checkpointing: Checkpointing | None = None,
    placement=None,
    margin: int = MARGIN,
) -> TrainResult:
    """Train on the `train` subset, validate on `val` each epoch, keep the best weights.

    `multiple` is the size multiple of the architecture (for validating large images tile
    by tile); `extra_callbacks` see each epoch's logs after validation, e.g. to track them.
    `state` (a TrainingState) is what an earlier stretch of the run did: training goes on
    from its epoch with `model` already compiled; the caller keeps it, so that it still
    holds the best weights if training is stopped by a signal. `placement` (devices.Placement)
    is where the model was built: it is compiled there too. `margin`: the tile margin of the
    architecture with its params, for validating large images by tiles.
    """
    import keras

    from daeflow.train.callbacks import TrainingState, steady_seconds

    if state is None:
        state = TrainingState()
    if state.epoch == 0:
        keras.utils.set_random_seed(options.seed)
    scope = placement.scope() if placement is not None else contextlib.nullcontext()
    with scope:
        compile_model(model, options, model.optimizer if state.epoch else None)
    repeats = options.patches_per_image if options.patch_size else 1
    steps = steps_per_epoch(len(train), options.batch_size, repeats)
    dataset = training_dataset(
        train.source,
        train.indices,
        options.batch_size,
        options.seed,
        options.patch_size,
        options.augment,
        repeats,
        state.epoch,
        options.epoch_limit,
        objectives.chosen(options),
        options.objective_params,
    )
    note = numpy_noise_note(train.source)
    if note and write:
        write(note)
    chain = _callbacks(
        val, options, steps, multiple, write, extra_callbacks, state, checkpointing, margin
    )
    state.stop_reason = "epochs"
    if state.epoch >= options.epoch_limit and state.best_weights is not None:
        model.set_weights(state.best_weights)  # nothing left to train: the best weights
    if state.epoch < options.epoch_limit:
        model.fit(
            dataset,
            epochs=options.epoch_limit,
            initial_epoch=state.epoch,
            steps_per_epoch=steps,
            verbose=0,
            shuffle=False,  # the pipeline orders each epoch itself
            callbacks=chain,
        )
    return TrainResult(
        model=model,
        history=list(state.history),
        best_epoch=state.best_epoch,
        best_val_psnr=state.best_val_psnr,
        best_val_loss=state.best_val_loss,
        stop_reason=state.stop_reason,
        train_seconds=state.elapsed,
        images_per_second=len(train) * repeats / steady_seconds(state.epoch_seconds),
    )
