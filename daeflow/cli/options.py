"""Options shared by run, sweep and baseline, declared once and added to each command."""

import functools
import inspect
from pathlib import Path
from typing import Annotated

import typer


def _opt(kind, help_text: str, **limits):
    return Annotated[kind, typer.Option(help=help_text, **limits)]


def _declared_options(params, paths=()) -> dict:
    """Typer options for declared options: their type, default, help and lower bound."""
    from daeflow.config import python_type

    options = {}
    for param in params:
        kind = python_type(param)
        if param.name in paths:
            kind = Path | None
        limits = {"min": param.min} if param.type == "int" and param.min is not None else {}
        options[param.name] = (_opt(kind, param.help, **limits), param.default)
    return options


def _with_pairs(options: dict, after: str, what: str) -> dict:
    """`options` with a repeatable --AFTER-param KEY=VALUE option right after --AFTER."""
    pairs = (_opt(list[str] | None, f"{what} parameter KEY=VALUE, repeatable."), None)
    keys = list(options)
    keys.insert(keys.index(after) + 1, f"{after}_param")
    return {k: pairs if k == f"{after}_param" else options[k] for k in keys}


def _data_options_declared() -> dict:
    from daeflow.config import DATA_PARAMS, DATA_PATHS

    return _with_pairs(_declared_options(DATA_PARAMS, DATA_PATHS), "noise", "Noise")


def _train_options_declared() -> dict:
    from daeflow.config import TRAIN_PARAMS

    return _with_pairs(_declared_options(TRAIN_PARAMS), "objective", "Objective")


DATA_OPTIONS = _data_options_declared()
Axes = DATA_OPTIONS["axes"][0]  # the same --axes for denoise and evaluate
TRAIN_OPTIONS = _train_options_declared()


def _data_options(values: dict):
    from daeflow.config import DataOptions
    from daeflow.data.axes import parse_axes
    from daeflow.plugin.hyperparams import split_pairs

    values["noise_params"] = split_pairs(values.pop("noise_param") or [], "--noise-param")
    values["axes"] = parse_axes(values["axes"])  # refused before any work
    return DataOptions(**values)  # paths become text, checked like every declared option


def _train_values(values: dict):
    from daeflow.plugin.hyperparams import split_pairs

    given = values.pop("objective_param") or []
    values["objective_params"] = split_pairs(given, "--objective-param")
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
