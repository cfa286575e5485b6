"""`daeflow sync`: upload what a run kept on this machine while the tracking server was away.

A run keeps its folder (see daeflow.config.run_folder) when the server did not take
everything: per-epoch records still in its journal, checkpoints, and, for a run that
finished training, its test results and model. Sync sends them to the same MLflow run,
in order, and marks a finished run FINISHED; a stopped run stays resumable.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from daeflow.config import home
from daeflow.errors import UsageError


@dataclass
class Synced:
    """What sync did for one run."""

    run_id: str
    records: int
    checkpoints: int
    model_uri: str | None


def kept_runs() -> list[Path]:
    """The run folders on this machine, oldest first."""
    root = home() / "runs"
    folders = [p for p in root.glob("*") if p.is_dir()] if root.is_dir() else []
    return sorted(folders, key=lambda p: p.stat().st_mtime)


def find_kept(ref: str) -> Path:
    """The run folder whose run id is `ref` or starts with it."""
    matches = [p for p in kept_runs() if p.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(
            f"No run {ref!r} is kept on this machine (in {home() / 'runs'}); "
            "'daeflow sync' with no run lists those that are."
        )
    raise UsageError(f"{ref!r} matches {len(matches)} kept runs; give more of the run id.")


def recorded_store(folder: Path) -> str | None:
    """The tracking URI the run was logged to, as its folder records it."""
    from daeflow.workflow.run import STORE_FILE

    try:
        return json.loads((folder / STORE_FILE).read_text())["tracking_uri"]
    except (OSError, ValueError, KeyError):
        return None


def sync(folder: Path, tracking_uri: str | None, write=print) -> Synced:
    """Send one kept run's journal, checkpoints and (if it finished) results and model."""
    from daeflow.track import journal, queries, runs, store, uploads
    from daeflow.train import checkpoints
    from daeflow.workflow.status import state_of

    store.use_tracking_uri(tracking_uri or recorded_store(folder))

    run_id = folder.name
    run = queries.get_run(run_id)
    if state_of(run) == "RUNNING":
        raise UsageError(f"Run {run_id[:8]} is still running; it sends its own records.")
    records = 0
    if (folder / "journal").is_dir():
        records = journal.Journal(run_id, folder / "journal", start_sender=False).send_rest()
    sent = 0
    newest = checkpoints.latest(folder / "checkpoints")
    if newest is not None:
        state = json.loads((newest / "state.json").read_text())
        best = folder / "checkpoints" / checkpoints.checkpoint_name(state["best_epoch"])
        uploads.upload_checkpoint(run_id, newest, best == newest)
        sent += 1
        if best != newest and best.is_dir():
            uploads.upload_checkpoint(run_id, best, True)
            sent += 1
    model_uri = None
    if (folder / "final.json").is_file():
        from daeflow.track import flavor
        from daeflow.workflow.run import publish

        model, _ = flavor.load_model_folder(folder / "model")
        experiment = queries.experiment_name(run.info.experiment_id)
        with runs.tracked_run(experiment, None, {}, run_id=run_id):
            model_uri = publish(folder, model)
    return Synced(run_id, records, sent, model_uri)


def finished_with(folder: Path, synced: Synced) -> bool:
    """Remove the folder of a run that has nothing left to send; whether it was removed."""
    import shutil

    if synced.model_uri is None:
        return False  # a stopped run: its checkpoints are what --resume continues from
    shutil.rmtree(folder, ignore_errors=True)
    return True


def sync_runs(ref: str | None, tracking_uri: str | None, write=print) -> list[Synced]:
    """Sync the run `ref`, or every run kept on this machine."""
    folders = [find_kept(ref)] if ref else kept_runs()
    if not folders:
        write(f"Nothing to sync: no run is kept in {home() / 'runs'}.")
    done = []
    for folder in folders:
        try:
            synced = sync(folder, tracking_uri, write)
        except UsageError as exc:
            if ref:
                raise
            write(str(exc))
            continue
        removed = finished_with(folder, synced)
        write(
            f"Run {synced.run_id[:8]}: {synced.records} records, {synced.checkpoints} "
            "checkpoints"
            + (f", results and model ({synced.model_uri}); FINISHED" if synced.model_uri else "")
            + ("; local folder removed." if removed else f"; kept in {folder}.")
        )
        done.append(synced)
    return done
