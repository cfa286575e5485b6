"""Images in runs, cost metrics, compare, sweep (with a failing child), ui."""

import json

import mlflow
import numpy as np
import pytest
from conftest import cli


def data_args(pair_files):
    clean, noisy = pair_files(n=24, size=16)
    return ["--clean", str(clean), "--noisy", str(noisy), "--batch-size", "8"]


def by_command(command):
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return [r for r in runs if r.data.tags.get("daeflow.command") == command]


@pytest.mark.parametrize(
    "param, message",
    [
        ("learning_rate=0.001,-1", "--learning-rate must be >= 0. Received: '-1'"),
        ("epochs=1.5", "--epochs must be a whole number. Received: '1.5'"),
        ("augment=maybe", "--augment must be true or false. Received: 'maybe'"),
        ("arch.filters=2", "parameter 'filters' must be >= 4. Received: '2'"),
        ("arch.nope=1", "has no parameter 'nope'"),
    ],
)
def test_sweep_refuses_a_bad_grid_before_any_run(tracking_uri, pair_files, param, message):
    result = cli("sweep", "--arch", "conv_baseline", "--param", param, code=2)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: Sweep point 'conv_baseline ") and message in line
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--param", "objective.nope=1"], "Objective 'noise2void' has no parameter 'nope'"),
        (["--param", "objective.strategy=uniform,sideways"], "must be one of uniform, median"),
        (
            ["--param", "objective=noise2void,noise2noise"],
            "Objectives noise2noise, noise2void cannot be ranked together",
        ),
    ],
)
def test_sweep_refuses_a_bad_objective_grid_before_any_run(
    tracking_uri, pair_files, extra, message
):
    _, noisy = pair_files(n=8, size=16)
    args = ["sweep", "--arch", "conv_baseline", "--objective", "noise2void", "--noisy", noisy]
    result = cli(*args, *extra, code=2)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_objective_grid_keys_reach_each_childs_objective_params():
    from daeflow.config import RunConfig, TrainOptions
    from daeflow.workflow.sweep import child_config, configurations, parse_grid

    grid = parse_grid(["objective.strategy=uniform,median", "epochs=1"])
    base = RunConfig(
        "conv_baseline",
        train=TrainOptions(objective="noise2void", objective_params={"roi_size": "5"}),
    )
    made = [child_config(base, arch, point, 3) for _, arch, point in configurations(["x"], grid)]
    assert [c.train.objective_params for c in made] == [
        {"roi_size": "5", "strategy": "uniform"},
        {"roi_size": "5", "strategy": "median"},
    ]
    assert {(c.train.objective, c.train.epochs, c.train.seed) for c in made} == {
        ("noise2void", 1, 3)
    }


@pytest.mark.slow
def test_a_sweep_without_clean_images_ranks_and_registers_by_validation_loss(
    tracking_uri, pair_files
):
    _, noisy = pair_files(n=12, size=16)
    result = cli(
        "sweep", "--arch", "conv_baseline", "--objective", "noise2void", "--noisy", noisy,
        "--param", "objective.masked_pixel_percentage=0.5,20", "--seeds", "1", "--epochs", "1",
        "--batch-size", "4", "--register-best", "n2v",
    )  # fmt: skip
    assert "Runs are ranked by best_val_loss: the noise2void objective's validation loss" in (
        result.stdout
    )
    assert "val loss mean" in result.stdout
    (parent,) = by_command("sweep")
    assert parent.data.tags["daeflow.ranked_by"] == "best_val_loss (lower is better)"
    children = {
        r.data.params["objective.masked_pixel_percentage"]: r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == {"0.5", "20.0"}
    losses = {k: r.data.metrics["train/best_val_loss"] for k, r in children.items()}
    assert all("test/psnr" not in r.data.metrics for r in children.values())
    assert len(set(losses.values())) == 2
    best = min(losses, key=losses.get)
    grid_value = {"0.5": "0.5", "20.0": "20"}[best]
    assert parent.data.tags["best_config"] == (
        f"conv_baseline objective.masked_pixel_percentage={grid_value}"
    )
    assert parent.data.metrics["sweep/best_val_loss_mean"] == pytest.approx(losses[best])
    version = mlflow.MlflowClient().get_model_version("n2v", "1")
    assert version.run_id == children[best].info.run_id


@pytest.mark.slow
def test_sweep_then_compare_and_baseline(tracking_uri, pair_files, tmp_path):
    data = data_args(pair_files)
    # patch_size=32 is larger than the 16x16 images: those children fail, the sweep goes on.
    sweep = cli(
        "sweep",
        "--arch",
        "conv_baseline",
        "--arch",
        "residual",
        "--seeds",
        "2",
        "--param",
        "patch_size=8,32",
        "--param",
        "epochs=1",
        "--register-best",
        "swept",
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
        config = f"{arch}_patch_size_8_epochs_1"
        children_psnr = [
            c.data.metrics["test/psnr"]
            for c in children
            if c.data.tags["sweep.config"] == f"{arch} patch_size=8 epochs=1"
        ]
        assert metrics[f"sweep/test_psnr_mean/{config}"] == pytest.approx(np.mean(children_psnr))
        assert metrics[f"sweep/test_psnr_std/{config}"] == pytest.approx(np.std(children_psnr))
        assert f"sweep/test_psnr_mean/{arch}_patch_size_32_epochs_1" not in metrics
    assert parent.data.tags["best_config"].startswith(("conv_baseline", "residual"))
    # --register-best: the finished child with the best validation PSNR, never the test set's.
    finished = [c for c in children if c.info.status == "FINISHED"]
    best = max(finished, key=lambda c: c.data.metrics["train/best_val_psnr"])
    version = mlflow.MlflowClient().get_model_version("swept", "1")
    assert version.run_id == best.info.run_id
    assert "| this model |" in version.description

    # Images and cost in every finished child.
    child = next(c for c in children if c.info.status == "FINISHED")
    client = mlflow.MlflowClient()
    paths = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"test_per_image.json", "worst_test_images.png", "test_examples.npz"} <= paths
    assert "images" in paths  # the per-epoch probe grids of mlflow.log_image(key=...)
    for name in (
        "model/trainable_params",
        "train/seconds",
        "train/images_per_second",
        "model/inference_ms",
        "train/peak_memory_mb",
        "test/psnr_p05",
        "test/psnr_p50",
        "test/psnr_p95",
    ):
        assert name in child.data.metrics, name
    assert {"report.html", "worst_test_images.png"} <= paths
    table = json.loads(
        open(
            mlflow.artifacts.download_artifacts(
                run_id=child.info.run_id, artifact_path="test_per_image.json"
            )
        ).read()
    )
    assert len(table["data"]) == 3

    # A classical baseline on the same split, then both in one comparison.
    base = cli("baseline", "--method", "gaussian", *data[:-2])
    assert "test PSNR" in base.stdout
    (reference,) = by_command("baseline")
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert reference.data.tags["data.train.sha256"] == finished[0].data.tags["data.train.sha256"]
    ids = [reference.info.run_id, finished[0].info.run_id]
    sheet = tmp_path / "sheet.png"
    result = cli("compare", *ids, "--sheet", str(sheet), "--json")
    payload = json.loads(result.stdout)
    assert [r["run_id"] for r in payload["runs"]] == sorted(
        ids, key=lambda i: -mlflow.get_run(i).data.metrics["test/psnr"]
    )
    assert sheet.exists() and sheet.read_bytes()[:4] == b"\x89PNG"
    table = cli("compare")
    assert "baseline:gaussian" in table.stdout and "conv_baseline" in table.stdout


def test_ui_command_binds_to_localhost_and_serves_artifacts(tmp_path):
    from daeflow.cli.ui import ui_command

    store = tmp_path / "store"
    (store / "artifacts").mkdir(parents=True)
    (store / "mlflow.db").write_bytes(b"")
    command = ui_command(store, None, 5123)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{store / 'mlflow.db'}"
    assert command[command.index("--artifacts-destination") + 1] == str(store / "artifacts")
    result = cli("ui", "--store", tmp_path / "missing", code=2)
    assert "No MLflow store" in result.stderr
