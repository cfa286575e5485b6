"""The daeflow command line: parse options, call the library, report; heavy imports stay lazy."""

from daeflow.cli import listing, training  # noqa: F401  (each module adds its commands)
from daeflow.cli.common import app

__all__ = ["app"]
