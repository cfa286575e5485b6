"""Sending what a run kept in its folder to the tracking store: at the end of a run, and by
`daeflow sync` after the server was away. Nothing trained is lost when the store fails."""

import contextlib
import os

from daeflow.workflow.run_folder import RunFolder

SHUTDOWN_WAIT = 30.0  # seconds a stopped run waits for its uploads


def flush_wait() -> float:
    """Seconds a finished run waits for the tracking server to take the rest (default 120)."""
    return float(os.environ.get("DAEFLOW_FLUSH_WAIT", "120"))


def kept_for_sync(folder: RunFolder, what: str, failure: BaseException | None = None):
    """The error that says what stayed on this machine and how to upload it; when the
    `failure` was a full disk, which one, and to free space first."""
    from daeflow.errors import DiskFull, TrackingError
    from daeflow.runtime import disks
    from daeflow.track import store

    place = failure is not None and disks.full_place(failure, store.places())
    if place:
        return DiskFull(
            f"{place.subject()} is full ({disks.reason(failure)}); the run's results are kept in "
            f"{folder.path}. Free some space there, then upload them with: "
            f"daeflow sync {folder.run_id[:8]}"
        )
    return TrackingError(
        f"The tracking server did not take everything ({what}); the run's results are kept "
        f"in {folder.path}. When the server is back, upload them with: "
        f"daeflow sync {folder.run_id[:8]}"
    )


def publish_kept(folder: RunFolder, model, metadata: dict, distribution: str, patience: float):
    """Log the results and model kept in the run's folder; the model's URI.

    A server that is away or restarting is waited for, `patience` seconds at most. If
    logging fails (the server stays away, its disk is full), they stay in the folder and
    `daeflow sync` uploads them later.
    """
    try:
        return publish(folder, model, metadata, distribution, patience)
    except Exception as exc:  # not Interrupted, KeyboardInterrupt: those are BaseExceptions
        from daeflow.errors import one_line

        raise kept_for_sync(folder, f"{type(exc).__name__}: {one_line(exc, 200)}", exc) from None


def publish(
    folder: RunFolder, model, metadata: dict, distribution: str, patience: float = 0.0
) -> str:
    """Upload the results kept in a run's folder and log its model; the model's URI.

    Each step waits up to `patience` seconds for a server that is away or restarting.
    What the store has taken is recorded in the folder, so that publishing again (`daeflow
    sync` after a stop or a full disk) logs no model twice; the results are logged again
    with their first time, which MLflow stores once.
    """
    from daeflow.runtime.signals import stop_point
    from daeflow.track import flavor, logs
    from daeflow.track.store import when_back
    from daeflow.workflow.run_report import TABLE

    final, done = folder.read_final(), folder.published()
    if "model_uri" in done:
        return done["model_uri"]
    when_back(
        lambda: logs.log_results(
            folder.results, final["metrics"], final["tags"], (TABLE,), final.get("time")
        ),
        patience,
    )
    stop_point("model-logging")
    uri = when_back(lambda: flavor.log_model(model, metadata, distribution), patience).model_uri
    with contextlib.suppress(OSError):  # a full local disk: sync would log it once more
        folder.mark_published(model_uri=uri)
    return uri


def saved_model(folder: RunFolder):
    """The final model kept in the folder, with the metadata and distribution to log it with."""
    from daeflow.track import flavor

    model, saved = flavor.load_model_folder(folder.model)
    metadata = {
        k: v
        for k, v in saved.metadata.items()
        if k not in ("custom_object_modules", "plugin_distribution")
    }
    return model, metadata, saved.metadata.get("plugin_distribution", "daeflow")
