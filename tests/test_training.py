"""End to end: real Keras training of each built-in architecture, logged to a real MLflow store."""

import json
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow.cli import app

BUILTINS = ("conv_baseline", "conv_deep", "conv_transpose", "residual", "residual_fast")
EPOCHS = 2

RELOAD = """
import sys, json, numpy as np, mlflow, mlflow.pyfunc
uri, path = sys.argv[1], sys.argv[2]
x = np.load(path)
model = mlflow.pyfunc.load_model(uri)
print(json.dumps(np.asarray(model.predict(x)).tolist()))
"""


def run_cli(*args):
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 0, result.output
    return result


def only_run(tracking_uri):
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
@pytest.mark.parametrize("arch", BUILTINS)
def test_run_logs_everything_and_model_reloads(arch, tracking_uri, pair_files, tmp_path):
    clean, noisy = pair_files(n=24, size=16)
    result = run_cli(
        "--arch",
        arch,
        "--clean",
        str(clean),
        "--noisy",
        str(noisy),
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "8",
        "--seed",
        "3",
        "--run-name",
        f"t-{arch}",
    )
    run = only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.info.run_id in result.output and "test PSNR" in result.output
    params = run.data.params
    assert params["arch"] == arch and params["seed"] == "3" and params["epochs"] == str(EPOCHS)
    assert params["data.range"] == "255.0" and params["data.dtype"] == "uint8"
    assert (
        params["split.train"] == "18" and params["split.val"] == "3" and params["split.test"] == "3"
    )
    assert params["plugin.distribution"] == "daeflow"
    assert "version.tensorflow" in params and "arch.kernel_size" in params
    assert run.data.tags["arch"] == arch and run.data.tags["plugin"] == "daeflow"
    client = mlflow.MlflowClient()
    for metric in ("loss", "val_loss", "val_psnr", "val_ssim"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
        assert steps == list(range(EPOCHS)), metric
    metrics = run.data.metrics
    for name in ("test_psnr", "test_ssim", "test_mse", "noisy_psnr", "noisy_ssim", "psnr_gain"):
        assert np.isfinite(metrics[name]), name
    assert metrics["psnr_gain"] == pytest.approx(metrics["test_psnr"] - metrics["noisy_psnr"])
    assert "split_indices.json" in [a.path for a in client.list_artifacts(run.info.run_id)]

    # The logged model reloads in a new process and gives the same output as the trained one.
    model_uri = f"runs:/{run.info.run_id}/model"
    x = np.load(noisy)[:3].astype(np.float32) / 255
    np.save(tmp_path / "x.npy", x)
    local = mlflow.keras.load_model(model_uri)
    out = subprocess.run(
        [sys.executable, "-c", RELOAD, model_uri, str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    reloaded = np.array(json.loads(out.stdout.strip().splitlines()[-1]), dtype=np.float32)
    np.testing.assert_allclose(reloaded, np.asarray(local(x)), atol=1e-5)
    assert reloaded.shape == x.shape


@pytest.mark.slow
def test_training_raises_marks_run_failed(tracking_uri, pair_files, monkeypatch):
    """An error inside training leaves the run FAILED, not RUNNING."""
    import daeflow.trainer

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(daeflow.trainer, "fit", explode)
    clean, noisy = pair_files(n=24, size=16)
    result = CliRunner().invoke(app, ["run", "--clean", str(clean), "--noisy", str(noisy)])
    assert result.exit_code != 0
    assert only_run(tracking_uri).info.status == "FAILED"
