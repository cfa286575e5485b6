"""The conformance kit passes on every built-in and fails clearly on a wrong architecture."""

import types

import pytest
from typer.testing import CliRunner

from daeflow import Architecture, hookimpl
from daeflow.cli import app
from daeflow.plugin.manager import get_plugins
from daeflow.testing import ConformanceError, check_architecture

BUILTINS = ("conv_baseline", "conv_deep", "conv_transpose", "residual", "residual_fast")


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_conform(name):
    """In this process, under each precision; the new-process reload is tested once below."""
    report = check_architecture(name, new_process=False)
    assert report.plugin.endswith("(daeflow)")
    for check in ("training lowers the loss", "save/load round trip", "pyfunc reload"):
        assert any(check in passed for passed in report.passed), check
    for policy in ("mixed_bfloat16", "mixed_float16"):
        assert any(f"{policy}: float32 output" in passed for passed in report.passed)


@pytest.mark.slow
def test_dilated_residual_conforms_with_ircnn_dilations():
    from daeflow.architectures.residual import build
    from daeflow.plugin.registry import get_architecture

    params = {"depth": 7, "width": 8, "dilation": 4}
    report = check_architecture("residual", params, policies=(), new_process=False)
    assert any("training lowers the loss" in check for check in report.passed)
    model = build((None, None, 1), {**get_architecture("residual").spec.defaults, **params})
    rates = [layer.dilation_rate[0] for layer in model.layers if "conv" in layer.name]
    assert rates == [1, 2, 3, 4, 3, 2, 1]


@pytest.mark.slow
def test_residual_fast_blocks_conform_and_leave_an_odd_conv_plain():
    from daeflow.architectures.residual_fast import build
    from daeflow.plugin.registry import get_architecture

    params = {"depth": 5, "width": 8, "residual_blocks": True}
    report = check_architecture("residual_fast", params, policies=(), new_process=False)
    assert any("training lowers the loss" in check for check in report.passed)
    model = build((None, None, 1), {**get_architecture("residual_fast").spec.defaults, **params})
    half = [layer.name for layer in model.layers if layer.name.startswith(("half", "block"))]
    assert [name for name in half if "conv" in name] == [
        "half1_conv", "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    ]  # fmt: skip
    # Each block adds its input to its second conv's output.
    inputs = {
        layer["name"]: [
            tensor["config"]["keras_history"][0] for tensor in layer["inbound_nodes"][0]["args"][0]
        ]
        for layer in model.get_config()["layers"]
        if layer["name"].endswith("_add")
    }
    assert inputs["block1_add"] == ["half1_conv", "block1_conv2"]
    assert inputs["block2_add"] == ["block1_relu", "block2_conv2"]


def _with_lambda(input_shape, params):
    import keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(input_shape[-1], 3, padding="same", activation="sigmoid")(inputs)
    return keras.Model(inputs, keras.layers.Lambda(lambda t: t * 0.5)(x))


def _linear_but_declared_unit(input_shape, params):
    import keras

    inputs = keras.Input(shape=input_shape)
    outputs = keras.layers.Conv2D(input_shape[-1], 3, padding="same")(inputs)
    shifted = keras.layers.Rescaling(1.0, offset=-5.0)(outputs)
    return keras.Model(inputs, shifted)


def _frozen(input_shape, params):
    import keras

    inputs = keras.Input(shape=input_shape)
    conv = keras.layers.Conv2D(input_shape[-1], 3, padding="same", activation="sigmoid")
    conv.trainable = False
    return keras.Model(inputs, conv(inputs))


def register(build):
    arch = Architecture("wrong_arch", "Wrong on purpose.", build)
    get_plugins().register(
        types.SimpleNamespace(register_architectures=hookimpl(lambda: [arch])),
        name="wrong-plugin",
        dist="daeflow-wrong",
    )


@pytest.mark.parametrize(
    "build, expected",
    [
        (_with_lambda, "is a Lambda layer"),
        (_linear_but_declared_unit, "output_range='unit' is declared"),
        pytest.param(_frozen, "did not lower the loss", marks=pytest.mark.slow),
    ],
)
def test_kit_fails_with_a_clear_message(build, expected):
    register(build)
    with pytest.raises(ConformanceError, match=expected) as info:
        check_architecture("wrong_arch")
    assert "wrong-plugin" in str(info.value)
    result = CliRunner().invoke(app, ["check-arch", "wrong_arch"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("Error: check-arch failed:")
        and expected in lines[0]
    )


@pytest.mark.slow
def test_check_arch_cli_reports_each_check_for_each_set():
    result = CliRunner().invoke(
        app, ["check-arch", "residual", "--set", "depth=3,width=8", "--set", "depth=4,width=4"]
    )
    assert result.exit_code == 0, result.output
    assert "meets the daeflow architecture contract" in result.stdout
    checks = [line for line in result.stdout.splitlines() if line.startswith("  ok  ")]
    # Per set: 4 checks for each of 2 shapes, training once, one per mixed precision, one
    # fresh-process reload.
    assert len(checks) == 2 * (2 * 4 + 1 + 2 + 1)
    assert sum("mixed_float16: float32 output" in c for c in checks) == 2
    assert sum("MLflow pyfunc reload in a new process" in c for c in checks) == 2
    assert sum(c.startswith("  ok  depth=4 width=4: no Lambda layer") for c in checks) == 2


def test_check_arch_refuses_a_bad_set_before_any_check():
    result = CliRunner().invoke(
        app, ["check-arch", "residual", "--set", "depth=3", "--set", "depth=2"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: Architecture 'residual' parameter 'depth' must be 3 to 30. Received: '2'"
    )
    assert result.stdout == ""
