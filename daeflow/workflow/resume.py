"""`daeflow run --resume RUN`: continue a stopped, killed or crashed run where it left off.

The same MLflow run goes back to RUNNING; its data must be the same (by content digest);
training goes on from the newest checkpoint (the run's local folder, else its artifacts)
with the run's own options, of which the training options given on the command line
replace the logged ones (recorded in the tag daeflow.resume_changes).
"""

from daeflow.config import TRAIN_PARAM_NAMES, RunConfig, option_flag, run_folder
from daeflow.errors import UsageError


def changed_options(config: RunConfig, overrides: dict) -> dict[str, tuple]:
    """{option: (logged value, new value)} for the overrides that change something."""
    from dataclasses import asdict

    from daeflow.config import TrainOptions

    unknown = sorted(set(overrides) - set(TRAIN_PARAM_NAMES))
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
    from daeflow.data.digest import sha256_digest
    from daeflow.track import queries, runs, store, uploads
    from daeflow.train import checkpoints
    from daeflow.train.callbacks import TrainingState
    from daeflow.workflow.run import (
        forget_local,
        outcome,
        prepare,
        resolve_arch,
        train_in_active_run,
    )

    uri = store.use_tracking_uri(tracking_uri)
    run = queries.find_run(run_ref)
    run_id = run.info.run_id
    if run.data.tags.get("daeflow.command") != "run":
        raise UsageError(f"Run {run_id[:8]} is not a 'daeflow run' run; only those resume.")
    experiment = queries.experiment_name(run.info.experiment_id)
    config = RunConfig.from_params(run.data.params, experiment)
    changes = changed_options(config, overrides)
    if run.info.status == "FINISHED" and not changes:
        raise UsageError(
            f"Run {run_id[:8]} has finished. To train it further, give more --epochs or "
            "another --time-budget with --resume."
        )
    provided, config.arch_params = resolve_arch(config.arch, config.arch_params)
    prepared = prepare(config, write, provided)
    main = prepared.data.pairs[0]
    digest = sha256_digest(main[1], *([main[2]] if main[2] is not None else []))
    if digest != run.data.tags.get("data.train.sha256"):
        raise UsageError(
            f"The data of run {run_id[:8]} have changed since it started (SHA-256 "
            f"{run.data.tags.get('data.train.sha256', '?')[:12]}, now {digest[:12]}); "
            "resume it with the same data, or start a new run."
        )
    folder = run_folder(run_id) / "checkpoints"
    if checkpoints.latest(folder) is None:
        write("No local checkpoint; fetching the run's from the tracking store.")
        uploads.download_checkpoints(run_id, folder)
    if checkpoints.latest(folder) is None:
        # Stopped before its first checkpoint: the same run trains again from the start,
        # with the same seed; epochs it logged already are not logged twice.
        checkpoint = checkpoints.Checkpoint(prepared.model, TrainingState())
        write(f"Run {run_id[:8]} has no checkpoint yet; training it again from epoch 1.")
    else:
        with prepared.placement.scope():
            checkpoint = checkpoints.read(folder)
        write(f"Resuming run {run_id[:8]} after epoch {checkpoint.state.epoch}.")
    import os
    import socket

    resumed = int(run.data.tags.get("daeflow.resumed", "0")) + 1
    tags = {
        "daeflow.resumed": str(resumed),
        "daeflow.host": socket.gethostname(),
        "daeflow.pid": str(os.getpid()),
        "daeflow.epochs": str(config.train.epochs),
    }
    if changes:
        tags["daeflow.resume_changes"] = "; ".join(
            f"{option_flag(k)} {a} -> {b}" for k, (a, b) in changes.items()
        )
    with runs.tracked_run(experiment, None, tags, run_id=run_id) as active:
        trained = train_in_active_run(prepared, write, checkpoint, digest)
    forget_local(trained)
    return outcome(active, uri, trained)
