"""`python -m daeflow`: the same as the `daeflow` command."""

from daeflow.cli import app

app(prog_name="daeflow")
