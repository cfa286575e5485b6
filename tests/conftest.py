import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from daeflow.plugins import reset_plugins  # noqa: E402


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch):
    """Only built-in plugins, unless a test asks for installed ones."""
    monkeypatch.setenv("DAEFLOW_LOAD_PLUGINS", "")
    monkeypatch.delenv("DAEFLOW_STRICT_PLUGINS", raising=False)
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture
def installed_plugins(monkeypatch):
    """Load every installed plugin (the example plugin among them)."""
    monkeypatch.delenv("DAEFLOW_LOAD_PLUGINS", raising=False)
    reset_plugins()


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory):
    """An MLflow sqlite store with its schema created once per session."""
    import mlflow

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(migrated_store, tmp_path, monkeypatch):
    """A fresh copy of the migrated store, with artifacts under tmp_path."""
    import mlflow

    path = tmp_path / "mlflow.db"
    shutil.copy(migrated_store, path)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    if mlflow.active_run():
        mlflow.end_run()


def make_pairs(n=24, size=16, channels=1, dtype=np.uint8, sigma=20.0, seed=0, data_range=255):
    """Smooth random clean images and noisy copies, as (clean, noisy) of `dtype`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(n):
        fx, fy, phase = rng.uniform(0.5, 3, 3)
        base = 0.5 + 0.4 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase * 6)
        images.append(np.repeat(base[..., None], channels, axis=-1))
    clean = np.stack(images) * data_range
    noisy = clean + rng.normal(0, sigma * data_range / 255, clean.shape)
    clip = (0, data_range)
    if np.issubdtype(dtype, np.integer):
        return (
            np.clip(np.rint(clean), *clip).astype(dtype),
            np.clip(np.rint(noisy), *clip).astype(dtype),
        )
    return clean.astype(dtype), np.clip(noisy, *clip).astype(dtype)


@pytest.fixture
def pair_files(tmp_path):
    """Write a small aligned clean/noisy pair to .npy files and return their paths."""

    def write(**kwargs):
        clean, noisy = make_pairs(**kwargs)
        clean_path, noisy_path = tmp_path / "clean.npy", tmp_path / "noisy.npy"
        np.save(clean_path, clean)
        np.save(noisy_path, noisy)
        return clean_path, noisy_path

    return write
