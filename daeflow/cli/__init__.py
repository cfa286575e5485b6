"""The daeflow command line: parse options, call the library, report; heavy imports stay lazy."""

from daeflow.cli import authoring, listing, training  # noqa: F401  (each adds commands)
from daeflow.cli.common import app

__all__ = ["app"]
