"""What every command shares: the Typer app, error handling, common options, tables."""

import os
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from daeflow.errors import DaeflowError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


class _PlainHelpFlag:
    """Gives --help a False default, so Typer never builds a pydantic adapter for it.

    Typer 0.29 coerces an option whose value is not already a bool through pydantic, and
    the help flag's default is None: importing pydantic for that cost `daeflow archs` a
    third of its start-up time.
    """

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


class _Group(_PlainHelpFlag, TyperGroup):
    pass


class _Command(_PlainHelpFlag, TyperCommand):
    pass


class _App(typer.Typer):
    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or _Command, **kwargs)


app = _App(
    cls=_Group,
    help="Train image denoisers from NumPy arrays and track every run in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the exit to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code=code)


def warn_plugin_failures() -> None:
    """One warning line per plugin that failed to load."""
    from daeflow.plugins import get_plugins

    for info in get_plugins().failures:
        typer.echo(
            f"Warning: plugin {info.name!r} ({info.distribution}) failed to load: {info.error} "
            "(see 'daeflow plugins').",
            err=True,
        )


def guarded(function):
    """Run a command body, turning daeflow errors into one line on stderr and an exit code."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except DaeflowError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("Interrupted; the MLflow run is marked KILLED.", 130) from None

    return wrapper


Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TrackingUri = Annotated[
    str | None,
    typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: MLflow's)."),
]
Experiment = Annotated[str, typer.Option(help="MLflow experiment name.")]
RunName = Annotated[str | None, typer.Option(help="MLflow run name.")]


def print_table(rows: list[dict], columns: list[str], title: str | None = None) -> None:
    """A rich table of rows."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console(width=160).print(table)
