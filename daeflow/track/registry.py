"""MLflow's Model Registry: a run's model as a new version of a registered model, with an alias."""

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from daeflow.errors import UsageError

ABOUT = "Image denoiser trained by daeflow. Each version's description is its model card."


@dataclass(frozen=True)
class Registered:
    """A version of a registered model, and the URIs that load it."""

    name: str
    version: str
    alias: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else self.version_uri

    @property
    def version_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def run_model_id(run) -> str:
    """The id of the model named 'model' that the run logged (the newest if it logged several)."""
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}' AND name = 'model'",
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        output_format="list",
    )
    if not found:
        raise UsageError(
            f"Run {run.info.run_id[:8]} logged no model (it failed or is still running); "
            "register a finished daeflow run."
        )
    return found[0].model_id


def check_name(name: str, what: str = "registered model name") -> None:
    """Refuse names the registry would take but URIs could not carry."""
    if not name or any(ch in name for ch in "/@:") or name != name.strip():
        raise UsageError(f"{what.capitalize()} {name!r} may not be empty or hold '/', '@' or ':'.")


def register(
    run, name: str, describe, tags: dict, alias: str | None, model_id: str | None = None
) -> Registered:
    """A new version of `name` (created if new) from the run's model (`model_id`, by default
    the one run_model_id finds), described by `describe(Registered)` (Markdown); `alias`
    moved onto it."""
    check_name(name)
    if alias is not None:
        check_name(alias, "alias")
    model_id = model_id or run_model_id(run)
    client = MlflowClient()
    try:
        client.create_registered_model(name, description=ABOUT)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    version = client.create_model_version(
        name,
        source=f"models:/{model_id}",
        run_id=run.info.run_id,
        tags={k: str(v) for k, v in tags.items()},
        model_id=model_id,
    )
    registered = Registered(name, str(version.version), alias)
    client.update_model_version(name, version.version, description=describe(registered))
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return registered
