"""The daeflow command line: parse options, call the library, report; heavy imports stay lazy."""

# Each module adds its commands to `app`; the import order is the order of `--help`.
# ruff: noqa: I001, F401
from daeflow.cli import training, reference, compare, inference, listing, authoring
from daeflow.cli.common import app

__all__ = ["app"]
