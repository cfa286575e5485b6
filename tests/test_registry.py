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
        "export", tmp_path / "m.keras", "--format", "onnx", "-o", tmp_path / "m.onnx", code=1
    )
    one_error_line(result, 1, "pip install 'daeflow[export]'")  # the environment, not the input


def test_register_checks_the_logged_model_and_tags_the_version(tracking_uri, fresh_model):
    """The model daeflow logs has no `code` entry and no pickle, passes `check-model`, and its
    version records that; a tampered copy in the store is refused before a version exists."""
    from pathlib import Path

    import yaml

    from daeflow.track.flavor import log_model

    mlflow.set_experiment("registry-check")
    with mlflow.start_run() as run:
        log_model(fresh_model(), {"data_range": 255.0, "size_multiple": 1}, "daeflow")
    (mlmodel,) = Path(tracking_uri.removeprefix("sqlite:///")).parent.glob(
        "mlruns/*/models/*/artifacts/MLmodel"
    )
    pyfunc = yaml.safe_load(mlmodel.read_text())["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "daeflow.mlflow_flavor" and "code" not in pyfunc
    files = [p.relative_to(mlmodel.parent).as_posix() for p in mlmodel.parent.rglob("*")]
    assert not [f for f in files if f.endswith((".pkl", ".py")) or f.startswith("code")], files
    checked = cli("check-model", f"runs:/{run.info.run_id}/model")
    assert "a plain daeflow model" in checked.stdout

    cli("register", run.info.run_id, "--name", "checked")
    client = mlflow.MlflowClient()
    assert client.get_model_version("checked", "1").tags["daeflow.model_check"] == "passed"

    marker = mlmodel.parent / "code" / "daeflow"
    marker.mkdir(parents=True)
    (marker / "__init__.py").write_text("raise SystemExit('imported')\n")
    conf = yaml.safe_load(mlmodel.read_text())
    conf["flavors"]["python_function"]["code"] = "code"
    mlmodel.write_text(yaml.safe_dump(conf))
    result = cli("register", run.info.run_id, "--name", "checked", code=2)
    one_error_line(result, 2, f"refuses the model of run {run.info.run_id[:8]}", "carries 'code'")
    assert [str(v.version) for v in client.search_model_versions("name = 'checked'")] == ["1"]
