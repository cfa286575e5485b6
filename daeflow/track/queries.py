"""Read from the tracking store: runs by id or id prefix, an experiment's runs, artifacts."""

from pathlib import Path

import mlflow

from daeflow.errors import ModelLoadError, UsageError, one_line
from daeflow.track.names import VIEW_KEY

FULL_ID = 32
MIN_PREFIX = 4
ML_VIEW = "workflowType=machine_learning"  # MLflow 3.17's UI: the "Model training" view


def ui_page(
    base: str, experiment_id: str | None = None, run_id: str | None = None, view: bool = False
) -> str:
    """The MLflow UI's page of an experiment's runs (or of one run), in its training view.

    With `view`, the runs table opens in daeflow's saved view (track/view.py), which the
    experiment must have: the UI refuses a key it does not find.
    """
    if experiment_id is None:
        return f"{base}/#/experiments?{ML_VIEW}"
    if run_id is None:
        shared = f"&viewStateShareKey={VIEW_KEY}" if view else ""
        return f"{base}/#/experiments/{experiment_id}/runs?{ML_VIEW}{shared}"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{ML_VIEW}"


def training_experiments(uri: str) -> list[tuple[str, str]]:
    """(name, id) of the experiments in a store that hold runs, newest first."""
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient(uri)
    found = client.search_experiments(
        view_type=ViewType.ACTIVE_ONLY, order_by=["last_update_time DESC"]
    )
    return [
        (e.name, e.experiment_id)
        for e in found
        if client.search_runs([e.experiment_id], max_results=1)
    ]


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def get_run(run_id: str):
    """The run with this id, or with this unique id prefix (as `daeflow compare` prints them)."""
    from mlflow.exceptions import MlflowException

    if len(run_id) == FULL_ID:
        try:
            return mlflow.get_run(run_id)
        except MlflowException as exc:
            if not _not_found(exc):
                raise
    elif len(run_id) >= MIN_PREFIX:
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
        matches = [r for r in runs if r.info.run_id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(r.info.run_id[:12] for r in matches[:5])
            raise UsageError(
                f"Run id prefix {run_id!r} matches {len(matches)} runs ({ids}). "
                "Give more characters."
            )
    raise UsageError(
        f"No MLflow run {run_id!r} in the tracking store {mlflow.get_tracking_uri()}. "
        "Pass a run id (or its first 8 characters) from 'daeflow compare'."
    )


def find_run(ref: str):
    """A run by id, id prefix, or run name (the newest of that name)."""
    try:
        return get_run(ref)
    except UsageError:
        quoted = ref.replace("'", "\\'")
        named = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=f"attributes.run_name = '{quoted}'",
            order_by=["attributes.start_time DESC"],
            output_format="list",
        )
        if named:
            return named[0]
        raise


def child_runs(parent_run_id: str) -> list:
    """The runs nested under a parent run (a sweep's or a study's trials)."""
    parent = get_run(parent_run_id)
    return mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        output_format="list",
    )


def recent_runs(experiment: str | None, limit: int) -> list:
    """The newest runs of one experiment, or of all."""
    if experiment is not None:
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            raise UsageError(f"No MLflow experiment {experiment!r}.")
        return mlflow.search_runs([found.experiment_id], max_results=limit, output_format="list")
    return mlflow.search_runs(search_all_experiments=True, max_results=limit, output_format="list")


def last_step(run_id: str, key: str) -> int:
    """The highest step at which the run has logged the metric `key` (0 if none)."""
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return max((m.step for m in history), default=0)


def experiment_name(experiment_id: str) -> str:
    """The name of an experiment."""
    return mlflow.get_experiment(experiment_id).name


def experiment_runs(experiment: str) -> list:
    """Every run of the experiment, newest first."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise UsageError(f"No MLflow experiment {experiment!r}. Pass --experiment or run ids.")
    return mlflow.search_runs([found.experiment_id], output_format="list")


def baseline_runs(wanted) -> list:
    """Finished classical baseline runs scored on the same data, test split and data range
    (`wanted`, a comparable.ScoredOn), from any experiment.

    Only the tracking store's own search is used; a store that cannot answer gives [].
    """
    from mlflow.exceptions import MlflowException

    from daeflow.track import comparable
    from daeflow.track.names import TAG_COMMAND, TAG_TRAIN_DIGEST

    if wanted.data == comparable.UNKNOWN:
        return []
    query = (
        f"tags.`{TAG_TRAIN_DIGEST}` = '{wanted.data}' and tags.`{TAG_COMMAND}` = 'baseline' "
        "and attributes.status = 'FINISHED'"
    )
    try:
        found = mlflow.search_runs(
            search_all_experiments=True, filter_string=query, output_format="list"
        )
    except MlflowException:
        return []
    return [r for r in found if comparable.of_run(r) == wanted]


def baselines_for(wanted) -> list[dict]:
    """baseline_runs(wanted) as {method, test_psnr, test_ssim, run_id}."""
    from daeflow.track.names import value

    return [
        {
            "method": r.data.params.get("method", "?"),
            "test_psnr": value(r.data.metrics, "test_psnr"),
            "test_ssim": value(r.data.metrics, "test_ssim"),
            "run_id": r.info.run_id,
        }
        for r in baseline_runs(wanted)
    ]


def download_artifact(run_id: str, artifact_path: str) -> Path | None:
    """A local copy of one artifact of a run, or None if the run has no such artifact."""
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path))
    except (MlflowException, OSError):
        return None


def local_model_path(uri: str, into: Path | None = None) -> Path:
    """A local copy of the model at runs:/..., models:/... or another MLflow artifact URI
    (in the existing folder `into` if given; MLflow's download copies files, runs nothing)."""
    try:
        dst = None if into is None else str(into)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst))
    except Exception as exc:
        raise ModelLoadError(
            f"Cannot fetch model {uri}: {one_line(exc, 300)}. Check the URI and --tracking-uri."
        ) from None
