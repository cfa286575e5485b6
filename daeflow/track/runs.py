"""The life of an MLflow run: started in an experiment, always ended with a final status."""

import contextlib
import logging

import mlflow
from mlflow.exceptions import MlflowException

from daeflow.errors import Interrupted
from daeflow.runtime.signals import StopSignals, innermost
from daeflow.track.names import TAG_STOP_REASON
from daeflow.track.store import check_artifact_location, quiet, when_back
from daeflow.track.view import give_view

KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


@contextlib.contextmanager
def tracked_run(
    experiment: str,
    run_name: str | None,
    tags: dict,
    nested: bool = False,
    run_id: str | None = None,
    unended=None,
):
    """An MLflow run that ends FINISHED, FAILED (on an error) or KILLED (Ctrl-C, SIGTERM).

    With `run_id`, that run is opened again (RUNNING) and continued. When the store cannot
    take the final status (its disk is full, the server is away), `unended(run_id, status)`
    is called, so that the status can be sent later (`daeflow sync`).
    """
    if run_id is not None:
        found = mlflow.get_experiment(mlflow.get_run(run_id).info.experiment_id)
        check_artifact_location(found.artifact_location, found.name)
        give_view(found)
    elif not nested:
        with quiet("mlflow.tracking.fluent"):  # "Experiment ... does not exist. Creating..."
            found = mlflow.set_experiment(experiment)
        check_artifact_location(found.artifact_location, experiment)
        mark_model_training(found)
        give_view(found)  # the runs table the printed links open
    if run_id is not None:
        run = mlflow.start_run(run_id=run_id, tags=tags)
    else:
        run = mlflow.start_run(run_name=run_name or fresh_name(), tags=tags, nested=nested)
    # The first SIGTERM or Ctrl-C stops the work; later ones cannot leave the run RUNNING.
    with StopSignals("Stopped by signal SIGTERM; the run is marked KILLED.") as stops:
        try:
            # A failed background artifact upload surfaces as the exception: no ERROR line.
            with quiet("mlflow.utils.async_logging", below=logging.CRITICAL):
                yield run
        except (KeyboardInterrupt, Interrupted):
            stops.stopping()
            _end_or_remember(run.info.run_id, "KILLED", unended)
            raise
        except BaseException:
            stops.stopping()
            _end_or_remember(run.info.run_id, "FAILED", unended)  # the error is what matters
            raise
        else:
            stops.stopping()
            try:
                end_run(run.info.run_id, "FINISHED", END_WAIT)
            except Exception:
                if unended is not None:
                    unended(run.info.run_id, "FINISHED")
                raise


def _end_or_remember(run_id: str, status: str, unended) -> None:
    """End the run with `status`; if the store will not take it, say so to `unended`."""
    try:
        end_run(run_id, status)
    except Exception:
        if unended is not None:
            with contextlib.suppress(Exception):
                unended(run_id, status)


def end_run(run_id: str, status: str, patience: float = 0.0) -> None:
    """End the active run with `status`, waiting up to `patience` s for a server that is away.

    mlflow.end_run forgets the active run before it sends the status, so a retry of it
    would send nothing: the status is sent again by the run's id.
    """
    try:
        mlflow.end_run(status)
        return
    except Exception:
        pass
    when_back(lambda: mlflow.MlflowClient().set_terminated(run_id, status), patience)


END_WAIT = 120.0  # seconds to wait for a server that is away when a run ends


def mark_model_training(experiment) -> None:
    """Tag the experiment as MLflow's "model training" kind, unless it already has a kind.

    MLflow records the kind a user picks in its UI in this tag. MLflow 3.17's UI itself
    opens an experiment by its GenAI / Model training switch (remembered per browser, or
    the URL's workflowType), which is why daeflow's links carry workflowType too.
    """
    if KIND_TAG in (experiment.tags or {}):
        return
    client = mlflow.MlflowClient()
    try:
        client.set_experiment_tag(experiment.experiment_id, KIND_TAG, MODEL_TRAINING)
    except MlflowException:
        # Runs starting together race to tag it (a unique-key error on PostgreSQL): one wins.
        if KIND_TAG not in client.get_experiment(experiment.experiment_id).tags:
            raise


def active_run_id() -> str:
    """The id of the run being logged to."""
    return mlflow.active_run().info.run_id


def begin_shutdown(write=print) -> None:
    """The run is being stopped: further Ctrl-C and SIGTERM only say so, until it is KILLED."""
    stops = innermost()
    if stops is not None:
        saying = "Stopping: saving what the run has; it is marked KILLED when done."
        stops.stopping(saying, write)


def fresh_name() -> str | None:
    """MLflow's random run name, drawn apart from Python's seeded `random` state: a run seeds
    it with its --seed before it starts, so every run of one seed got the same name."""
    import random

    try:
        from mlflow.utils.name_utils import _generate_random_name
    except ImportError:  # moved in a later MLflow: let MLflow name the run
        return None
    state = random.getstate()
    random.seed()  # from the system's entropy
    try:
        return _generate_random_name()
    finally:
        random.setstate(state)


def set_tag_of(run_id: str, key: str, value: str) -> None:
    """Tag a run that is not the active one (e.g. a failed sweep child)."""
    mlflow.MlflowClient().set_tag(run_id, key, value)


def end_if_running(run_id: str, status: str) -> bool:
    """Give a run that is still RUNNING in the store the final `status`; whether it had to."""
    client = mlflow.MlflowClient()
    if client.get_run(run_id).info.status != "RUNNING":
        return False
    client.set_terminated(run_id, status)
    return True


def mark_failed_if_running(run_id: str, reason: str) -> None:
    """End a run whose process died, if it is still RUNNING, as FAILED, saying why in a tag."""
    client = mlflow.MlflowClient()
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, TAG_STOP_REASON, reason)
        client.set_terminated(run_id, "FAILED")
