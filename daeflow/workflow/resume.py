"""`daeflow run --resume RUN`: continue a stopped, killed or crashed run where it left off.

The same MLflow run goes back to RUNNING; its data must be the same (by content digest);
training goes on from the newest checkpoint (the run's local folder, else its artifacts)
with the run's own options, of which the training options given on the command line
replace the logged ones (recorded in the tag daeflow.resume_changes).
"""

import os
import socket
from pathlib import Path

from daeflow.config import TRAIN_PARAM_NAMES, RunConfig, option_flag
from daeflow.errors import UsageError
from daeflow.track.names import (
    TAG_COMMAND,
    TAG_EPOCHS,
    TAG_HOST,
    TAG_PID,
    TAG_RESUME_CHANGES,
    TAG_RESUMED,
    TAG_TRAIN_DIGEST,
)
from daeflow.workflow.run_folder import RunFolder


def changed_options(config: RunConfig, overrides: dict) -> dict[str, tuple]:
    """{option: (logged value, new value)} for the overrides that change something."""
    from dataclasses import asdict

    from daeflow.config import TrainOptions

    unknown = sorted(set(overrides) - set(TRAIN_PARAM_NAMES) | set(overrides) & {"objective"})
    if unknown:
        raise UsageError(
            f"--resume continues a run with its own data and architecture; "
            f"{option_flag(unknown[0])} cannot be changed. Only training options can."
        )
    before = asdict(config.train)
    after = asdict(TrainOptions(**{**before, **overrides}))  # checked like any other options
    config.train = TrainOptions(**after)
    return {k: (before[k], after[k]) for k in overrides if before[k] != after[k]}


def resume(run_ref: str, overrides: dict, tracking_uri: str | None, write=print):
    """Continue the run `run_ref` (its id, id prefix or name) and finish it."""
    # A run kept on this machine is held before MLflow is even imported, so that a second
    # resume of it is refused at once.
    early = _kept_and_held(run_ref)
    try:
        from daeflow.track import log_file, queries, store
        from daeflow.workflow.full_disks import (
            full_disks_said,
            refuse_full_disks,
            same_command_again,
        )

        with log_file.off_terminal(), full_disks_said(None, same_command_again):
            uri = store.use_tracking_uri(tracking_uri)
            refuse_full_disks()
            run = queries.find_run(run_ref)
            run_id = run.info.run_id
            if run.data.tags.get(TAG_COMMAND) != "run":
                raise UsageError(f"Run {run_id[:8]} is not a 'daeflow run' run; only those resume.")
            if early is not None and early.run_id != run_id:
                early.release()  # `run_ref` named another run
            held = early is not None and early.run_id == run_id
            with early if held else RunFolder(run_id) as folder:  # one process per run here
                refuse_if_held_elsewhere(run)
                return _resume_held(run, folder, overrides, uri, write)
    finally:
        if early is not None:
            early.release()


def _kept_and_held(run_ref: str) -> RunFolder | None:
    """The folder of the run kept here whose id starts with `run_ref`, its lease taken; None
    when no single kept run matches (a run name, or a run trained elsewhere)."""
    from daeflow.workflow.run_folder import find_kept

    try:
        folder = find_kept(run_ref)
    except UsageError:
        return None
    return folder.take_lease()


def _resume_held(run, folder: RunFolder, overrides: dict, uri: str, write):
    from daeflow.data.digest import sha256_digest
    from daeflow.data.prepare import prepare_data
    from daeflow.track import queries, runs
    from daeflow.train import checkpoints
    from daeflow.train.callbacks import TrainingState
    from daeflow.workflow.run import (
        forget_local,
        outcome,
        prepare,
        remember_end,
        resolve_arch,
        resolve_objective,
        train_in_active_run,
    )

    run_id = run.info.run_id
    experiment = queries.experiment_name(run.info.experiment_id)
    config = RunConfig.from_params(run.data.params, experiment)
    changes = changed_options(config, overrides)
    if run.info.status == "FINISHED" and not changes:
        raise UsageError(
            f"Run {run_id[:8]} has finished. To train it further, give more --epochs or "
            "another --time-budget with --resume."
        )
    provided, config.arch_params = resolve_arch(config.arch, config.arch_params)
    from daeflow.data.ranges import RANGE_PARAM

    logged = run.data.params.get(RANGE_PARAM)
    data = prepare_data(
        config.data, provided.spec, config.train.seed, config.train.patch_size,
        float(logged) if logged else None, resolve_objective(config.train),
    )  # fmt: skip
    for line in data.lines:
        write(line)
    prepared = prepare(config, write, provided, data)
    main = prepared.data.pairs[0]
    digest = sha256_digest(main[1], *([main[2]] if main[2] is not None else []))
    if digest != run.data.tags.get(TAG_TRAIN_DIGEST):
        raise UsageError(
            f"The data of run {run_id[:8]} have changed since it started (SHA-256 "
            f"{run.data.tags.get(TAG_TRAIN_DIGEST, '?')[:12]}, now {digest[:12]}); "
            "resume it with the same data, or start a new run."
        )
    with prepared.placement.scope():
        checkpoint, where = newest_checkpoint(folder, write)
    if checkpoint is None:
        # Stopped before its first checkpoint: the same run trains again from the start,
        # with the same seed; epochs it logged already are not logged twice.
        checkpoint = checkpoints.Checkpoint(prepared.model, TrainingState())
        write(f"Run {run_id[:8]} has no checkpoint yet; training it again from epoch 1.")
    else:
        write(f"Resuming run {run_id[:8]} after epoch {checkpoint.state.epoch} ({where}).")
    resumed = int(run.data.tags.get(TAG_RESUMED, "0")) + 1
    tags = {
        TAG_RESUMED: str(resumed),
        TAG_HOST: socket.gethostname(),
        TAG_PID: str(os.getpid()),
        TAG_EPOCHS: config.train.epochs_asked(),
    }
    if changes:
        tags[TAG_RESUME_CHANGES] = "; ".join(
            f"{option_flag(k)} {a} -> {b}" for k, (a, b) in changes.items()
        )
    with runs.tracked_run(experiment, None, tags, run_id=run_id, unended=remember_end) as active:
        trained = train_in_active_run(prepared, write, checkpoint, digest, lease=folder)
    forget_local(trained)
    return outcome(active, uri, trained)


def newest_checkpoint(folder: RunFolder, write=print):
    """The checkpoint to go on from, and where it came from; (None, None) if there is none.

    The newest local checkpoint that can be read; else the run's artifact checkpoints/last,
    then checkpoints/best. Each one that cannot be read is said in one line.
    """
    import tempfile

    from daeflow.track import uploads
    from daeflow.train import checkpoints

    checkpoint, path = checkpoints.read_newest(folder.checkpoints, write)
    if checkpoint is not None:
        return checkpoint, f"local checkpoint {path.name}"
    folder.checkpoints.mkdir(parents=True, exist_ok=True)
    for artifact in (uploads.LAST, uploads.BEST):
        with tempfile.TemporaryDirectory(dir=folder.path) as tmp:
            downloaded = uploads.download_checkpoint(folder.run_id, artifact, Path(tmp))
            path = downloaded and checkpoints.adopt(folder.checkpoints, downloaded)
        if path is None:
            continue
        try:
            return checkpoints.read_one(folder.checkpoints, path), f"the run's {artifact}"
        except checkpoints.Unreadable as exc:
            write(f"The run's {artifact} cannot be read ({exc}); trying the next.")
    return None, None


def refuse_if_held_elsewhere(run) -> None:
    """Refuse a run that a live process trains: one of this machine that has not taken the
    lease yet, or one of another machine whose heartbeat is recent."""
    from daeflow.workflow.status import state_of

    tags = run.data.tags
    mine = tags.get(TAG_HOST) == socket.gethostname() and tags.get(TAG_PID) == str(os.getpid())
    if state_of(run) == "RUNNING" and not mine:
        raise UsageError(
            f"Run {run.info.run_id[:8]} is held by process {tags.get(TAG_PID, '?')} on "
            f"{tags.get(TAG_HOST, '?')}, which trains it now (its heartbeat is recent); "
            "wait for it to end, or stop it there first."
        )
