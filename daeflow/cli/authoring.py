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
    from daeflow.workflow.conformance import check_architecture

    report = _conform("check-arch", check_architecture, name, arch_param, "--arch-param", param_set)
    typer.echo(f"{report.arch} from {report.plugin} meets the daeflow architecture contract.")


def _conform(command: str, check, name: str, given, flag: str, param_set):
    """Run a conformance check over the parameter sets (`given` as one set, and each --set),
    print what passed; a failure is one line, exit 1."""
    from daeflow.plugin.hyperparams import split_pairs
    from daeflow.workflow.conformance import ConformanceError

    sets = [split_pairs(given or [], flag)] if given or not param_set else []
    sets += [split_pairs(s.split(","), "--set") for s in param_set or []]
    try:
        report = check(name, param_sets=sets)
    except ConformanceError as exc:
        raise fail(f"{command} failed: {exc}", 1) from None
    for passed in report.passed:
        typer.echo(f"  ok  {passed}")
    return report


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
    from daeflow.workflow.conformance import check_objective as check

    report = _conform(
        "check-objective", check, name, objective_param, "--objective-param", param_set
    )
    typer.echo(f"{report.objective} from {report.plugin} meets the daeflow objective contract.")
