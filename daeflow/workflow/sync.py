"""`daeflow sync`: upload what a run kept on this machine while the tracking server was away.

A run keeps its folder (daeflow.workflow.run_folder) when the server did not take
everything: per-epoch records still in its journal, checkpoints, and, for a run that
finished training, its test results and model. Sync sends them to the same MLflow run,
in order, and marks a finished run FINISHED; a stopped run stays resumable. A run that
the store could not end (its disk was full) gets the status it should have had.
"""

from dataclasses import dataclass

from daeflow.errors import UsageError
from daeflow.workflow.run_folder import RunFolder, find_kept, kept, runs_root


@dataclass
class Synced:
    """What sync did for one run."""

    run_id: str
    records: int
    checkpoints: int
    model_uri: str | None
    ended: str | None = None  # the status sent for a run the store could not end


def sync(folder: RunFolder, tracking_uri: str | None, write=print) -> Synced:
    """Send one kept run's journal, checkpoints and (if it finished) results and model.

    The caller holds the run's lease, so no other process of this machine writes the run.
    """
    from daeflow.track import journal, queries, runs, store, uploads
    from daeflow.train import checkpoints
    from daeflow.workflow.publishing import publish, saved_model
    from daeflow.workflow.status import state_of

    store.use_tracking_uri(tracking_uri or folder.recorded_store())

    run_id = folder.run_id
    run = queries.get_run(run_id)
    if state_of(run) == "RUNNING":
        raise UsageError(f"Run {run_id[:8]} is still running; it sends its own records.")
    records = 0
    if folder.journal.is_dir():
        records = journal.Journal(run_id, folder.journal, start_sender=False).send_rest()
    sent = 0
    newest = checkpoints.latest(folder.checkpoints)
    if newest is not None:
        best = checkpoints.best_of(folder.checkpoints, newest)
        uploads.upload_checkpoint(run_id, newest, best == newest)
        sent += 1
        if best != newest and best.is_dir():
            uploads.upload_checkpoint(run_id, best, True)
            sent += 1
    model_uri, ended = None, None
    if folder.has_ended_training():
        model, metadata, distribution = saved_model(folder)
        experiment = queries.experiment_name(run.info.experiment_id)
        with runs.tracked_run(experiment, None, {}, run_id=run_id):
            model_uri = publish(folder, model, metadata, distribution)
    elif folder.remembered_end() and runs.end_if_running(run_id, folder.remembered_end()):
        ended = folder.remembered_end()
    folder.forget_end()
    return Synced(run_id, records, sent, model_uri, ended)


def finished_with(folder: RunFolder, synced: Synced) -> bool:
    """Remove the folder of a run that has nothing left to send; whether it was removed."""
    if synced.model_uri is None:
        return False  # a stopped run: its checkpoints are what --resume continues from
    folder.remove()
    return True


def sync_runs(ref: str | None, tracking_uri: str | None, write=print) -> list[Synced]:
    """Sync the run `ref`, or every run kept on this machine."""
    folders = [find_kept(ref)] if ref else kept()
    if not folders:
        write(f"Nothing to sync: no run is kept in {runs_root()}.")
    done = []
    for folder in folders:
        try:
            with folder:
                synced = sync(folder, tracking_uri, write)
                removed = finished_with(folder, synced)
        except UsageError as exc:
            if ref:
                raise
            write(str(exc))
            continue
        write(
            f"Run {synced.run_id[:8]}: {synced.records} records, {synced.checkpoints} "
            "checkpoints"
            + (f", results and model ({synced.model_uri}); FINISHED" if synced.model_uri else "")
            + (f"; marked {synced.ended}" if synced.ended else "")
            + ("; local folder removed." if removed else f"; kept in {folder.path}.")
        )
        done.append(synced)
    return done
