"""The daeflow command line: parse options, call the library, report; heavy imports stay lazy."""

from daeflow.cli import authoring, inference, listing, training  # noqa: F401  (add commands)
from daeflow.cli.common import app

__all__ = ["app"]
