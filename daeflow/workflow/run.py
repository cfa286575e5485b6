"""`daeflow run`: the one place where plugin, data, train, infer and track meet for a run."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daeflow import __version__
from daeflow.config import RunConfig, described_noise, patch_shape
from daeflow.data.axes import axes_of_dims
from daeflow.data.digest import sha256_digest
from daeflow.data.prepare import CLEAN_USE, PreparedData, prepare_data
from daeflow.data.ranges import RANGE_RULE
from daeflow.plugin import building, hyperparams
from daeflow.plugin.registry import get_architecture, get_objective
from daeflow.plugin.specs import require_dims
from daeflow.track.names import (
    TAG_COMMAND,
    TAG_COMMAND_LINE,
    TAG_EPOCHS,
    TAG_HOST,
    TAG_PID,
    TAG_STOP_REASON,
    TAG_TRAIN_DIGEST,
    tag_digest,
)
from daeflow.workflow.full_disks import full_disks_said, refuse_full_disks, same_command_again
from daeflow.workflow.run_folder import RunFolder

PROBE_PICTURES = 10


def probe_every(epochs: int | None) -> int | None:
    """Probe grids every ceil(epochs / PROBE_PICTURES) epochs (besides the first and last
    epoch); None, with no epoch limit: at epochs 1, 2, 4, 8, ... (see ImageLogger)."""
    return None if epochs is None else -(-epochs // PROBE_PICTURES)


@dataclass
class RunOutcome:
    """What a finished run reports."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_uri: str
    metrics: dict = field(default_factory=dict)
    stop_reason: str = "epochs"
    best_epoch: int = 0
    notes: list = field(default_factory=list)  # lines the CLI prints after the numbers
    baselines: list = field(default_factory=list)  # classical baselines of the same data


@dataclass
class PreparedRun:
    """Everything validated and built before an MLflow run starts."""

    config: RunConfig
    provided: object
    data: PreparedData
    model: object
    precision: object  # train.precision.Precision
    placement: object  # runtime.devices.Placement
    objective: object = None  # the training objective's spec

    def where_params(self) -> dict:
        """The precision chosen, why, and the devices: MLflow params of the run."""
        batch = self.config.train.batch_size
        return {
            "precision.policy": self.precision.policy,
            "precision.reason": self.precision.reason,
            "devices.count": self.placement.count,
            "devices.names": ",".join(self.placement.names),
            "devices.batch_per_device": self.placement.batch_per_device(batch),
        }


def resolve_arch(name: str, given: dict):
    """The provided architecture and its validated hyperparameters."""
    provided = get_architecture(name)
    params = hyperparams.resolve(provided.spec.hyperparams, given, f"Architecture {name!r}")
    return provided, params


def resolve_objective(train) -> object:
    """The training objective that TrainOptions name (its spec); their objective_params
    become its validated parameters."""
    spec = get_objective(train.objective).spec
    train.objective_params = hyperparams.resolve(
        spec.params, train.objective_params, f"Objective {spec.name!r}"
    )
    return spec


def prepare(
    config: RunConfig, write=print, provided=None, data: PreparedData | None = None
) -> PreparedRun:
    """Validate the architecture, its parameters and the data; build the model. Logs nothing.

    `data` is the same data prepared already for this architecture's size multiple and patch
    size (a search's trials validate and hash the data once per worker).
    """
    if provided is None:
        provided, config.arch_params = resolve_arch(config.arch, config.arch_params)
    params, arch = config.arch_params, provided.spec
    objective = resolve_objective(config.train)
    if data is None:
        data = prepare_data(
            config.data, arch, config.train.seed, config.train.patch_size, objective=objective
        )
        for line in data.lines:
            write(line)
    dims = data.source.spatial_dims
    require_dims(arch, dims)
    probe = building.probe_size(
        data.source.image_shape, arch.size_multiple, patch_shape(config.train.patch_size, dims)
    )
    from daeflow.runtime import devices, precision
    from daeflow.runtime.backend import load_keras

    keras = load_keras()
    placement = devices.place(config.train.devices, config.train.batch_size)
    chosen = precision.choose(config.train.precision)
    write(f"Precision: {chosen.policy} ({chosen.reason}).")
    if placement.count > 1:
        write(
            f"Devices: {', '.join(placement.names)} (MirroredStrategy), "
            f"{placement.batch_per_device(config.train.batch_size)} images each per batch."
        )
    keras.utils.set_random_seed(config.train.seed)  # the initial weights follow the seed
    with placement.scope():
        model = building.build_checked(
            provided, params, data.source.image_shape[-1], probe, chosen.policy
        )
    from daeflow.track.flavor import custom_object_modules, not_plugin_modules

    for module in not_plugin_modules(custom_object_modules(model)):
        write(
            f"Warning: this model's layers come from {module!r}, which is not a module of an "
            "installed daeflow plugin, so daeflow will refuse to load the logged model. "
            "Package the layers as a plugin (docs/plugins.md)."
        )
    return PreparedRun(config, provided, data, model, chosen, placement, objective)


def _versions(provided) -> dict:
    import importlib.metadata as md

    return {
        "version.daeflow": __version__,
        "version.tensorflow": md.version("tensorflow"),
        "version.keras": md.version("keras"),
        "version.mlflow": md.version("mlflow"),
        "plugin.name": provided.plugin.name,
        "plugin.distribution": provided.plugin.distribution,
        "plugin.version": provided.plugin.version,
    }


def log_inputs(data: PreparedData) -> str:
    """Dataset inputs with content digests, the split indices and the noise profile.

    Returns the digest of the training data (the whole array the split was cut from).
    """
    from daeflow.track import logs

    digests = data.digests  # computed once, however many runs train on these data
    for role, clean, noisy, source in data.pairs:
        if role not in digests:
            digests[role] = sha256_digest(clean, *([noisy] if noisy is not None else []))
        digest = digests[role]
        logs.set_tags({tag_digest(role): digest})
        context = "training" if role == "train" else role
        name = f"{role}:{Path(str(source)).name}"
        logs.log_dataset(clean, noisy, digest, name, str(source), context)
    if data.split is not None:
        logs.log_json(data.split.as_dict(), "split_indices.json")
    # One number each, describing the data: params, not metrics that crowd every chart list.
    logs.log_params({f"data.{k}": round(v, 6) for k, v in data.noise_profile.items()})
    return digests["train"]


def trainable_params(model) -> float:
    """How many weights training can change."""
    return float(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


@dataclass
class Trained:
    """What one training run inside an MLflow run produced."""

    result: object
    metrics: dict
    model_uri: str
    notes: list
    baselines: list
    folder: object = None  # the run's RunFolder, removed once the run has ended


def model_metadata(prepared: PreparedRun) -> dict:
    """What a logged model carries about its data and architecture."""
    arch, data = prepared.provided.spec, prepared.data
    radius = arch.radius(prepared.config.arch_params)
    return {
        "data_range": data.data_range,
        "data_dtype": data.params["data.dtype"],
        "arch": arch.name,
        "size_multiple": arch.size_multiple,
        "output_range": arch.output_range,
        **({} if radius is None else {"receptive_radius": radius}),  # sets its tile margin
        "trained_with": trained_with(prepared),
        "spatial_dims": data.source.spatial_dims,
        "axes": axes_of_dims(data.source.spatial_dims),
    }


def trained_with(prepared: PreparedRun) -> dict:
    """The objective, its parameters and (for objectives that use one) the noise model a
    model was trained with: what `denoise --recorrupted-average` needs of an r2r model."""
    train, data = prepared.config.train, prepared.config.data
    found = {"objective": train.objective, "objective_params": dict(train.objective_params)}
    objective = prepared.objective
    if objective is not None and not objective.needs_clean and data.noise:
        found.update(noise=data.noise, noise_params=dict(data.noise_params))
    return found


def log_start(prepared: PreparedRun) -> str:
    """Params, inputs and where the run is trained; returns the training data's digest."""
    import os
    import socket

    from daeflow.track import logs
    from daeflow.workflow import run_report

    config, data = prepared.config, prepared.data
    logs.log_params(
        {
            **config.params(),
            **data.params,
            "data.spatial_dims": data.source.spatial_dims,
            **prepared.where_params(),
            **_versions(prepared.provided),
        }
    )
    logs.set_tags(
        {
            TAG_COMMAND_LINE: run_report.command_line(),
            TAG_HOST: socket.gethostname(),
            TAG_PID: str(os.getpid()),
            TAG_EPOCHS: config.train.epochs_asked(),
        }
    )
    return log_inputs(data)


def train_in_active_run(
    prepared: PreparedRun,
    write=print,
    checkpoint=None,
    digest: str | None = None,
    also=(),
    lease: RunFolder | None = None,
) -> Trained:
    """Log params and inputs, train with checkpoints, test once, log the model and report.

    With `checkpoint` (a resumed run), training goes on from it and nothing logged at the
    start is logged again. Per-epoch values go through the run's journal, so the tracking
    server may come and go while training runs. SIGTERM or Ctrl-C stop training, log the
    best model so far and raise Interrupted with the command that takes the run further.
    A full disk (the run's folder, the sqlite file, the artifact folder) raises DiskFull
    naming it. MLflow's own log lines go to the folder's log file, not the terminal.
    `also`: functions of the TrainingState that return more Keras callbacks. `lease`: the
    run's folder with its lease already held (a resumed run takes it before preparing).
    """
    from daeflow.track import log_file, runs

    run_id = runs.active_run_id()
    resumed = checkpoint is not None
    state = checkpoint.state if resumed else None
    then = lambda: _then(run_id, state, resumed)  # noqa: E731 - read when a disk fills
    with full_disks_said(RunFolder(run_id), then):
        folder = lease if lease is not None else RunFolder(run_id).take_lease()
        try:
            with log_file.off_terminal(folder.log):
                if state is None:
                    from daeflow.train.callbacks import TrainingState

                    state = TrainingState()
                trained = _train(prepared, write, checkpoint, state, digest, also, folder)
        except BaseException:
            if lease is None:
                folder.release()  # the process goes on (a notebook, a sweep): let others in
            raise
        if lease is None and trained.folder is None:
            folder.release()  # kept for `daeflow sync`, which takes it again
        return trained


def _train(prepared, write, checkpoint, state, digest, also, folder: RunFolder) -> Trained:
    from daeflow.errors import Interrupted
    from daeflow.runtime import disks
    from daeflow.track import callbacks, journal, queries, runs, store, uploads
    from daeflow.track.names import epoch_metric
    from daeflow.train import checkpoints, trainer
    from daeflow.workflow.publishing import flush_wait, kept_for_sync, publish_kept
    from daeflow.workflow.run_report import probe_renderer

    config, data, arch = prepared.config, prepared.data, prepared.provided.spec
    multiple = arch.size_multiple
    run_id = folder.run_id
    folder.remember_store(store.tracking_uri())
    if checkpoint is None:
        digest = log_start(prepared)
        model = prepared.model
    else:
        model = checkpoint.model
    write(
        f"Training {arch.name} on {len(data.train)} "
        f"{'volumes' if data.source.spatial_dims == 3 else 'images'} "
        f"(validation {len(data.val)}, test {len(data.test)})"
        + (f", from epoch {state.epoch + 1}." if state.epoch else ".")
    )
    log = journal.Journal(run_id, folder.journal)
    logged = 0  # epochs logged already: a resumed run may train again the ones after its checkpoint
    if checkpoint is not None:
        logged = max(log.last_step(), queries.last_step(run_id, epoch_metric("loss")))
    render_probes = probe_renderer(data.val, multiple)
    every = probe_every(config.train.epochs)
    tracked = [
        callbacks.EpochLogger(log, logged),
        callbacks.ImageLogger(render_probes, log, key="probe", every=every, logged=logged),
        *(make(state) for make in also),
    ]
    keep = config.train.keep_checkpoints
    uploader = uploads.CheckpointUploader(
        run_id, after=lambda: checkpoints.prune(folder.checkpoints, keep)
    )
    every_epochs, every_seconds = config.train.checkpoint_schedule()
    checkpointing = trainer.Checkpointing(
        folder.checkpoints, every_epochs, every_seconds, keep, uploader.submit
    )
    try:
        result = trainer.fit(
            model, data.train, data.val, config.train, tracked, write, multiple, state,
            checkpointing, prepared.placement, arch.tile_margin(config.arch_params),
        )  # fmt: skip
    except (KeyboardInterrupt, Interrupted) as stop:
        runs.begin_shutdown(write)  # until tracked_run has marked the run KILLED
        raise stopped(stop, prepared, model, state, uploader, log, write) from None
    except Exception:
        wind_down(uploader, log)  # what was recorded reaches the store before the run ends
        raise
    try:
        with disks.naming(folder.results):  # a write that fails on a full disk names the folder
            trained = conclude(prepared, result, digest, render_probes, folder)
    except (KeyboardInterrupt, Interrupted) as stop:
        runs.begin_shutdown(write)
        raise stopped(stop, prepared, model, state, uploader, log, write, late=True) from None
    try:
        wait = flush_wait()
        if log.pending() and not log.stuck_on_full_disk():
            write(
                f"Waiting up to {wait:.0f} s for the tracking server to take the last "
                f"{log.pending()} per-epoch records."
            )
        left = log.close(wait)
        if left:
            what = f"{left} per-epoch records could not be sent; {log.last_error}"
            raise kept_for_sync(folder, what, log.last_failure)
        trained.model_uri = publish_kept(
            folder, result.model, model_metadata(prepared), prepared.provided.plugin.distribution,
            wait,
        )  # fmt: skip
        uploader.close(wait)
    except (KeyboardInterrupt, Interrupted) as stop:
        runs.begin_shutdown(write)
        raise stopped_publishing(stop, folder) from None
    if uploader.owed or uploader.worker.is_alive():  # they wait for `daeflow sync`
        trained.notes.append(
            f"The tracking server did not take the last checkpoints; they are kept in "
            f"{folder.path}. "
            f"Upload them with: daeflow sync {run_id[:8]}"
        )
    else:
        trained.folder = folder  # removed once the run has ended
    return trained


def wind_down(uploader, log, wait: float | None = None) -> None:
    """Give the uploads and the journal a bounded time to finish; their failures are not
    the news (the error that stops the run is)."""
    import contextlib

    from daeflow.workflow.publishing import SHUTDOWN_WAIT

    wait = SHUTDOWN_WAIT if wait is None else wait
    with contextlib.suppress(Exception):
        uploader.close(wait)
    with contextlib.suppress(Exception):
        log.close(wait)


def _signal_name(stop) -> str:
    return "Ctrl-C" if isinstance(stop, KeyboardInterrupt) else "SIGTERM"


def stopped(stop, prepared: PreparedRun, model, state, uploader, log, write=print, late=False):
    """After SIGTERM or Ctrl-C in training (or, `late`, in the final test evaluation): wait
    a bounded time for uploads, log the best model so far; the Interrupted error that says
    so, with the command that takes the run further."""
    from daeflow.errors import Interrupted
    from daeflow.track import runs
    from daeflow.workflow.status import next_step

    run_id = runs.active_run_id()
    signal_name = _signal_name(stop)
    if late:
        write(f"{signal_name}: the final test evaluation stopped; saving what the run has.")
    else:
        write(
            f"{signal_name}: training stopped in epoch {state.epoch + 1}; saving what the run has."
        )
    wind_down(uploader, log)
    saved = ""
    if state.best_weights is not None:
        model.set_weights(state.best_weights)
        try:
            flavor_log_model(model, prepared)
            runs.set_tag_of(run_id, TAG_STOP_REASON, "interrupted")
            saved = f", its best model (epoch {state.best_epoch}) logged"
        except Exception:  # the server is away: the best weights are in the checkpoints
            saved = f"; the best model (epoch {state.best_epoch}) is kept in its checkpoints"
    when = "during the final test evaluation, " if late else ""
    words, command = next_step(run_id, "KILLED")
    return Interrupted(
        f"Stopped by {signal_name} {when}after epoch {state.epoch}; run {run_id} is marked "
        f"KILLED{saved}. {words}: {command}"
    )


def stopped_publishing(stop, folder: RunFolder):
    """After SIGTERM or Ctrl-C while the results and the model went to the store: they are
    kept in the run's folder; the Interrupted error with the command that uploads them."""
    from daeflow.errors import Interrupted
    from daeflow.workflow.status import next_step

    words, command = next_step(folder.run_id, "KILLED")
    return Interrupted(
        f"Stopped by {_signal_name(stop)} while the results and the model were logged; run "
        f"{folder.run_id} is marked KILLED; they are kept in {folder.path}. {words}: {command}"
    )


def _then(run_id: str, state, resumed: bool) -> str:
    """What to type once there is room again: the same command for a run that trained no
    epoch yet, else what `daeflow runs` shows for the run."""
    from daeflow.workflow.status import next_command

    if not resumed and (state is None or state.epoch == 0):
        return same_command_again()
    return f"run: {next_command(run_id, 'FAILED')}"


def forget_local(trained: Trained) -> None:
    """Remove the run's local folder: the tracking store holds everything now."""
    if trained.folder is not None:
        trained.folder.remove()


def flavor_log_model(model, prepared: PreparedRun):
    """Log the model in daeflow's flavour; returns MLflow's ModelInfo."""
    from daeflow.track import flavor

    return flavor.log_model(model, model_metadata(prepared), prepared.provided.plugin.distribution)


def scored_on(data: PreparedData, params: dict, digest: str):
    """What a run's test numbers are measured on (data, noise, test split, data range),
    from the params it logs (`params`, besides the data's) and its data's digests."""
    from daeflow.track import comparable

    tags = {TAG_TRAIN_DIGEST: digest}
    if "test" in data.digests:
        tags[comparable.TAG_TEST_DIGEST] = data.digests["test"]
    return comparable.scored_on({**params, **data.params}, tags)


def conclude(prepared: PreparedRun, result, digest: str, render_probes, folder) -> Trained:
    """Test once; keep the results and the model in the run's folder (logged by publish)."""

    from daeflow.infer.evaluation import evaluate
    from daeflow.quality.scores import summary
    from daeflow.runtime.signals import stop_point
    from daeflow.track import flavor, names, queries, view
    from daeflow.workflow import run_report
    from daeflow.workflow.run_report import cost_metrics, write_test_report

    config, data, arch = prepared.config, prepared.data, prepared.provided.spec
    multiple = arch.size_multiple
    stop_point("final-evaluation")
    results = folder.results
    results.mkdir(parents=True, exist_ok=True)
    if data.test.source.has_clean:
        test, noisy = evaluate(
            result.model, data.test.source, data.test.indices, config.train.batch_size,
            multiple, with_noisy=True, margin=arch.tile_margin(config.arch_params),
        )  # fmt: skip
        percentiles, worst = write_test_report(
            results, result.model, data.test, test, noisy, multiple
        )
        metrics = {**summary(test, noisy), **percentiles}
    else:  # no clean image to score against: the objective's loss on the noisy test images
        from daeflow.train.objectives import loss_per_image

        losses = loss_per_image(
            result.model, data.test.source, data.test.indices, prepared.objective,
            config.train.objective_params, config.train.seed, multiple,
        )  # fmt: skip
        metrics, worst = {"test_objective_loss": float(losses.mean())}, None
    metrics.update(
        best_epoch=result.best_epoch,
        **({"best_val_psnr": result.best_val_psnr} if data.val.source.has_clean else {}),
        best_val_loss=result.best_val_loss,
        train_seconds=result.train_seconds,
        train_images_per_second=result.images_per_second,
        **cost_metrics(
            result.model,
            data.source.image_shape[-1],
            multiple,
            trainable_params(result.model),
            data.source.spatial_dims,
        ),
    )
    baselines = queries.baselines_for(scored_on(data, config.params(), digest))
    plugin = prepared.provided.plugin
    facts = [
        ("architecture", f"{arch.name} ({plugin.distribution} {plugin.version})"),
        ("hyperparameters", " ".join(f"{k}={v}" for k, v in config.arch_params.items())),
        ("objective", objective_line(prepared)),
        *([("noise", noise)] if (noise := described_noise(config.params())) else []),
        ("clean images used", data.params[CLEAN_USE]),
        ("data", f"{data.pairs[0][3]}, {data.params['data.shape']} {data.params['data.dtype']}"),
        ("data range", f"{data.data_range:g} ({data.params[RANGE_RULE]})"),
        ("data digest (SHA-256)", digest),
        ("split", f"train {len(data.train)}, validation {len(data.val)}, test {len(data.test)}"),
        ("stopped by", result.stop_reason),
        *([("clean targets", data.targets_note)] if data.targets_note else []),
    ]
    page = run_report.run_page(
        f"daeflow run: {arch.name}", facts, metrics, baselines, result.history,
        render_probes(result.model), worst, arch.name, loss_name(prepared),
    )  # fmt: skip
    (results / "report.html").write_text(page)
    flavor.save_local(result.model, folder.model, model_metadata(prepared), plugin.distribution)
    tags = {TAG_STOP_REASON: result.stop_reason, **view.headline(metrics, arch.name)}
    folder.write_final(names.tracked(metrics), tags)
    notes = run_report.notes(metrics, baselines, arch.name)
    if data.targets_note:  # said before training too; the numbers it qualifies come now
        notes.insert(0, data.targets_note)
    return Trained(result, metrics, "", notes, baselines)


def loss_name(prepared: PreparedRun) -> str:
    """What the run's training and validation losses are, for its charts."""
    objective = prepared.objective
    if objective is None or objective.needs_clean:
        return "MSE on [0, 1]"
    return f"{objective.name}'s own, on noisy images"


def objective_line(prepared: PreparedRun) -> str:
    """The run's objective in words (the report's, the model card's)."""
    from daeflow.train.objectives import described

    train, objective = prepared.config.train, prepared.objective
    needs_clean = objective is None or objective.needs_clean
    return described(train.objective, train.objective_params, needs_clean)


def run(config: RunConfig, write=print) -> RunOutcome:
    """Validate everything, then train and evaluate one model inside one MLflow run."""
    from daeflow.track import log_file, runs, store

    provided, config.arch_params = resolve_arch(config.arch, config.arch_params)
    with log_file.off_terminal(), full_disks_said(None, same_command_again):
        tracking_uri = store.use_tracking_uri(config.tracking_uri)
        refuse_full_disks()
        prepared = prepare(config, write, provided)
        arch = prepared.provided.spec
        tags = {
            "arch": arch.name,
            "plugin": prepared.provided.plugin.distribution,
            TAG_COMMAND: "run",
        }
        with runs.tracked_run(
            config.experiment, config.run_name, tags, unended=remember_end
        ) as active:
            trained = train_in_active_run(prepared, write)
    forget_local(trained)
    return outcome(active, tracking_uri, trained)


def remember_end(run_id: str, status: str) -> None:
    """Keep in the run's folder the status the store could not take: `daeflow sync` sends it."""
    RunFolder(run_id).remember_end(status)


def outcome(active, tracking_uri: str, trained: Trained) -> RunOutcome:
    """What a finished run reports: its ids, the model's URI, the test metrics, notes."""
    return RunOutcome(
        run_id=active.info.run_id,
        experiment_id=active.info.experiment_id,
        tracking_uri=tracking_uri,
        model_uri=trained.model_uri,
        metrics=trained.metrics,
        stop_reason=trained.result.stop_reason,
        best_epoch=trained.result.best_epoch,
        notes=trained.notes,
        baselines=trained.baselines,
    )
