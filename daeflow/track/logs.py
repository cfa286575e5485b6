"""What goes into the active MLflow run: params, metrics, tags, datasets, tables, images, files."""

import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import numpy as np


def log_params(params: dict) -> None:
    """Log params (values become strings, as MLflow stores them)."""
    mlflow.log_params(params)


def log_metrics(metrics: dict, step: int | None = None) -> None:
    """Log metrics, at `step` when given."""
    mlflow.log_metrics(metrics, step=step)


def set_tags(tags: dict) -> None:
    """Set tags on the active run."""
    mlflow.set_tags(tags)


def log_dataset(clean, noisy, digest: str, name: str, source: str, context: str = "training"):
    """Log the data as an MLflow dataset input carrying our full-content digest."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "source can be interpreted in multiple ways"
        dataset = mlflow.data.from_numpy(
            features=noisy.array if noisy is not None else clean.array,
            targets=clean.array,
            source=source,
            name=name,
            digest=digest[:32],
        )
    for attempt in range(3):
        try:
            return mlflow.log_input(dataset, context=context)
        except mlflow.exceptions.MlflowException as error:
            # MLflow checks for the dataset, then inserts it: two runs of one data race there.
            if attempt == 2 or "unique constraint" not in str(error).lower():
                raise
            time.sleep(0.2 * (attempt + 1))  # the winner's row is visible now: it gets reused


def log_json(payload, artifact_file: str) -> None:
    """A JSON artifact."""
    mlflow.log_dict(payload, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    """A text artifact (an .html one previews in the MLflow UI)."""
    mlflow.log_text(text, artifact_file)


def log_table(columns: dict, artifact_file: str) -> None:
    """A table artifact that the MLflow UI shows as a table."""
    mlflow.log_table(columns, artifact_file=artifact_file)


def log_image(picture: np.ndarray, key: str | None = None, step: int | None = None, **kwargs):
    """An image: with `key` and `step`, one of a series the UI steps through; else a file."""
    if key is not None:
        mlflow.log_image(picture, key=key, step=step)
    else:
        mlflow.log_image(picture, **kwargs)


def log_figure(figure, artifact_file: str) -> None:
    """A matplotlib figure as an image file the MLflow UI shows."""
    mlflow.log_figure(figure, artifact_file)


def log_arrays(artifact_file: str, **arrays) -> None:
    """NumPy arrays as one compressed .npz artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / artifact_file
        np.savez_compressed(path, **arrays)
        mlflow.log_artifact(str(path))


def log_results(
    folder, metrics: dict, tags: dict, tables: tuple[str, ...] = (), timestamp: int | None = None
) -> None:
    """A folder of result files as artifacts, with the final metrics (at `timestamp`, in
    ms, when given) and tags; files named in `tables` are shown as tables in the UI, as
    mlflow.log_table would show them."""
    import json

    mlflow.log_artifacts(str(folder))
    shown = [{"path": name, "type": "table"} for name in tables]
    if shown:
        tags = {**tags, "mlflow.loggedArtifacts": json.dumps(shown)}
    mlflow.log_metrics(metrics, timestamp=timestamp)
    mlflow.set_tags(tags)
