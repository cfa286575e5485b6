"""`python -m daeflow`: the same as the `daeflow` command."""

from daeflow.cli import main

main()
