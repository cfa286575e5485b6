"""Options shared by run, sweep and baseline, declared once and added to each command."""

import functools
import inspect
from pathlib import Path
from typing import Annotated

import typer


def _opt(kind, help_text: str, **limits):
    return Annotated[kind, typer.Option(help=help_text, **limits)]


DATA_OPTIONS = {
    "clean": (_opt(Path | None, "Clean images, .npy of shape (N, H, W[, C])."), None),
    "noisy": (_opt(Path | None, "Noisy images aligned with --clean."), None),
    "data": (_opt(Path | None, "An .npz holding both arrays."), None),
    "clean_key": (_opt(str, "Key of the clean array in --data."), "clean"),
    "noisy_key": (_opt(str, "Key of the noisy array in --data."), "noisy"),
    "noise": (
        _opt(str | None, "Synthetic noise for clean-only data: gaussian, poisson, ..."),
        None,
    ),
    "noise_param": (_opt(list[str] | None, "Noise parameter KEY=VALUE, repeatable."), None),
    "groups": (
        _opt(Path | None, ".npy of one group id per image; a group stays in one split."),
        None,
    ),
    "val_data": (_opt(Path | None, "Separate validation .npz instead of --val-fraction."), None),
    "test_data": (_opt(Path | None, "Separate test .npz instead of --test-fraction."), None),
    "val_fraction": (_opt(float, "Fraction of images for validation."), 0.1),
    "test_fraction": (_opt(float, "Fraction of images for the final test."), 0.1),
    "data_range": (
        _opt(float | None, "Full-scale value (default: 255 uint8, 65535 uint16, else observed)."),
        None,
    ),
    "pad": (_opt(bool, "Pad images to the size multiple the architecture needs."), False),
    "alignment_check": (_opt(bool, "Check that clean[i] and noisy[i] belong together."), True),
}

_PYTHON_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _train_options() -> dict:
    """Typer options for every declared training option (config.TRAIN_PARAMS)."""
    from daeflow.config import TRAIN_PARAMS

    options = {}
    for param in TRAIN_PARAMS:
        kind = _PYTHON_TYPES[param.type]
        limits = {"min": param.min} if param.type == "int" and param.min is not None else {}
        if param.default is None:
            kind = kind | None
        options[param.name] = (_opt(kind, param.help, **limits), param.default)
    return options


TRAIN_OPTIONS = _train_options()


def _data_options(values: dict):
    from daeflow.config import DataOptions
    from daeflow.plugin.hyperparams import split_pairs

    values["noise_params"] = split_pairs(values.pop("noise_param") or [], "--noise-param")
    for key in ("clean", "noisy", "data", "groups", "val_data", "test_data"):
        values[key] = None if values[key] is None else str(values[key])
    return DataOptions(**values)


def _train_values(values: dict):
    return values  # checked by config.TrainOptions, with the seed the command adds


def adds(options: dict, target: str, build):
    """Decorator: append `options` to a command's signature and pass them built as `target`."""

    def decorate(function):
        signature = inspect.signature(function)
        extra = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, (kind, default) in options.items()
        ]
        kept = [p for p in signature.parameters.values() if p.name != target]

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            values = {name: kwargs.pop(name) for name in options}
            return function(*args, **{target: build(values)}, **kwargs)

        wrapper.__signature__ = signature.replace(
            parameters=sorted(kept + extra, key=lambda p: p.kind)
        )
        return wrapper

    return decorate


with_data_options = adds(DATA_OPTIONS, "data_options", _data_options)
with_train_options = adds(TRAIN_OPTIONS, "train_values", _train_values)
