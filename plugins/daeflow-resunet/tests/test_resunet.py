"""Tests of the resunet plugin: shapes, safe-mode save/load, and discovery by daeflow."""

import os

# Before anything imports TensorFlow: quiet its C++ logs and pin the Keras backend.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import subprocess
import sys

import daeflow_resunet as resunet  # install it first: pip install -e plugins/daeflow-resunet
import numpy as np
import pytest


def build(input_shape, **overrides):
    return resunet.build(input_shape, {**resunet.ARCHITECTURE.defaults, **overrides})


def sample(shape, seed=0):
    return np.random.default_rng(seed).random((2, *shape), dtype=np.float32)


@pytest.fixture
def fresh_plugins(monkeypatch):
    """Rebuild daeflow's plugin set from what is installed, before and after the test."""
    from daeflow.plugin.manager import reset_plugins

    monkeypatch.delenv("DAEFLOW_LOAD_PLUGINS", raising=False)
    reset_plugins()
    yield
    reset_plugins()


@pytest.mark.parametrize("shape", [(32, 32, 1), (48, 64, 3)])
def test_output_shape_equals_input_shape(shape):
    model = build(shape)
    assert model.name == "resunet"
    assert model(sample(shape)).shape == (2, *shape)


@pytest.mark.parametrize("overrides", [{"depth": 1}, {"depth": 4, "kernel_size": 5}])
def test_every_allowed_depth_keeps_size_multiple(overrides):
    shape = (resunet.ARCHITECTURE.size_multiple * 3, resunet.ARCHITECTURE.size_multiple * 5, 1)
    assert build(shape, filters=4, **overrides)(sample(shape)).shape == (2, *shape)


def test_unknown_spatial_size_is_accepted():
    model = build((None, None, 1), filters=4)
    assert model(sample((16, 24, 1))).shape == (2, 16, 24, 1)


def test_save_and_safe_mode_reload(tmp_path):
    import daeflow_resunet.layers  # noqa: F401 - registers the custom layers with Keras
    import keras

    shape = (32, 32, 1)
    model = build(shape, filters=4)
    path = tmp_path / "resunet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    x = sample(shape)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6, atol=1e-6)
    kinds = {type(layer).__name__ for layer in loaded.layers}
    assert "Lambda" not in kinds
    assert "ResidualBlock" in kinds


def test_residual_block_config_round_trips():
    from daeflow_resunet.layers import ResidualBlock

    block = ResidualBlock(8, 5, 3, name="enc1_block")
    clone = ResidualBlock.from_config(block.get_config())
    assert (clone.filters, clone.kernel_size, clone.convs, clone.name) == (8, 5, 3, "enc1_block")


def test_import_does_not_load_keras():
    code = "import sys, daeflow_resunet; print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_discovered_through_entry_point(fresh_plugins):
    from daeflow.plugin.registry import get_architecture

    provided = get_architecture("resunet")
    assert provided.plugin.distribution == "daeflow-resunet"
    assert provided.spec is resunet.ARCHITECTURE


@pytest.mark.slow
def test_passes_daeflow_architecture_check(fresh_plugins):
    from daeflow.testing import check_architecture

    report = check_architecture("resunet")
    assert report.plugin.endswith("(daeflow-resunet)")
