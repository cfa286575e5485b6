"""The conformance kit passes on every built-in and fails clearly on a wrong architecture."""

import types

import pytest
from typer.testing import CliRunner

from daeflow import Architecture, hookimpl
from daeflow.cli import app
from daeflow.plugin.manager import get_plugins
from daeflow.testing import ConformanceError, check_architecture

BUILTINS = ("conv_baseline", "conv_deep", "conv_transpose", "residual", "residual_fast", "unet")
# Smaller than the defaults where these take long to trace (unet's: 13 s, these 5 s).
PARAMS = {"unet": {"width": 8, "blocks": 1}}


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_conform(name):
    """In this process, under each precision; the new-process reload is tested once below.
    2D only: test_architectures_3d checks the volumes."""
    report = check_architecture(name, PARAMS.get(name), new_process=False, dims=(2,))
    assert report.plugin.endswith("(daeflow)")
    checks = ("training lowers the loss", "save/load round trip", "pyfunc reload", "= untiled")
    for check in checks:
        assert any(check in passed for passed in report.passed), check
    for policy in ("mixed_bfloat16", "mixed_float16"):
        assert any(f"{policy}: float32 output" in passed for passed in report.passed)


def test_every_builtin_declares_its_receptive_radius():
    from daeflow.plugin.registry import get_architecture

    for name in BUILTINS:
        spec = get_architecture(name).spec
        assert spec.radius(spec.defaults) >= 1, name
    assert get_architecture("unet").spec.radius(get_architecture("unet").spec.defaults) == 97


def _unet_seeing_less(radius):
    """unet as it is, declaring a receptive radius it does not keep."""
    from daeflow.architectures import unet

    return Architecture(
        "wrong_arch",
        "Wrong on purpose.",
        unet.build,
        unet.ARCHITECTURE.hyperparams,
        size_multiple=unet.ARCHITECTURE.size_multiple,
        output_range="any",
        receptive_radius=lambda params: radius,
    )


def test_a_too_small_receptive_radius_fails_the_tiling_check():
    small = {"width": 4, "blocks": 1, "scales": 2}  # sees up to 22 pixels away, declares 0
    register_wrong("register_architectures", _unet_seeing_less(0), "wrong-plugin")
    with pytest.raises(ConformanceError, match="declared receptive radius 0 is too small"):
        check_architecture("wrong_arch", small, policies=(), new_process=False)
    result = CliRunner().invoke(
        app, ["check-arch", "wrong_arch", "--set", "width=4,blocks=1,scales=2"]
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "declared receptive radius 0 is too small" in lines[0]
    assert "wrong-plugin" in lines[0]


def test_a_receptive_radius_that_is_not_an_int_fails():
    register_wrong("register_architectures", _unet_seeing_less(2.5), "wrong-plugin")
    with pytest.raises(ConformanceError, match=r"receptive_radius must return an int >= 0"):
        check_architecture("wrong_arch", {"width": 4, "scales": 1}, policies=())


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


@pytest.mark.slow
def test_residual_fast_skip_init_blocks_conform_and_start_as_the_identity():
    import keras
    import numpy as np

    from daeflow.architectures.residual_fast import build
    from daeflow.plugin.registry import get_architecture

    params = {"depth": 4, "width": 8, "residual_blocks": True, "skip_init": True}
    report = check_architecture("residual_fast", params, policies=(), new_process=False)
    assert any("training lowers the loss" in check for check in report.passed)
    model = build((None, None, 1), {**get_architecture("residual_fast").spec.defaults, **params})
    names = [layer.name for layer in model.layers]
    assert "block1_add" in names and not any(
        name.endswith("_relu") for name in names if "block" in name
    )
    # Each block's second conv starts at zero, so the body after the strided conv down is
    # the identity: the transposed conv up sees exactly what the strided conv made.
    for i in (1, 2):
        assert not np.any(model.get_layer(f"block{i}_conv2").kernel.numpy())
    x = np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32)
    down = keras.Model(model.inputs, model.get_layer("down_conv").output)(x)
    body = keras.Model(model.inputs, model.get_layer("block2_add").output)(x)
    np.testing.assert_allclose(np.asarray(body), np.asarray(down), rtol=0, atol=0)


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


def register_wrong(hook: str, spec, name: str) -> None:
    """Register a plugin whose `hook` returns `spec`, wrong on purpose."""
    plugin = types.SimpleNamespace(**{hook: hookimpl(lambda: [spec])})
    get_plugins().register(plugin, name=name, dist="daeflow-wrong")


def register(build):
    arch = Architecture("wrong_arch", "Wrong on purpose.", build)
    register_wrong("register_architectures", arch, "wrong-plugin")


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
    # Per set: 4 checks for each of 2 shapes, tiling and training once, one per mixed
    # precision, one fresh-process reload; 6 on a volume (residual declares 3D).
    assert len(checks) == 2 * (2 * 4 + 2 + 2 + 1 + 6)
    assert sum("volume tiles with margin" in c for c in checks) == 2
    assert sum("mixed_float16: float32 output" in c for c in checks) == 2
    assert sum("MLflow pyfunc reload in a new process" in c for c in checks) == 2
    assert sum(c.startswith("  ok  depth=4 width=4: no Lambda layer") for c in checks) == 3


def test_check_arch_refuses_a_bad_set_before_any_check():
    result = CliRunner().invoke(
        app, ["check-arch", "residual", "--set", "depth=3", "--set", "depth=2"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: Architecture 'residual' parameter 'depth' must be 3 to 30. Received: '2'"
    )
    assert result.stdout == ""


OBJECTIVES = ("noise2noise", "noise2void", "r2r", "supervised")


def test_the_builtin_objectives_are_the_ones_checked():
    from daeflow.plugin.registry import all_objectives

    assert tuple(sorted(all_objectives())) == OBJECTIVES


@pytest.mark.parametrize("name", OBJECTIVES)
def test_builtin_objectives_conform(name):
    from daeflow.testing import check_objective

    report = check_objective(name)
    assert report.objective == name and report.plugin.endswith("(daeflow)")
    for shape in ((16, 16, 1), (20, 28, 3)):
        assert f"defaults: batch shapes agree {shape}" in report.passed
        assert f"defaults: finite scalar loss, gradients reach the model {shape}" in report.passed
    seeded = any("another seed, another batch" in check for check in report.passed)
    assert seeded == (name != "supervised")


def test_noise2void_conforms_for_each_parameter_set():
    from daeflow.testing import check_objective

    sets = [{"strategy": "median"}, {"roi_size": 3, "masked_pixel_percentage": 5.0}]
    report = check_objective("noise2void", param_sets=sets)
    assert sum("batch shapes agree" in check for check in report.passed) == 4
    assert any(
        check.startswith("roi_size=3 masked_pixel_percentage=5.0:") for check in report.passed
    )


def _wrong_shape(images, seed, params, variance):
    (noisy,) = images
    return noisy[:, ::2], noisy


def _stateful(images, seed, params, variance):
    import tensorflow as tf

    (noisy,) = images
    return noisy + tf.random.normal(tf.shape(noisy), stddev=0.01), noisy


def _fixed_seed(images, seed, params, variance):
    import tensorflow as tf

    (noisy,) = images
    fixed = tf.constant([1, 2], tf.int64)
    return noisy + tf.random.stateless_normal(tf.shape(noisy), fixed, stddev=0.01), noisy


def _numpy_loss(targets, predictions, params):
    import numpy as np
    import tensorflow as tf

    return tf.constant(float(np.mean((np.asarray(predictions) - np.asarray(targets)) ** 2)))


def _per_pixel_loss(targets, predictions, params):
    import tensorflow as tf

    return tf.square(predictions - targets)


def _stopped_loss(targets, predictions, params):
    import tensorflow as tf

    return tf.reduce_mean(tf.square(tf.stop_gradient(predictions) - targets))


def _same(images, seed, params, variance):
    import tensorflow as tf

    (noisy,) = images
    return noisy, noisy + 0.0 * tf.random.stateless_uniform([], seed)


def register_objective(batch, loss=None):
    from daeflow import Objective

    objective = Objective("wrong_objective", "Wrong on purpose.", "noisy", batch, loss=loss)
    register_wrong("register_objectives", objective, "wrong-objective-plugin")


@pytest.mark.parametrize(
    "batch, loss, expected",
    [
        (_wrong_shape, None, "batch returned targets of shape (8, 16, 16, 1); they must have"),
        (_stateful, None, "the same seed gave a different batch"),
        (_fixed_seed, None, "two different seeds gave the same batch"),
        (_same, _numpy_loss, "the loss raised"),
        (_same, _per_pixel_loss, "the loss must be a finite scalar"),
        (_same, _stopped_loss, "the loss's gradients do not reach the model's weights"),
    ],
)
def test_objective_kit_fails_with_a_clear_message(batch, loss, expected):
    from daeflow.testing import check_objective

    register_objective(batch, loss)
    with pytest.raises(ConformanceError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_objective("wrong_objective")
    result = CliRunner().invoke(app, ["check-objective", "wrong_objective"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: check-objective failed: Objective")
    assert "wrong-objective-plugin" in lines[0] and expected in lines[0]


def test_check_objective_cli_reports_each_check_for_each_set():
    result = CliRunner().invoke(
        app, ["check-objective", "noise2void", "--set", "strategy=median", "--set", "roi_size=3"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("  ok  ") == 12
    assert (
        "noise2void from daeflow.objectives.noise2void (daeflow) meets the daeflow objective"
        in (result.stdout)
    )
