"""Architectures declare the spatial dimensions they build; the built-ins that declare 3D
build Conv3D variants whose declared radius bounds what they see, the 2D models stay as
they were, and the conformance kit checks each declared dimension."""

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow import Architecture
from daeflow.architectures.layers_nd import layers_for
from daeflow.cli import app
from daeflow.errors import UsageError
from daeflow.plugin.registry import get_architecture
from daeflow.testing import ConformanceError, check_architecture
from daeflow.workflow.conformance import randomise_weights

VOLUMETRIC = ("conv_baseline", "conv_transpose", "residual", "residual_fast", "unet")
# Tiny widths: 3D convs are slow on a CPU.
TINY = {
    "conv_baseline": {"filters": 8},
    "conv_transpose": {"filters": 8},
    "residual": {"depth": 4, "width": 4},
    "residual_fast": {"depth": 2, "width": 4},
    "unet": {"width": 4, "blocks": 1, "scales": 2},
}
# The 2D models (defaults, one channel) before 3D variants existed: parameter count, and
# the SHA-1 of their layers' "name:class" joined by commas (first 12 hex digits).
PARAMS_2D = {
    "conv_baseline": (7417, "688b43427ccb"),
    "conv_deep": (777537, "cba3704d239c"),
    "conv_transpose": (12201, "6201fc55138d"),
    "residual": (167185, "a47d3d26152e"),
    "residual_fast": (247905, "ec93fc32f5f7"),
    "unet": (1048721, "07f76c984780"),
}


def _params(name: str) -> dict:
    spec = get_architecture(name).spec
    return {**spec.defaults, **TINY.get(name, {})}


def test_the_builtins_declare_their_dims():
    for name in PARAMS_2D:
        assert get_architecture(name).spec.dims == ((2, 3) if name in VOLUMETRIC else (2,))


@pytest.mark.parametrize("dims", [(), (4,), (2, 2), (1, 2), ("3",), (True,), 3])
def test_dims_are_checked_where_declared(dims):
    with pytest.raises(ValueError, match=r"Architecture 'a': dims must be a non-empty tuple"):
        Architecture("a", "A.", lambda shape, params: None, dims=dims)
    assert Architecture("a", "A.", lambda shape, params: None, dims=[3, 2]).dims == (2, 3)


@pytest.mark.parametrize("name", sorted(PARAMS_2D))
def test_2d_models_keep_their_layers_and_parameter_counts(name):
    spec = get_architecture(name).spec
    model = spec.build((None, None, 1), dict(spec.defaults))
    layers = ",".join(f"{layer.name}:{type(layer).__name__}" for layer in model.layers)
    digest = hashlib.sha1(layers.encode()).hexdigest()[:12]
    assert (model.count_params(), digest) == PARAMS_2D[name], layers
    assert model.name == name


@pytest.mark.parametrize("name", VOLUMETRIC)
def test_3d_variants_build_conv3d_layers_named_as_in_2d(name):
    spec, params = get_architecture(name).spec, _params(name)
    volume = spec.build((None, None, None, 1), params)
    flat = spec.build((None, None, 1), params)
    assert [layer.name for layer in volume.layers] == [layer.name for layer in flat.layers]
    kinds = {type(layer).__name__ for layer in volume.layers}
    assert "Conv3D" in kinds and not any("2D" in kind for kind in kinds), kinds
    m = spec.size_multiple
    shape = (1, m, 2 * m, 3 * m, 1)
    assert tuple(volume(np.zeros(shape, np.float32), training=False).shape) == shape


def _reach(model, size: int) -> list[int]:
    """How far, in voxels along each axis, the centre output voxel of a size^3 random volume
    depends on the input: the gradient's support around the centre."""
    import tensorflow as tf

    volume = tf.constant(np.random.default_rng(1).random((1, size, size, size, 1)), tf.float32)
    centre = size // 2
    with tf.GradientTape() as tape:
        tape.watch(volume)
        output = model(volume, training=False)[0, centre, centre, centre]
    seen = np.argwhere(np.abs(tape.gradient(output, volume).numpy()[0, ..., 0]) > 0)
    return [int(np.max(np.abs(seen[:, axis] - centre))) for axis in range(3)]


@pytest.mark.parametrize("name", VOLUMETRIC)
def test_the_declared_radius_bounds_what_a_random_3d_model_sees(name):
    """The same radius along every axis; a random-weight model sees no farther, and sees."""
    spec, params = get_architecture(name).spec, _params(name)
    radius, m = spec.radius(params), spec.size_multiple
    model = randomise_weights(spec.build((None, None, None, 1), params))
    reach = _reach(model, -(-(2 * radius + 2) // m) * m)
    assert all(0 < seen <= radius for seen in reach), (reach, radius)


REFUSAL = (
    "Architecture 'conv_deep' builds 2D networks only; for volumes (axes with Z) choose one "
    "of conv_baseline, conv_transpose, residual, residual_fast, unet, or pass --slices to "
    "train a 2D model on the planes."
)


def test_an_architecture_is_refused_for_dims_it_does_not_declare():
    from daeflow.plugin.building import build_checked
    from daeflow.plugin.specs import require_dims

    provided = get_architecture("conv_deep")
    require_dims(provided.spec, 2)  # declared: nothing to say
    with pytest.raises(UsageError) as info:
        require_dims(provided.spec, 3)
    assert str(info.value) == REFUSAL and info.value.exit_code == 2
    with pytest.raises(UsageError, match=r"^Architecture 'conv_deep' builds 2D networks only;"):
        build_checked(provided, provided.spec.defaults, 1, (8, 16, 16))
    only_3d = Architecture("cubes", "Volumes only.", lambda shape, params: None, dims=(3,))
    with pytest.raises(UsageError) as info:
        require_dims(only_3d, 2, others=["unet"])
    assert str(info.value) == (
        "Architecture 'cubes' builds 3D networks only; for 2D images choose one of unet."
    )


def test_archs_json_shows_each_architectures_dims():
    result = CliRunner().invoke(app, ["archs", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["conv_deep"]["dims"] == [2] and rows["unet"]["dims"] == [2, 3]
    table = CliRunner().invoke(app, ["archs"])
    assert "2D, 3D" in table.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", VOLUMETRIC)
def test_builtins_conform_in_3d(name):
    report = check_architecture(name, TINY[name], policies=(), new_process=False, dims=(3,))
    checks = ("builds in 3D", "round trip 3D", "volume tiles with margin", "a training step")
    for check in checks:
        assert any(check in passed for passed in report.passed), (check, report.passed)
    assert not any("pyfunc" in passed for passed in report.passed)  # 2D not asked for


def _frozen(input_shape, params):
    """Declares volumes, builds them, but trains nothing."""
    import keras

    inputs = keras.Input(shape=input_shape)
    conv = layers_for(input_shape).Conv(input_shape[-1], 3, padding="same", trainable=False)
    return keras.Model(inputs, conv(inputs))


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_a_3d_model_that_trains_nothing_fails_the_kit():
    from tests.test_conformance import register_wrong

    arch = Architecture("frozen_arch", "Frozen.", _frozen, output_range="any", dims=(2, 3))
    register_wrong("register_architectures", arch, "frozen-plugin")
    with pytest.raises(ConformanceError, match=r"3D \(8, 16, 16, 1\): a training step changed"):
        check_architecture("frozen_arch", dims=(3,))


def _only_2d(input_shape, params):
    """Declares volumes but builds a Conv2D network whatever the input."""
    import keras

    inputs = keras.Input(shape=input_shape)
    outputs = keras.layers.Conv2D(input_shape[-1], 3, padding="same")(inputs)
    return keras.Model(inputs, outputs)


def test_a_plugin_declaring_3d_but_building_2d_fails_the_kit_in_one_line():
    from tests.test_conformance import register_wrong

    arch = Architecture("flat_arch", "2D only.", _only_2d, output_range="any", dims=(2, 3))
    register_wrong("register_architectures", arch, "flat-plugin")
    with pytest.raises(ConformanceError, match=r"3D \(8, 16, 16, 1\).*raised ValueError"):
        check_architecture("flat_arch", dims=(3,))
    result = CliRunner().invoke(app, ["check-arch", "flat_arch"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: check-arch failed:"), lines
    assert "flat-plugin" in lines[0] and "input_shape (None, None, None, 1)" in lines[0]


def test_a_too_small_radius_fails_the_volume_tiling_check():
    import dataclasses

    from tests.test_conformance import _unet_seeing_less, register_wrong

    arch = dataclasses.replace(_unet_seeing_less(0), name="blind_unet", dims=(2, 3))
    register_wrong("register_architectures", arch, "blind-plugin")
    with pytest.raises(ConformanceError, match="radius 0 is too small along the depth"):
        check_architecture("blind_unet", TINY["unet"], policies=(), dims=(3,))
    with pytest.raises(ConformanceError, match=r"declares dims=\(2, 3\), not 4"):
        check_architecture("blind_unet", TINY["unet"], dims=(4,))
