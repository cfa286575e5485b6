"""The daeflow command line: parse options, call the library, report; heavy imports stay lazy."""

# Each module adds its commands to `app`; the import order is the order of `--help`.
# ruff: noqa: I001, F401
from daeflow.cli import (
    training,
    tuning,
    runs,
    baseline,
    compare,
    ui,
    server,
    inference,
    registry,
    serving,
    listing,
    authoring,
)
from daeflow.cli.common import app
from daeflow.errors import Interrupted

__all__ = ["app", "main"]


def main() -> None:
    """The `daeflow` command (the console script and `python -m daeflow`)."""
    import os
    import sys

    try:
        app(prog_name="daeflow")
    except SystemExit as done:
        if done.code != Interrupted.exit_code:
            raise
        # Everything is saved and the run is KILLED. Skip the interpreter's teardown, in
        # which TensorFlow waits for the stopped input pipeline's threads (5-20 s measured).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(Interrupted.exit_code)
