"""The registry and export commands refuse what they cannot do, in one line, before any work."""

import mlflow
import pytest
from conftest import cli, one_error_line


def test_a_name_the_registry_cannot_carry_is_refused_before_training(tracking_uri):
    result = cli("run", "--epochs", "1", "--register", "team/denoiser", code=2)
    one_error_line(result, 2, "'team/denoiser'", "'/'")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_registering_an_unknown_run_is_refused(tracking_uri):
    one_error_line(cli("register", "feedbeef", "--name", "d", code=2), 2, "No MLflow run")


def test_registering_a_failed_run_or_one_without_a_model_is_refused(tracking_uri):
    mlflow.set_experiment("registry-refusals")
    with mlflow.start_run() as failed:
        pass
    mlflow.MlflowClient().set_terminated(failed.info.run_id, "FAILED")
    result = cli("register", failed.info.run_id, "--name", "d", code=2)
    one_error_line(result, 2, "is FAILED, not FINISHED")
    with mlflow.start_run() as empty:
        pass
    one_error_line(cli("register", empty.info.run_id, "--name", "d", code=2), 2, "logged no model")
    assert mlflow.MlflowClient().search_registered_models() == []


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--format", "tflite", "-o", "x"], "--format must be one of savedmodel, onnx"),
        (["--format", "onnx", "-o", "missing/x.onnx"], "does not exist"),
    ],
)
def test_export_refuses_a_format_or_output_it_cannot_write(tmp_path, args, fragment):
    folder = tmp_path / "model.keras"
    result = cli("export", folder, *args, code=2)
    one_error_line(result, 2, fragment)


def test_onnx_export_without_its_tools_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as on a plain `pip install daeflow`
    result = cli(
        "export", tmp_path / "m.keras", "--format", "onnx", "-o", tmp_path / "m.onnx", code=2
    )
    one_error_line(result, 2, "pip install 'daeflow[export]'")
