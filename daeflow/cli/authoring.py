"""`daeflow check-arch`: the conformance kit, for plugin authors."""

from typing import Annotated

import typer

from daeflow.cli.common import app, fail, guarded, warn_plugin_failures


@app.command("check-arch", rich_help_panel="Plugins")
@guarded
def check_arch(
    name: Annotated[str, typer.Argument(help="Architecture name (see 'daeflow archs').")],
    arch_param: Annotated[
        list[str] | None, typer.Option(help="Hyperparameter KEY=VALUE, repeatable.")
    ] = None,
):
    """Check that an architecture meets the plugin contract (shapes, range, training, saving)."""
    from daeflow.hyperparams import split_pairs
    from daeflow.testing import ConformanceError, check_architecture

    warn_plugin_failures()
    try:
        report = check_architecture(name, split_pairs(arch_param or [], "--arch-param"))
    except ConformanceError as exc:
        raise fail(f"check-arch failed: {exc}", 1) from None
    for check in report.passed:
        typer.echo(f"  ok  {check}")
    typer.echo(f"{report.arch} from {report.plugin} meets the daeflow architecture contract.")
