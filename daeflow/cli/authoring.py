"""`daeflow check-arch`, `daeflow check-objective`: the conformance kit, for plugin authors."""

from typing import Annotated

import typer

from daeflow.cli.common import app, fail, guarded


@app.command("check-arch", rich_help_panel="Plugins")
@guarded
def check_arch(
    name: Annotated[str, typer.Argument(help="Architecture name (see 'daeflow archs').")],
    arch_param: Annotated[
        list[str] | None, typer.Option(help="Hyperparameter KEY=VALUE, repeatable: one set.")
    ] = None,
    param_set: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="A hyperparameter set 'KEY=VALUE,KEY=VALUE', repeatable: one check each."
        ),
    ] = None,
):
    """Check that an architecture meets the plugin contract (shapes, range, training, saving)."""
    from daeflow.plugin.hyperparams import split_pairs
    from daeflow.workflow.conformance import ConformanceError, check_architecture

    sets = [split_pairs(arch_param or [], "--arch-param")] if arch_param or not param_set else []
    sets += [split_pairs(s.split(","), "--set") for s in param_set or []]
    try:
        report = check_architecture(name, param_sets=sets)
    except ConformanceError as exc:
        raise fail(f"check-arch failed: {exc}", 1) from None
    for check in report.passed:
        typer.echo(f"  ok  {check}")
    typer.echo(f"{report.arch} from {report.plugin} meets the daeflow architecture contract.")


@app.command("check-objective", rich_help_panel="Plugins")
@guarded
def check_objective(
    name: Annotated[str, typer.Argument(help="Objective name (see 'daeflow objectives').")],
    objective_param: Annotated[
        list[str] | None, typer.Option(help="Parameter KEY=VALUE, repeatable: one set.")
    ] = None,
    param_set: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="A parameter set 'KEY=VALUE,KEY=VALUE', repeatable: one check each."
        ),
    ] = None,
):
    """Check that a training objective meets the plugin contract (batch shapes, seeding, loss,
    gradients)."""
    from daeflow.plugin.hyperparams import split_pairs
    from daeflow.workflow.conformance import ConformanceError
    from daeflow.workflow.conformance import check_objective as check

    sets = (
        [split_pairs(objective_param or [], "--objective-param")]
        if objective_param or not param_set
        else []
    )
    sets += [split_pairs(s.split(","), "--set") for s in param_set or []]
    try:
        report = check(name, param_sets=sets)
    except ConformanceError as exc:
        raise fail(f"check-objective failed: {exc}", 1) from None
    for check_done in report.passed:
        typer.echo(f"  ok  {check_done}")
    typer.echo(f"{report.objective} from {report.plugin} meets the daeflow objective contract.")
