"""A model is data: crafted models that would run code are refused before anything runs.

Each test builds the hostile model for real (a TensorFlow SavedModel whose graph writes
a file, a pickled pyfunc whose predict writes a file, an MLmodel naming a module that
writes a file when imported) and checks that daeflow refuses it in one line and that
the file was never written.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import free_port, one_error_line
from typer.testing import CliRunner

from daeflow.cli import app

EXAMPLE_MODELS = sorted(
    Path(__file__).parent.parent.glob("mlruns.example/artifacts/*/models/*/artifacts")
)
OLD_MODELS = ("conv_baseline", "resunet")


def denoise(model, tmp_path, *extra, shape=(16, 16)):
    image = tmp_path / "in.npy"
    np.save(image, np.full(shape, 100, np.uint8))
    return CliRunner().invoke(
        app, ["denoise", str(image), "-o", str(tmp_path / "out.npy"), "--model", str(model), *extra]
    )


def refused(result, *fragments):
    return one_error_line(result, 2, *fragments)


def tiny_model(channels=1):
    import keras

    inputs = keras.Input((None, None, channels))
    outputs = keras.layers.Conv2D(channels, 3, padding="same", name="conv")(inputs)
    return keras.Model(inputs, outputs, name="tiny")


def daeflow_model_folder(path: Path) -> Path:
    from daeflow.track.flavor import save_local

    save_local(tiny_model(), path, {"data_range": 255.0, "size_multiple": 1}, "daeflow")
    return path


def edit_mlmodel(folder: Path, edit) -> None:
    conf = yaml.safe_load((folder / "MLmodel").read_text())
    edit(conf)
    (folder / "MLmodel").write_text(yaml.safe_dump(conf))


def test_an_exported_savedmodel_is_refused_and_its_graph_never_runs(tmp_path):
    import tensorflow as tf

    marker = tmp_path / "graph-ran.txt"

    class Payload(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
        def serve(self, x):
            tf.io.write_file(str(marker), "the graph ran")
            return x

    folder = daeflow_model_folder(tmp_path / "model")
    tf.saved_model.save(Payload(), str(folder / "data" / "model"))
    edit_mlmodel(folder, lambda conf: conf["flavors"]["keras"].update(save_exported_model=True))
    refused(denoise(folder, tmp_path), "exported TensorFlow SavedModel", "has no safe mode")
    assert not marker.exists()


def test_a_pickled_pyfunc_model_is_refused_before_unpickling(tmp_path):
    import mlflow.pyfunc

    marker = tmp_path / "unpickled.txt"
    module = tmp_path / "payload_pkg"
    module.mkdir()
    (module / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            import mlflow.pyfunc

            class Payload(mlflow.pyfunc.PythonModel):
                def __setstate__(self, state):
                    open({str(marker)!r}, "w").write("unpickled")

                def predict(self, context, model_input):
                    return model_input
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from payload_pkg import Payload

        mlflow.pyfunc.save_model(tmp_path / "model", python_model=Payload())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("payload_pkg", None)
    marker.unlink(missing_ok=True)  # MLflow itself unpickles it once while saving
    refused(denoise(tmp_path / "model", tmp_path), "pickled Python model", "never runs code")
    assert not marker.exists()


def test_custom_object_modules_outside_daeflow_plugins_are_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_layers.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    folder = daeflow_model_folder(tmp_path / "model")
    edit_mlmodel(
        folder, lambda conf: conf["metadata"].update(custom_object_modules=["evil_layers"])
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, so only daeflow's rule stops it
    refused(denoise(folder, tmp_path), "it asks to import 'evil_layers'", "daeflow plugin")
    assert not marker.exists()
    # MLflow's own loader calls daeflow's flavour, which applies the same rule.
    done = subprocess.run(
        [sys.executable, "-c", "import mlflow.pyfunc, sys; mlflow.pyfunc.load_model(sys.argv[1])"]
        + [str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode != 0 and "it asks to import 'evil_layers'" in done.stderr
    assert not marker.exists()


def test_a_keras_data_path_leaving_the_model_folder_is_refused(tmp_path):
    folder = daeflow_model_folder(tmp_path / "model")
    edit_mlmodel(folder, lambda conf: conf["flavors"]["keras"].update(data="../../etc"))
    refused(denoise(folder, tmp_path), "Keras data path '../../etc' leaves the model folder")


def test_a_keras_file_with_a_lambda_layer_is_refused_in_one_line(tmp_path):
    import keras

    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 0.5)(inputs))
    model.save(tmp_path / "lambda.keras")
    refused(denoise(tmp_path / "lambda.keras", tmp_path), "Lambda layer", "never runs")


@pytest.mark.parametrize(
    "name, content, fragment",
    [
        ("corrupt.keras", b"PK\x03\x04 but not really a zip", "not a valid zip archive"),
        ("text.keras", b"hello", "is not a .keras file"),
        ("legacy.h5", b"\x89HDF\r\n\x1a\n", "legacy HDF5 model"),
    ],
)
def test_damaged_or_legacy_model_files_are_refused(tmp_path, name, content, fragment):
    (tmp_path / name).write_bytes(content)
    refused(denoise(tmp_path / name, tmp_path), fragment)


def test_a_folder_without_mlmodel_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    refused(denoise(tmp_path / "empty", tmp_path), "holds no MLmodel file")


@pytest.mark.parametrize("folder", EXAMPLE_MODELS, ids=lambda p: p.parent.name)
def test_example_models_load_and_denoise(installed_plugins, folder, tmp_path):
    result = denoise(folder, tmp_path, shape=(16, 24, 3))
    assert result.exit_code == 0, result.output
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    assert "data range 255 (stored with the model)" in result.stdout


@pytest.mark.parametrize("folder", EXAMPLE_MODELS, ids=lambda p: p.parent.name)
def test_models_saved_without_a_tile_margin_tile_with_the_old_fixed_one(installed_plugins, folder):
    from daeflow.infer.loading import load_denoiser
    from daeflow.runtime.tiles import MARGIN

    assert "tile_margin" not in yaml.safe_load((folder / "MLmodel").read_text())["metadata"]
    assert load_denoiser(str(folder)).margin == MARGIN == 32


@pytest.mark.parametrize("margin", [-1, 2.5, "32", True])
def test_a_tile_margin_that_is_not_an_int_is_refused(tmp_path, margin):
    folder = daeflow_model_folder(tmp_path / "model")
    edit_mlmodel(folder, lambda conf: conf["metadata"].update(tile_margin=margin))
    refused(denoise(folder, tmp_path), f"its tile_margin {margin!r} is not an int >= 0")


@pytest.mark.parametrize("folder", EXAMPLE_MODELS, ids=lambda p: p.parent.name)
def test_example_models_keep_their_pyfunc_contract(installed_plugins, folder):
    """Models logged before daeflow 0.2 take float32 (N, H, W, C) on [0, 1] through the
    pyfunc, as they always did (now by tiles, clipped to [0, 1] as `daeflow denoise` is)."""
    import mlflow

    from daeflow.infer.loading import load_denoiser

    batch = np.random.default_rng(0).uniform(0, 1, (2, 24, 40, 3)).astype(np.float32)
    denoised = mlflow.pyfunc.load_model(str(folder)).predict(batch)
    keras_model = load_denoiser(str(folder)).model
    assert denoised.dtype == np.float32 and denoised.shape == batch.shape
    assert np.allclose(denoised, np.clip(keras_model(batch), 0, 1), atol=1e-5)


@pytest.mark.parametrize("arch", OLD_MODELS)
def test_models_in_the_format_before_this_layout_still_load(installed_plugins, arch, tmp_path):
    """An MLmodel as daeflow 0.1 wrote it (mlruns.example until this change): no data dtype,
    the loader named daeflow.mlflow_flavor, plugin layers named by module."""
    from daeflow.plugin.registry import get_architecture
    from daeflow.track.flavor import save_local

    provided = get_architecture(arch)
    model = provided.spec.build((None, None, 3), provided.spec.defaults)
    metadata = {"arch": arch, "data_range": 255.0, "size_multiple": provided.spec.size_multiple}
    save_local(model, tmp_path / "model", metadata, provided.plugin.distribution)
    conf = yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())
    assert conf["flavors"]["python_function"]["loader_module"] == "daeflow.mlflow_flavor"
    assert "data_dtype" not in conf["metadata"]
    if arch == "resunet":
        assert conf["metadata"]["custom_object_modules"] == ["daeflow_resunet.layers"]
    result = denoise(tmp_path / "model", tmp_path, shape=(16, 24, 3))
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "out.npy").shape == (16, 24, 3)
    assert "data range 255 (uint8)" in result.stdout  # no dtype stored: the input's dtype rules


@pytest.mark.parametrize(
    "module", ["daeflow.__main__", "daeflow.cli", "daeflow_resunet.__main__", "os", "a b"]
)
def test_only_plugin_layer_modules_may_be_named(installed_plugins, tmp_path, module):
    folder = daeflow_model_folder(tmp_path / "model")
    edit_mlmodel(folder, lambda conf: conf["metadata"].update(custom_object_modules=[module]))
    refused(denoise(folder, tmp_path), f"it asks to import {module!r}")


def test_pyfunc_code_and_data_entries_are_refused(tmp_path):
    for key, value in (("code", "code"), ("data", "/elsewhere"), ("model_config", {"a": 1})):
        folder = daeflow_model_folder(tmp_path / key)
        entry = {key: value}
        edit_mlmodel(
            folder, lambda conf, entry=entry: conf["flavors"]["python_function"].update(entry)
        )
        refused(denoise(folder, tmp_path), f"carries {key!r}")


def test_a_linked_keras_file_outside_the_folder_is_refused(tmp_path):
    folder = daeflow_model_folder(tmp_path / "model")
    outside = tmp_path / "outside.keras"
    (folder / "data" / "model.keras").rename(outside)
    (folder / "data" / "model.keras").symlink_to(outside)
    refused(denoise(folder, tmp_path), "its .keras file 'model.keras' leaves the model folder")


@pytest.mark.parametrize(
    "metadata, fragment",
    [
        ({"data_range": -1}, "data_range -1 is not a positive number"),
        ({"size_multiple": 0}, "size_multiple 0 is not an int >= 1"),
        ({"custom_object_modules": "evil"}, "must be a list of module names"),
    ],
)
def test_metadata_that_cannot_be_used_is_refused(tmp_path, metadata, fragment):
    folder = daeflow_model_folder(tmp_path / "model")
    edit_mlmodel(folder, lambda conf: conf["metadata"].update(metadata))
    refused(denoise(folder, tmp_path), fragment)


def test_the_install_hint_never_passes_options_from_a_model(tmp_path):
    folder = daeflow_model_folder(tmp_path / "model")
    evil = "daeflow-x --index-url https://evil.example/simple"
    edit_mlmodel(
        folder,
        lambda conf: conf["metadata"].update(
            custom_object_modules=["nowhere_layers"], plugin_distribution=evil
        ),
    )
    line = refused(denoise(folder, tmp_path), "Install the daeflow plugin that made the model")
    assert "pip install" not in line and "evil" not in line


# Tampered copies of a daeflow model (issue 25): MLflow's own loaders would run their code;
# `daeflow check-model`, `serve` and `denoise` refuse them without running it.
TAMPERED = ("code-package", "pickle-with-keras", "pickle-only")


class _Payload:
    """Unpickled, it creates the marker file: what a hostile python_model.pkl does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def saved_model_folder(tmp_path_factory):
    """A daeflow model folder as a run logs it, saved once; copy it before changing it."""
    return daeflow_model_folder(tmp_path_factory.mktemp("saved") / "model")


def model_copy(saved_model_folder, tmp_path, name="model") -> Path:
    import shutil

    return Path(shutil.copytree(saved_model_folder, tmp_path / name))


def tampered(saved_model_folder, tmp_path, kind: str) -> tuple[Path, Path]:
    """A copy of a daeflow model that runs code when MLflow loads it, and the marker it makes."""
    import pickle

    folder, marker = model_copy(saved_model_folder, tmp_path, kind), tmp_path / f"{kind}.ran"
    if kind == "code-package":
        (folder / "code" / "daeflow").mkdir(parents=True)
        (folder / "code" / "daeflow" / "__init__.py").write_text(
            f"open({str(marker)!r}, 'w').write('ran')\n"
        )
        edit_mlmodel(folder, lambda conf: conf["flavors"]["python_function"].update(code="code"))
        return folder, marker
    (folder / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))

    def pickled_loader(conf):
        conf["flavors"]["python_function"].update(
            loader_module="mlflow.pyfunc.model", python_model="python_model.pkl"
        )
        if kind == "pickle-only":
            del conf["flavors"]["keras"]

    edit_mlmodel(folder, pickled_loader)
    return folder, marker


def daeflow_process(*args, env=None) -> subprocess.CompletedProcess:
    """`python -m daeflow ...` in a fresh interpreter, where a shadowing package would win."""
    return subprocess.run(
        [sys.executable, "-m", "daeflow", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def one_line_exit_2(done: subprocess.CompletedProcess, *fragments) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: daeflow refuses the model ")
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def test_the_tampered_folders_run_code_through_mlflows_own_loader(saved_model_folder, tmp_path):
    """What daeflow cannot prevent (docs/models.md says so): MLflow's loader imports the `code`
    package and unpickles python_model.pkl before any daeflow code runs. This also proves
    that the folders the next test refuses are live."""
    folders = [tampered(saved_model_folder, tmp_path, kind) for kind in TAMPERED]
    script = (
        "import sys, mlflow.pyfunc\n"
        "for folder in sys.argv[1:]:\n"
        "    try:\n"
        "        mlflow.pyfunc.load_model(folder)\n"
        "    except Exception:\n"
        "        pass\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, *(str(folder) for folder, _ in folders)],
        capture_output=True,
        timeout=300,
    )
    assert [marker.exists() for _, marker in folders] == [True, True, True]


@pytest.mark.parametrize("kind", TAMPERED)
def test_check_model_serve_and_denoise_refuse_a_tampered_folder(saved_model_folder, tmp_path, kind):
    folder, marker = tampered(saved_model_folder, tmp_path, kind)
    reason = {
        "code-package": "carries 'code'",
        "pickle-with-keras": "its pyfunc loader is 'mlflow.pyfunc.model'",
        "pickle-only": "it is a pickled Python model",
    }[kind]
    one_line_exit_2(daeflow_process("check-model", folder), reason)
    port = str(free_port())
    one_line_exit_2(daeflow_process("serve", folder, "--port", port), reason)
    refused(denoise(folder, tmp_path), reason)
    assert not marker.exists()


def check_model(folder):
    return CliRunner().invoke(app, ["check-model", str(folder)])


def test_check_model_says_a_plain_daeflow_model_is_one(saved_model_folder):
    result = check_model(saved_model_folder)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    assert "a plain daeflow model: pyfunc loader daeflow.mlflow_flavor" in line
    assert "config.json, metadata.json, model.weights.h5" in line


def _rewrite_archive(folder: Path, edit) -> None:
    import zipfile

    keras_file = folder / "data" / "model.keras"
    with zipfile.ZipFile(keras_file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    edit(members)
    with zipfile.ZipFile(keras_file, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def _lambda_config(members: dict) -> None:
    import json

    config = json.loads(members["config.json"])
    config["config"]["layers"].append({"class_name": "Lambda", "config": {"function": "x"}})
    members["config.json"] = json.dumps(config).encode()


FOLDER_EDITS = {
    "a .pkl file": (
        lambda f, t: (f / "data" / "extra.pkl").write_bytes(b"x"),
        "holds a pickle ('data/extra.pkl')",
    ),
    "a pickle by its content": (
        lambda f, t: (f / "notes.bin").write_bytes(b"\x80\x04\x95."),
        "holds a pickle ('notes.bin')",
    ),
    "a Python file": (
        lambda f, t: (f / "helper.py").write_text("print()"),
        "holds Python code ('helper.py')",
    ),
    "a code folder": (
        lambda f, t: (f / "code").mkdir(),
        "holds a 'code' folder",
    ),
    "a link out": (
        lambda f, t: (f / "leak").symlink_to(t),
        "the link 'leak' leaves the model folder",
    ),
    "a FIFO": (lambda f, t: os.mkfifo(f / "pipe"), "'pipe' is not a regular file"),
    "another flavour": (
        lambda f, t: edit_mlmodel(f, lambda c: c["flavors"].update(sklearn={"pickled": "m"})),
        "flavours daeflow's models never have (sklearn)",
    ),
    "an extra archive member": (
        lambda f, t: _rewrite_archive(f, lambda m: m.update({"run.py": b"print()"})),
        "'model.keras' holds 'run.py', which a Keras model file does not",
    ),
    "a Lambda layer": (
        lambda f, t: _rewrite_archive(f, _lambda_config),
        "'model.keras' holds a Lambda layer",
    ),
}


@pytest.mark.parametrize("edit", FOLDER_EDITS, ids=str)
def test_check_model_and_denoise_refuse_a_folder_that_is_not_plain(
    saved_model_folder, tmp_path, edit
):
    change, fragment = FOLDER_EDITS[edit]
    folder = model_copy(saved_model_folder, tmp_path)
    change(folder, tmp_path)
    refused(check_model(folder), fragment)
    refused(denoise(folder, tmp_path), fragment)  # one set of rules for every command


def test_only_daeflows_loader_is_served(saved_model_folder, tmp_path):
    """MLflow's Keras loader is safe to load from but is not daeflow's pyfunc: not served."""
    folder = model_copy(saved_model_folder, tmp_path)
    edit_mlmodel(
        folder, lambda conf: conf["flavors"]["python_function"].update(loader_module="mlflow.keras")
    )
    refused(check_model(folder), "its pyfunc loader is 'mlflow.keras', not daeflow's")
