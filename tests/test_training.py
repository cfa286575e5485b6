"""End to end: real Keras training of each built-in architecture, logged to a real MLflow store."""

import json
import re
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.track import view

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


# The default and one with a size multiple (pooling): the logging code is the same for every
# architecture, and the conformance kit trains, saves and reloads each of them.
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["conv_baseline", "conv_transpose"])
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
    # Per-epoch curves in the chart section that MLflow shows first, numbered as printed.
    for metric in ("loss", "val_loss", "val_psnr", "val_ssim"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, f"epoch/{metric}")]
        assert steps == list(range(1, EPOCHS + 1)), metric
    metrics = run.data.metrics
    sections = sorted({name.rsplit("/", 1)[0] for name in metrics})
    assert sections[0] == "epoch" and "/" in min(metrics) and all("/" in n for n in metrics)
    for name in ("psnr", "ssim", "mse", "noisy_psnr", "noisy_ssim", "psnr_gain"):
        assert np.isfinite(metrics[f"test/{name}"]), name
    assert metrics["test/psnr_gain"] == pytest.approx(
        metrics["test/psnr"] - metrics["test/noisy_psnr"]
    )
    assert metrics["train/best_epoch"] in range(1, EPOCHS + 1)
    assert run.data.tags["daeflow.command_line"].startswith(f"daeflow run --arch {arch} --clean")
    assert "split_indices.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert view.has_this_view(experiment.tags)  # the runs table daeflow's links open
    headline = run.data.tags["mlflow.note.content"]  # the top of the run's page
    assert headline.startswith(f"**test PSNR {metrics['test/psnr']:.2f} dB · SSIM ")
    assert f" · {arch}, best epoch {metrics['train/best_epoch']:.0f}, " in headline
    report = open(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report.html")
    ).read()
    assert report.count("<svg") == 2 and report.count('src="data:image/png;base64,') == 2
    assert f"daeflow run: {arch}" in report and "noisy input" in report
    worse = metrics["test/psnr"] < metrics["test/noisy_psnr"]
    assert ("are worse than the noisy input" in result.output) == worse

    # The logged model reloads as a pyfunc and gives the same output as the trained one: in
    # a new process for the default architecture (the conformance kit does it for each).
    model_uri = f"runs:/{run.info.run_id}/model"
    x = np.load(noisy)[:3].astype(np.float32) / 255
    np.save(tmp_path / "x.npy", x)
    local = mlflow.keras.load_model(model_uri)
    from daeflow.infer.loading import load_denoiser

    metadata = mlflow.models.get_model_info(model_uri).metadata
    radius = {"conv_baseline": 13, "conv_transpose": 17}[arch]  # at the default kernel size
    assert metadata["receptive_radius"] == radius and metadata["tile_margin"] == 32
    assert load_denoiser(model_uri).margin == 32
    if arch == "conv_baseline":
        out = subprocess.run(
            [sys.executable, "-c", RELOAD, model_uri, str(tmp_path / "x.npy")],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        reloaded = np.array(json.loads(out.stdout.strip().splitlines()[-1]), dtype=np.float32)
    else:
        reloaded = np.asarray(mlflow.pyfunc.load_model(model_uri).predict(x), dtype=np.float32)
    # The pyfunc clips to the data range, as `daeflow denoise` does.
    np.testing.assert_allclose(reloaded, np.clip(local(x), 0, 1), atol=1e-5)
    assert reloaded.shape == x.shape


@pytest.mark.slow
def test_training_raises_marks_run_failed(tracking_uri, pair_files, monkeypatch):
    """An error inside training leaves the run FAILED, not RUNNING."""
    import daeflow.train.trainer

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(daeflow.train.trainer, "fit", explode)
    clean, noisy = pair_files(n=24, size=16)
    result = CliRunner().invoke(app, ["run", "--clean", str(clean), "--noisy", str(noisy)])
    assert result.exit_code != 0
    assert only_run(tracking_uri).info.status == "FAILED"


@pytest.mark.slow
def test_a_loss_that_becomes_nan_fails_the_run_in_one_line(tracking_uri, pair_files):
    clean, noisy = pair_files(n=24, size=16)
    result = CliRunner().invoke(
        app,
        ["run", "--arch", "residual", "--arch-param", "depth=3", "--arch-param", "width=8"]
        + ["--clean", str(clean), "--noisy", str(noisy), "--learning-rate", "1e12"],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert re.match(r"Error: Training diverged: loss became (nan|inf) in epoch \d+\. Lower", line)
    run = only_run(tracking_uri)
    assert run.info.status == "FAILED"
    client = mlflow.MlflowClient()
    assert client.search_logged_models([run.info.experiment_id]) == []  # no NaN model logged


@pytest.mark.slow
def test_plain_run_works_with_every_bad_plugin_installed(site, tracking_uri, pair_files):
    from test_plugins import BAD_PLUGINS, CLAIMS_A_BUILTIN, GOOD

    for dist, (code, _) in BAD_PLUGINS.items():
        site(dist, code)
    site("daeflow-impostor", CLAIMS_A_BUILTIN)
    site("daeflow-twin-a", GOOD.format(arch="twin"))
    site("daeflow-twin-b", GOOD.format(arch="twin"))
    site("daeflow-shared-a", GOOD.format(arch="arch_a"), entry="shared")
    site("daeflow-shared-b", GOOD.format(arch="arch_b"), entry="shared")
    clean, noisy = pair_files(n=24, size=16)
    result = CliRunner().invoke(
        app,
        ["run", "--arch", "conv_baseline", "--clean", str(clean), "--noisy", str(noisy)]
        + ["--epochs", "1", "--batch-size", "8"],
    )
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 10 and all(w.startswith("Warning: plugin ") for w in warnings)
    run = only_run(tracking_uri)
    assert run.info.status == "FINISHED" and run.data.params["plugin.distribution"] == "daeflow"
