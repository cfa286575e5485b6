"""The CLI boundary: every failure a user can cause or meet is one line, a non-zero exit,
no traceback (unless DAEFLOW_DEBUG=1) and no MLflow run left RUNNING."""

import socket
import time

import mlflow
import numpy as np
import pytest
import typer
from conftest import one_error_line
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.cli.common import guarded

runner = CliRunner()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def keras_model(tmp_path):
    import keras

    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs), name="tiny")
    model.save(tmp_path / "model.keras")
    return tmp_path / "model.keras"


def test_denoise_checks_the_output_folder_before_any_work(tmp_path, keras_model):
    np.save(tmp_path / "in.npy", np.zeros((8, 8), np.uint8))
    result = runner.invoke(
        app,
        ["denoise", str(tmp_path / "in.npy"), "-o", "/missing/dir/x.npy", "--model", "nowhere"],
    )
    # The output is refused first: the missing model is never even looked for.
    one_error_line(result, 2, "folder of --output /missing/dir/x.npy does not exist")


def test_denoise_says_how_it_read_an_array_with_the_wrong_channels(tmp_path, keras_model):
    np.save(tmp_path / "in.npy", np.zeros((3, 48, 48), np.uint8))
    out = tmp_path / "out.npy"
    result = runner.invoke(
        app, ["denoise", str(tmp_path / "in.npy"), "-o", str(out), "--model", str(keras_model)]
    )
    one_error_line(result, 2, "takes 1-channel images", "(3, 48, 48) is read as (H, W, C) with 48")
    assert "save them as (3, 48, 48, 1)" in result.stderr and not out.exists()


def test_denoise_writes_the_output_whole_or_not_at_all(tmp_path, keras_model):
    image = (np.arange(40 * 56) % 251).reshape(40, 56).astype(np.uint8)
    np.save(tmp_path / "in.npy", image)
    out = tmp_path / "out.npy"
    args = ["denoise", str(tmp_path / "in.npy"), "-o", str(out), "--model", str(keras_model)]
    result = runner.invoke(app, [*args, "--tile", "16"])
    assert result.exit_code == 0, result.output
    assert np.load(out).shape == image.shape and np.load(out).dtype == np.uint8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "model.keras", "out.npy"]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--epochs", "1"],
        ["compare", "0123456789abcdef0123456789abcdef"],
        ["baseline", "--method", "identity"],
    ],
)
def test_an_unreachable_tracking_server_is_reported_in_seconds(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    result = runner.invoke(app, [*args, "--tracking-uri", uri])
    assert time.monotonic() - start < 10
    one_error_line(result, 1, f"Cannot reach the MLflow tracking server at {uri}", "mlflow server")


def test_a_sqlite_store_whose_folder_cannot_be_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("in the way")
    uri = f"sqlite:///{tmp_path}/file/store/mlflow.db"
    result = runner.invoke(app, ["run", "--epochs", "1", "--tracking-uri", uri])
    one_error_line(result, 1, "Cannot create the folder of the MLflow store", "writable folder")


def test_an_experiment_whose_artifacts_cannot_be_written(tracking_uri, tmp_path):
    (tmp_path / "file").write_text("in the way")
    mlflow.MlflowClient().create_experiment(
        "blocked", artifact_location=f"file://{tmp_path}/file/artifacts"
    )
    result = runner.invoke(app, ["run", "--epochs", "1", "--experiment", "blocked"])
    one_error_line(result, 1, "artifact location of experiment 'blocked' is not writable")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_a_learning_rate_that_cannot_train_is_refused(tracking_uri, value):
    result = runner.invoke(app, ["run", "--learning-rate", value])
    one_error_line(result, 2, "--learning-rate must be")


def test_compare_accepts_the_ids_it_prints(tracking_uri):
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    runs = []
    for psnr in (21.0, 23.0):
        run = client.create_run(experiment, tags={"daeflow.command": "run"})
        client.log_metric(run.info.run_id, "test_psnr", psnr)
        client.set_terminated(run.info.run_id)
        runs.append(run.info.run_id)
    listing = runner.invoke(app, ["compare"])
    assert listing.exit_code == 0, listing.output
    shown = [r[:8] for r in runs if r[:8] in listing.stdout]
    assert len(shown) == 2
    result = runner.invoke(app, ["compare", *shown, "--json", "--sheet", "x.png"])
    # Both runs are found by the printed prefix; they logged no images, which is said in a line.
    one_error_line(result, 2, "None of these runs logged test_examples.npz")
    unknown = runner.invoke(app, ["compare", "ffffffff"])
    one_error_line(unknown, 2, "No MLflow run 'ffffffff'", "first 8 characters")


boundary = typer.Typer()


@boundary.command()
@guarded
def explode(kind: str):
    """Raise the error named by `kind`, as a bug or the machine would."""
    if kind == "disk":
        raise OSError(28, "No space left on device", "/data/model.keras")
    if kind == "mlflow":
        from mlflow.exceptions import MlflowException

        raise MlflowException("RESOURCE_DOES_NOT_EXIST: Run 'x' not found")
    raise RuntimeError("a bug\nover two lines")


@pytest.mark.parametrize(
    "kind, fragments",
    [
        ("disk", ["No space left on device (/data/model.keras)", "Free some disk space"]),
        ("mlflow", ["MLflow: RESOURCE_DOES_NOT_EXIST: Run 'x' not found"]),
        ("bug", ["Unexpected RuntimeError: a bug over two lines", "DAEFLOW_DEBUG=1"]),
    ],
)
def test_errors_from_outside_daeflow_are_one_line_too(kind, fragments):
    one_error_line(runner.invoke(boundary, [kind]), 1, *fragments)


def test_daeflow_debug_lets_the_error_through(tmp_path, monkeypatch):
    from daeflow.errors import ModelLoadError

    np.save(tmp_path / "in.npy", np.zeros((8, 8), np.uint8))
    args = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy"), "--model", "x"]
    quiet = runner.invoke(app, args)
    one_error_line(quiet, 2, "Model not found: x.")
    monkeypatch.setenv("DAEFLOW_DEBUG", "1")
    loud = runner.invoke(app, args)
    assert loud.exit_code != 0 and isinstance(loud.exception, ModelLoadError)
    assert "Error:" not in loud.stderr  # the exception itself, with its traceback, not a line


def test_credentials_in_a_server_uri_are_never_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"http://alice:s3cret@127.0.0.1:{closed_port()}"
    result = runner.invoke(app, ["compare", "--tracking-uri", uri])
    line = one_error_line(result, 1, "Cannot reach the MLflow tracking server at http://127.0.0.1:")
    assert "s3cret" not in result.output and "alice" not in line


@pytest.mark.parametrize(
    "param, message",
    [
        ("epochs=,", "--param expects NAME=V1,V2,... Received: 'epochs=,'"),
        ("epochs=", "--param expects NAME=V1,V2,..."),
    ],
)
def test_a_sweep_grid_without_values_is_refused(tracking_uri, param, message):
    result = runner.invoke(app, ["sweep", "--arch", "conv_baseline", "--param", param])
    one_error_line(result, 2, message)
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_a_sweep_parameter_given_twice_is_refused(tracking_uri):
    args = ["sweep", "--arch", "conv_baseline", "--param", "epochs=1", "--param", "epochs=2"]
    one_error_line(runner.invoke(app, args), 2, "--param epochs is given twice")


def test_runs_on_an_empty_store_says_so(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = runner.invoke(app, ["runs", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"No training runs in {uri}."


def test_runs_of_one_seed_get_different_names(tracking_uri):
    """MLflow draws run names from Python's `random`, which a run seeds with --seed."""
    import random

    from daeflow.track import runs

    names = []
    for _ in range(3):
        random.seed(0)
        with runs.tracked_run("names", None, {}) as active:
            names.append(active.info.run_name)
        assert random.random() == random.Random(0).random()  # the seeded state is kept
    assert len(set(names)) == 3, names
