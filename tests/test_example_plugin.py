"""The example plugin in plugins/, installed for real: list, train, reload in a new process."""

import subprocess
import sys

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow.cli import app

LOAD = """
import sys, numpy as np, mlflow.pyfunc, mlflow.keras
uri, x_path, *flavors = sys.argv[1:]
x = np.load(x_path)
for flavor in flavors:
    if flavor == "keras":
        import daeflow_resunet.layers  # registers the custom layer, as Keras requires
        import keras
        with keras.saving.custom_object_scope({}):
            model = mlflow.keras.load_model(uri, load_model_kwargs={"safe_mode": True})
        out = np.asarray(model(x, training=False))
    else:
        out = np.asarray(mlflow.pyfunc.load_model(uri).predict(x))
    np.save(f"{x_path}.{flavor}.npy", out)
"""


def load_in_new_process(uri, x_path, *flavors):
    return subprocess.run(
        [sys.executable, "-c", LOAD, uri, str(x_path), *flavors], capture_output=True, text=True
    )


@pytest.mark.slow
def test_example_plugin_trains_and_reloads(
    installed_plugins, tracking_uri, pair_files, tmp_path, monkeypatch
):
    listing = CliRunner().invoke(app, ["archs"])
    assert "resunet" in listing.stdout and "daeflow-resunet" in listing.stdout
    clean, noisy = pair_files(n=24, size=16)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--arch",
            "resunet",
            "--clean",
            str(clean),
            "--noisy",
            str(noisy),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--arch-param",
            "filters=8",
        ],
    )
    assert result.exit_code == 0, result.output
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.data.params["plugin.distribution"] == "daeflow-resunet"
    assert run.data.params["arch.filters"] == "8"
    uri = f"runs:/{run.info.run_id}/model"
    requirements = mlflow.pyfunc.get_model_dependencies(uri)
    assert "daeflow-resunet==0.1.0" in open(requirements).read()

    x = (np.load(noisy)[:2] / 255).astype(np.float32)  # (2, 16, 16, 1)
    x_path = tmp_path / "x.npy"
    np.save(x_path, x)
    done = load_in_new_process(uri, x_path, "pyfunc", "keras")
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = {flavor: np.load(f"{x_path}.{flavor}.npy") for flavor in ("pyfunc", "keras")}
    assert outputs["pyfunc"].shape == x.shape and outputs["pyfunc"].dtype == np.float32
    # The pyfunc clips to the data range, as `daeflow denoise` does.
    np.testing.assert_allclose(outputs["pyfunc"], np.clip(outputs["keras"], 0, 1), atol=1e-5)

    # As if the plugin were not installed (in this process: a second one costs 15-20 s).
    monkeypatch.setitem(sys.modules, "daeflow_resunet", None)
    monkeypatch.setitem(sys.modules, "daeflow_resunet.layers", None)
    with pytest.raises(Exception, match="pip install daeflow-resunet"):
        mlflow.pyfunc.load_model(uri)
