"""Images in runs, cost metrics, compare, sweep (with a failing child), baselines, ui."""

import json

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow.cli import app


def invoke(*args, code=0):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def data_args(pair_files):
    clean, noisy = pair_files(n=24, size=16)
    return ["--clean", str(clean), "--noisy", str(noisy), "--batch-size", "8"]


def by_command(command):
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return [r for r in runs if r.data.tags.get("daeflow.command") == command]


@pytest.mark.slow
def test_sweep_then_compare_and_baseline(tracking_uri, pair_files, tmp_path):
    data = data_args(pair_files)
    sweep = invoke(
        "sweep",
        "--arch",
        "conv_baseline",
        "--arch",
        "residual",
        "--seeds",
        "2",
        "--param",
        "learning_rate=0.001,-1",
        "--param",
        "epochs=1",
        *data,
    )
    assert "4 failed" in sweep.stdout and "4 finished" in sweep.stdout
    (parent,) = by_command("sweep")
    assert parent.info.status == "FINISHED"
    children = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    statuses = sorted(c.info.status for c in children)
    assert statuses == ["FAILED"] * 4 + ["FINISHED"] * 4
    metrics = parent.data.metrics
    for arch in ("conv_baseline", "residual"):
        prefix = f"{arch}/learning_rate_0.001/epochs_1"
        assert np.isfinite(metrics[f"{prefix}.test_psnr_mean"])
        assert metrics[f"{prefix}.test_psnr_std"] >= 0
    assert parent.data.tags["best_config"].startswith(("conv_baseline", "residual"))

    # Images and cost in every finished child.
    child = next(c for c in children if c.info.status == "FINISHED")
    client = mlflow.MlflowClient()
    paths = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"test_per_image.json", "worst_test_images.png", "test_examples.npz"} <= paths
    assert "images" in paths  # the per-epoch probe grids of mlflow.log_image(key=...)
    for name in (
        "trainable_params",
        "train_seconds",
        "train_images_per_second",
        "inference_ms",
        "peak_memory_mb",
        "test_psnr_p05",
        "test_psnr_p50",
        "test_psnr_p95",
    ):
        assert name in child.data.metrics, name
    table = json.loads(
        open(
            mlflow.artifacts.download_artifacts(
                run_id=child.info.run_id, artifact_path="test_per_image.json"
            )
        ).read()
    )
    assert len(table["data"]) == 3

    # A classical baseline on the same split, then both in one comparison.
    base = invoke("baseline", "--method", "gaussian", *data[:-2])
    assert "test PSNR" in base.stdout
    (reference,) = by_command("baseline")
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert reference.data.tags["data.train.sha256"] == finished[0].data.tags["data.train.sha256"]
    ids = [reference.info.run_id, finished[0].info.run_id]
    sheet = tmp_path / "sheet.png"
    result = invoke("compare", *ids, "--sheet", str(sheet), "--json")
    payload = json.loads(result.stdout)
    assert [r["run_id"] for r in payload["runs"]] == sorted(
        ids, key=lambda i: -mlflow.get_run(i).data.metrics["test_psnr"]
    )
    assert payload["runs"][0]["test_psnr"] >= payload["runs"][1]["test_psnr"]
    assert sheet.exists() and sheet.read_bytes()[:4] == b"\x89PNG"
    table = invoke("compare")
    assert "baseline:gaussian" in table.stdout and "conv_baseline" in table.stdout


def test_baseline_methods_are_tuned_and_beat_identity(tracking_uri, pair_files):
    data = data_args(pair_files)[:-2]
    invoke("baseline", "--method", "identity", *data)
    invoke("baseline", "--method", "tv", *data)
    runs = {r.data.params["method"]: r for r in by_command("baseline")}
    assert runs["tv"].data.metrics["test_psnr"] > runs["identity"].data.metrics["test_psnr"]
    assert runs["identity"].data.metrics["psnr_gain"] == pytest.approx(0, abs=1e-9)
    assert "tuned.weight" in runs["tv"].data.params


def test_unknown_baseline_method_is_one_line(tracking_uri, pair_files):
    result = invoke("baseline", "--method", "bm4d", *data_args(pair_files)[:-2], code=2)
    assert result.stderr.strip().startswith("Error: Unknown method 'bm4d'")
    assert by_command("baseline") == []


def test_ui_command_binds_to_localhost_and_serves_artifacts(tmp_path):
    from daeflow.cli.reference import ui_command

    store = tmp_path / "store"
    (store / "artifacts").mkdir(parents=True)
    (store / "mlflow.db").write_bytes(b"")
    command = ui_command(store, None, 5123)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{store / 'mlflow.db'}"
    assert command[command.index("--artifacts-destination") + 1] == str(store / "artifacts")
    result = CliRunner().invoke(app, ["ui", "--store", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "No MLflow store" in result.stderr
