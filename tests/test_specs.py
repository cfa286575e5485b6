"""Spec classes check themselves where a plugin declares them, naming the field."""

import pytest

from daeflow import Architecture, HyperParam, NoiseModel
from daeflow.config import TrainOptions
from daeflow.errors import UsageError
from daeflow.plugin.hyperparams import convert, resolve


def build(input_shape, params):
    raise AssertionError("never built here")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "filters", "type": "int", "default": "sixteen"}, "default must be int"),
        ({"name": "x", "type": "int", "default": 0, "min": 1}, "default must be >= 1"),
        ({"name": "x", "type": "int", "default": 2.5}, "default must be int"),
        ({"name": "x", "type": "int", "default": True}, "default must be int"),
        ({"name": "x", "type": "float", "default": float("nan")}, "default must be float"),
        ({"name": "x", "type": "bool", "default": 1}, "default must be bool"),
        ({"name": "k", "type": "int", "default": 4, "choices": (3, 5)}, "default must be one of"),
        ({"name": "k", "type": "int", "default": 3, "choices": (3, "5")}, "every choice must be"),
        ({"name": "k", "type": "int", "default": 3, "choices": ()}, "non-empty tuple"),
        ({"name": "x", "type": "int", "default": 3, "min": 5, "max": 1}, "min must not exceed"),
        ({"name": "x", "type": "str", "default": "a", "min": 1}, "min must be a finite number"),
        ({"name": "x", "type": "complex", "default": 1}, "type must be one of"),
        ({"name": "two words", "type": "int", "default": 1}, "name must be a Python identifier"),
    ],
)
def test_hyperparam_refuses_what_it_cannot_honour(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        HyperParam(**kwargs)
    assert repr(kwargs["name"]) in str(info.value) and "Received:" in str(info.value)


def test_hyperparam_accepts_a_none_default_as_off():
    param = HyperParam("patch", "int", None, min=1)
    assert convert(param, "none", "--patch") is None
    assert convert(param, "8", "--patch") == 8
    with pytest.raises(UsageError, match="--patch must be >= 1. Received: '0'"):
        convert(param, "0", "--patch")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size_multiple": 0}, "size_multiple must be an int >= 1. Received: size_multiple=0"),
        ({"size_multiple": 2.0}, "size_multiple must be an int >= 1"),
        ({"output_range": "0-1"}, "output_range must be one of unit, any"),
        ({"channels": (0,)}, "channels must be None or a tuple of positive ints"),
        ({"hyperparams": ({"name": "x"},)}, "must be a tuple of daeflow.HyperParam"),
        (
            {"hyperparams": (HyperParam("x", "int", 1), HyperParam("x", "int", 2))},
            "'x' is declared twice",
        ),
        ({"build": "not callable"}, "build must be callable"),
        ({"receptive_radius": 40}, "receptive_radius must be callable or None. Received: "),
    ],
)
def test_architecture_refuses_invalid_declarations(kwargs, message):
    fields = {"name": "arch", "description": "d", "build": build, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        Architecture(**fields)
    assert "Architecture 'arch'" in str(info.value)


def test_architecture_and_noise_model_accept_lists_as_tuples():
    arch = Architecture("a", "d", build, hyperparams=[HyperParam("x", "int", 1)], channels=[1])
    assert arch.hyperparams == (HyperParam("x", "int", 1),) and arch.channels == (1,)
    noise = NoiseModel("n", "d", lambda *a: None, params=[HyperParam("s", "float", 1.0)])
    assert noise.defaults == {"s": 1.0}
    with pytest.raises(ValueError, match="NoiseModel 'n': apply must be callable"):
        NoiseModel("n", "d", apply=None)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"depth": "2.5"}, "parameter 'depth' must be a whole number. Received: '2.5'"),
        ({"depth": "nan"}, "parameter 'depth' must be a whole number"),
        ({"depth": "99"}, "parameter 'depth' must be 1 to 5. Received: '99'"),
        ({"bn": "maybe"}, "parameter 'bn' must be true or false. Received: 'maybe'"),
        ({"nope": "1"}, "has no parameter 'nope'. Allowed parameters: bn, depth"),
    ],
)
def test_resolve_converts_and_checks_strings(given, message):
    declared = (HyperParam("depth", "int", 3, min=1, max=5), HyperParam("bn", "bool", False))
    with pytest.raises(UsageError, match=message):
        resolve(declared, given, "Architecture 'x'")
    assert resolve(declared, {"depth": "4.0", "bn": "yes"}, "x") == {"depth": 4, "bn": True}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": "1.5"}, "--epochs must be a whole number. Received: '1.5'"),
        ({"augment": "maybe"}, "--augment must be true or false. Received: 'maybe'"),
        ({"learning_rate": "nan"}, "--learning-rate must be a finite number"),
        ({"learning_rate": "inf"}, "--learning-rate must be a finite number"),
        ({"learning_rate": "-1"}, "--learning-rate must be >= 0"),
        ({"learning_rate": "0"}, "--learning-rate must be a positive number"),
        ({"lr_schedule": "linear"}, "--lr-schedule must be one of constant, cosine, step"),
        ({"lr_warmup": "0.9"}, "--lr-warmup must be 0 to 0.5"),
        ({"time_budget": "soon"}, "--time-budget must look like 90s, 10m or 1.5h"),
        ({"batch_size": "0"}, "--batch-size must be >= 1"),
        ({"seeds": "3"}, "'seeds' is not a training option"),
    ],
)
def test_training_options_from_strings_are_typed_and_checked(values, message):
    with pytest.raises(UsageError, match=message):
        TrainOptions.from_strings(values, seed=0)


def test_training_options_convert_strings_once():
    options = TrainOptions.from_strings(
        {"epochs": "3", "augment": "true", "time_budget": "1.5m", "patch_size": "none"}, seed=4
    )
    assert (options.epochs, options.augment, options.time_budget, options.patch_size) == (
        3,
        True,
        90.0,
        None,
    )
    assert options.seed == 4


def test_an_optional_time_budget_takes_none():
    assert TrainOptions.from_strings({"time_budget": "none"}, seed=0).time_budget is None


def test_the_tile_margin_is_the_declared_radius_and_never_below_the_old_fixed_one():
    from daeflow.runtime.tiles import MARGIN, margin_for

    assert Architecture("arch", "d", build).tile_margin({}) == MARGIN == margin_for(None)
    seeing = Architecture("arch", "d", build, receptive_radius=lambda params: params["r"])
    assert [seeing.tile_margin({"r": r}) for r in (0, 32, 33, 94)] == [32, 32, 33, 94]
    assert seeing.radius({"r": 7}) == 7 and margin_for(40.5) == 41
