"""Classical baselines: tuned on validation, scored on the networks' test split, no TensorFlow."""

import subprocess
import sys

import mlflow
import numpy as np
import pytest
from conftest import cli, make_pairs


def data_args(pair_files):
    clean, noisy = pair_files(n=24, size=16)
    return ["--clean", str(clean), "--noisy", str(noisy)]


def by_command(command):
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return [r for r in runs if r.data.tags.get("daeflow.command") == command]


def test_baseline_methods_are_tuned_and_beat_identity(tracking_uri, pair_files):
    data = data_args(pair_files)
    cli("baseline", "--method", "identity", *data)
    cli("baseline", "--method", "tv", *data)
    runs = {r.data.params["method"]: r for r in by_command("baseline")}
    assert runs["tv"].data.metrics["test/psnr"] > runs["identity"].data.metrics["test/psnr"]
    assert runs["identity"].data.metrics["test/psnr_gain"] == pytest.approx(0, abs=1e-9)
    assert "tuned.weight" in runs["tv"].data.params
    headline = runs["tv"].data.tags["mlflow.note.content"]  # the top of the run's page
    assert headline.startswith("**test PSNR ") and " · baseline:tv, " in headline


def test_unknown_baseline_method_is_one_line(tracking_uri, pair_files):
    result = cli("baseline", "--method", "bm4d", *data_args(pair_files), code=2)
    assert result.stderr.strip().startswith("Error: Unknown method 'bm4d'")
    assert by_command("baseline") == []


@pytest.mark.parametrize("shape", ["(N, H, W)", "(N, H, W, 1)"])
@pytest.mark.parametrize("method", ["nlm", "wavelet"])  # both estimate the noise level
def test_baselines_take_single_channel_data(tracking_uri, tmp_path, shape, method):
    clean, noisy = make_pairs(n=24, size=16, channels=1)
    if shape == "(N, H, W)":
        clean, noisy = clean[..., 0], noisy[..., 0]
    np.save(tmp_path / "c.npy", clean)
    np.save(tmp_path / "n.npy", noisy)
    cli(
        "baseline",
        "--method",
        method,
        "--clean",
        str(tmp_path / "c.npy"),
        "--noisy",
        str(tmp_path / "n.npy"),
    )
    (run,) = by_command("baseline")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/psnr"] > run.data.metrics["test/noisy_psnr"]


PROBE = """
import sys
from daeflow.cli import app
try:
    app(sys.argv[1:], prog_name="daeflow")
except SystemExit as exit:
    assert not exit.code, exit.code
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_a_baseline_run_never_imports_tensorflow(tracking_uri, pair_files):
    args = ["baseline", "--method", "gaussian", *data_args(pair_files)]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"
    assert len(by_command("baseline")) == 1


@pytest.mark.slow
def test_a_run_is_set_against_baselines_of_its_data_range_only(tracking_uri, pair_files):
    """The params a run is about to log, and those a baseline logged, name the same data,
    split and range; a baseline at another data range is left out of the run's report."""
    data = data_args(pair_files)
    cli("baseline", "--method", "identity", *data)
    cli("baseline", "--method", "identity", "--data-range", "510", *data)
    cli("run", "--epochs", "1", "--batch-size", "8", *data)
    (run,) = by_command("run")
    report = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="report.html"
    )
    page = open(report).read()
    assert page.count("<td>baseline identity</td>") == 1
    identity = {r.data.params["data.range"]: r for r in by_command("baseline")}["255.0"]
    assert f"<td>baseline identity</td><td>{identity.data.metrics['test/psnr']:.4g}</td>" in page
