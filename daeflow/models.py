"""Load a denoiser back from MLflow (runs:/, models:/) or a local path, with its data range."""

from dataclasses import dataclass
from pathlib import Path

from daeflow.errors import ModelLoadError


@dataclass
class Denoiser:
    """A Keras model plus what it needs to scale its input: the training data range."""

    model: object
    data_range: float | None
    size_multiple: int = 1
    uri: str = ""
    self_ensemble: bool = False  # model averages over the 8 flips/rotations of its input


def _local_model_dir(uri: str) -> Path:
    path = Path(uri)
    if path.exists():
        return path
    if "://" not in uri and not uri.startswith(("models:/", "runs:/")):
        raise ModelLoadError(
            f"Model not found: {uri}. Pass runs:/<run id>/model, models:/<name>/<version> "
            "or a local model folder or .keras file."
        )
    import mlflow

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as exc:
        raise ModelLoadError(
            f"Cannot fetch model {uri}: {str(exc).splitlines()[0]}. Check the URI and "
            "--tracking-uri."
        ) from None


def load_denoiser(uri: str) -> Denoiser:
    """Load the Keras model at `uri` in safe mode, importing plugin layers it needs first."""
    from daeflow.backend import load_keras
    from daeflow.mlflow_flavor import import_custom_objects

    keras = load_keras()
    path = _local_model_dir(uri)
    if path.suffix == ".keras":
        return Denoiser(keras.saving.load_model(path, safe_mode=True), None, 1, uri)
    if not (path / "MLmodel").exists():
        raise ModelLoadError(f"{path} holds no MLmodel file; pass an MLflow model folder.")
    from mlflow.models import Model

    metadata = Model.load(str(path / "MLmodel")).metadata or {}
    import_custom_objects(metadata)
    import mlflow.keras

    try:
        model = mlflow.keras.load_model(str(path), load_model_kwargs={"safe_mode": True})
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"Cannot load the model at {uri}: {str(exc).splitlines()[0]}"
        ) from None
    return Denoiser(model, metadata.get("data_range"), int(metadata.get("size_multiple", 1)), uri)
