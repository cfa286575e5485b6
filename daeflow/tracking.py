"""Everything MLflow: run lifecycle, per-epoch logging, datasets, model logging."""

import contextlib
import hashlib
import signal
import threading
import warnings

import mlflow
import numpy as np

from daeflow.errors import Interrupted


def use_tracking_uri(uri: str | None) -> str:
    """Set the tracking URI when given; return the one in force (MLflow's default otherwise)."""
    if uri:
        mlflow.set_tracking_uri(uri)
    return mlflow.get_tracking_uri()


def _raise_interrupted(signum, frame):
    raise Interrupted(f"Stopped by signal {signal.Signals(signum).name}; the run is marked KILLED.")


@contextlib.contextmanager
def _signals_raise():
    """Turn SIGTERM into an exception, so the run is closed instead of left RUNNING."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def tracked_run(experiment: str, run_name: str | None, tags: dict, nested: bool = False):
    """An MLflow run that ends FINISHED, FAILED (on an error) or KILLED (Ctrl-C, SIGTERM)."""
    if not nested:
        mlflow.set_experiment(experiment)
    run = mlflow.start_run(run_name=run_name, tags=tags, nested=nested)
    try:
        with _signals_raise():
            yield run
    except (KeyboardInterrupt, Interrupted):
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")


def sha256_digest(*arrays) -> str:
    """SHA-256 over the shapes, dtypes and every byte of the arrays (read in chunks)."""
    digest = hashlib.sha256()
    for images in arrays:
        digest.update(f"{images.shape}{images.dtype}".encode())
        for _, chunk in images.chunks():
            digest.update(np.ascontiguousarray(chunk).tobytes())
    return digest.hexdigest()


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
    mlflow.log_input(dataset, context=context)


def model_signature(channels: int):
    """Float32 images in, float32 images out; batch, height and width left open."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    spec = Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, channels))])
    return ModelSignature(inputs=spec, outputs=spec)


def pip_requirements(plugin_distribution: str, plugin_version: str) -> list[str]:
    """The packages needed to load the model: daeflow, TensorFlow, Keras and the plugin."""
    import importlib.metadata as md

    reqs = [f"{name}=={md.version(name)}" for name in ("daeflow", "tensorflow", "keras")]
    if plugin_distribution not in ("daeflow", "?", "local"):
        reqs.append(f"{plugin_distribution}=={plugin_version}")
    return reqs


def log_model(model, metadata: dict, plugin_distribution: str, plugin_version: str):
    """Log the Keras model with a signature, pinned requirements and daeflow's loader."""
    from mlflow.models import Model

    from daeflow import mlflow_flavor

    metadata = {
        **metadata,
        "custom_object_modules": mlflow_flavor.custom_object_modules(model),
        "plugin_distribution": plugin_distribution,
    }
    return Model.log(
        artifact_path=None,
        name="model",
        flavor=mlflow_flavor,
        model=model,
        signature=model_signature(model.input_shape[-1]),
        pip_requirements=pip_requirements(plugin_distribution, plugin_version),
        metadata=metadata,
    )
