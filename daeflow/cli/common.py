"""What every command shares: the Typer app, error handling, common options, tables."""

import os
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from daeflow.errors import DaeflowError, Interrupted, debugging, one_line

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# stderr carries one line per failure; MLflow's download bars would crowd it.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


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
    def main(self, args=None, *rest, **kwargs):
        # Remember the command as typed, for the run's report and tags.
        import shlex
        import sys

        given = list(sys.argv[1:] if args is None else args)
        os.environ["DAEFLOW_COMMAND_LINE"] = shlex.join(["daeflow", *map(str, given)])
        return super().main(args, *rest, **kwargs)


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
    typer.echo(f"Error: {' '.join(message.split())}", err=True)
    return typer.Exit(code=code)


def warn_plugin_failures() -> None:
    """One warning line per plugin that failed or had names refused."""
    from daeflow.plugin.manager import get_plugins

    for info in get_plugins().failures:
        typer.echo(
            f"Warning: plugin {info.label()} {info.status} (see 'daeflow plugins').", err=True
        )


def _debug() -> bool:
    return debugging()


def _message(exc: BaseException) -> tuple[str, int]:
    """One line for an error that is not daeflow's own: what happened and what to do."""
    import sys

    from daeflow.runtime import disks

    text = one_line(exc)
    if disks.is_full(exc) and not isinstance(exc, OSError):  # SQLite's "database ... full"
        places = []
        if "mlflow" in sys.modules:  # the store in use, without importing MLflow for it
            from daeflow.track.store import places as store_places

            places = store_places()
        place = disks.full_place(exc, places)
        where = place.subject() if place else "The MLflow store"
        return (
            f"{where} is full ({disks.reason(exc)}). Free some space "
            "there and run the same command again.",
            1,
        )
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        reason = exc.strerror or text or type(exc).__name__
        hint = {
            28: "Free some disk space and run it again.",
            13: "Check the permissions of that path.",
            30: "Choose a writable location.",
        }.get(exc.errno, "Check the path and try again.")
        return f"{reason}{where}. {hint}", 1
    if any(cls.__module__.startswith("mlflow") for cls in type(exc).__mro__):
        from daeflow.track.store import refusal

        line = refusal(exc)  # a login or a permission the server refused: the user's to fix
        return (line, 2) if line else (f"MLflow: {text[:400]}", 1)
    return (
        f"Unexpected {type(exc).__name__}: {text[:400]}. Run again with DAEFLOW_DEBUG=1 for the "
        "traceback and report it.",
        1,
    )


def guarded(function):
    """Run a command body, turning every error into one line on stderr and an exit code.

    DAEFLOW_DEBUG=1 lets errors through with their traceback.
    """
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            warn_plugin_failures()
            return function(*args, **kwargs)
        except typer.Exit:
            raise
        except DaeflowError as exc:
            if _debug():
                raise
            raise fail(str(exc), exc.exit_code) from None
        except Interrupted as exc:
            if _debug():
                raise
            raise fail(str(exc), Interrupted.exit_code) from None
        except KeyboardInterrupt:
            if _debug():
                raise
            raise fail("Interrupted; the MLflow run is marked KILLED.", 130) from None
        except Exception as exc:
            if _debug():
                raise
            message, code = _message(exc)
            raise fail(message, code) from None

    return wrapper


Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TrackingUri = Annotated[
    str | None,
    typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: MLflow's)."),
]
Experiment = Annotated[str, typer.Option(help="MLflow experiment name.")]
RunName = Annotated[str | None, typer.Option(help="MLflow run name.")]


def print_table(
    rows: list[dict], columns: list[str], title: str | None = None, whole: tuple[str, ...] = ()
) -> None:
    """A rich table of rows; the `whole` columns are neither wrapped nor cut while others can."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column in whole)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    Console(width=160).print(table)
