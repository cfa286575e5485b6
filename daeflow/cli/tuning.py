"""`daeflow tune`: a hyperparameter search on Optuna, every trial an MLflow child run."""

from typing import Annotated

import typer

from daeflow.cli.common import Experiment, RunName, TrackingUri, app, guarded
from daeflow.cli.options import with_data_options, with_train_options
from daeflow.cli.training import (
    RegisterBest,
    _config,
    check_register_name,
    register_and_report,
    ui_hint,
)
from daeflow.errors import UsageError


def _study_name() -> str:
    import time

    return time.strftime("tune-%Y%m%d-%H%M%S")


@app.command(rich_help_panel="Train")
@guarded
@with_data_options
@with_train_options
def tune(
    arch: Annotated[
        list[str], typer.Option(help="Architecture, repeatable (then a searched choice).")
    ],
    space: Annotated[
        list[str],
        typer.Option(
            help="Searched NAME=SPEC, repeatable: a training option, arch.<name> or "
            "objective.<name>; SPEC "
            "loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH[:STEP] or choice:A,B,..."
        ),
    ],
    study: Annotated[
        str | None,
        typer.Option(help="Optuna study name; the same name and --storage join a study."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL, e.g. postgresql://... for several machines "
            "(default: optuna.db beside an sqlite MLflow store)."
        ),
    ] = None,
    trials: Annotated[
        int | None, typer.Option(min=1, help="Trials in the whole study (default 10).")
    ] = None,
    study_budget: Annotated[
        str | None, typer.Option(help="Start no trial after this long, e.g. 2h.")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="val_psnr or val_ssim (maximised), or val_loss (minimised; the default "
            "without clean validation images, else val_psnr)."
        ),
    ] = None,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid.")] = "tpe",
    pruner: Annotated[
        str,
        typer.Option(
            help="median, hyperband, none, or threshold:V (prune below V, above V for a loss)."
        ),
    ] = "median",
    workers: Annotated[int, typer.Option(min=1, help="Trial processes on this machine.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the split, the sampler and the weights.")] = 0,
    experiment: Experiment = "daeflow",
    run_name: RunName = None,
    tracking_uri: TrackingUri = None,
    register_best: RegisterBest = None,
    data_options=None,
    train_values=None,
):
    """Search hyperparameters with Optuna: each trial an MLflow child run, losers pruned early.

    Training options (--epochs, --time-budget, ...) apply to each trial. Run the same command
    with the same --study and a shared --storage on other machines to join the search.
    """
    from daeflow.config import parse_duration
    from daeflow.workflow.tune import DEFAULT_TRIALS, Plan, StudyOptions, load_optuna, run_tune

    load_optuna()
    check_register_name(register_best)
    budget = parse_duration(study_budget) if study_budget else None
    options = StudyOptions(
        name=study or _study_name(),
        storage=storage,
        space=list(space),
        archs=list(arch),
        trials=trials if trials is not None or budget else DEFAULT_TRIALS,
        budget=budget,
        metric=metric,
        sampler=sampler,
        pruner=pruner,
        workers=workers,
    )
    base = _config(
        arch[0], [], data_options, train_values, seed, experiment, run_name, tracking_uri
    )
    plan = Plan(base, options)
    parent, summary = run_tune(plan, typer.echo)
    counts = ", ".join(
        f"{summary.get(state, 0)} {state}" for state in ("complete", "pruned", "fail")
    )
    typer.echo(f"\nStudy {options.name!r}: {summary['trials']} trials ({counts}).")
    if "best_trial" in summary:
        shown = " ".join(f"{k}={v}" for k, v in summary["best_params"].items())
        typer.echo(
            f"  best: trial {summary['best_trial']}, {options.metric} "
            f"{summary['best_value']:.4f}  {shown}"
        )
        typer.echo(f"  its run: {summary['best_run_id']}")
    if summary.get("apart"):
        typer.echo(
            f"  {summary['apart']} complete trial(s) of this study were scored on other data, "
            "another split or another data range: left out of the ranking (use another "
            "--name for other data)."
        )
    typer.echo(f"Parent run {parent}.")
    if register_best is not None:
        if not summary.get("best_run_id"):
            raise UsageError("No trial completed, so there is no best model to register.")
        register_and_report(summary["best_run_id"], register_best)
    typer.echo(ui_hint(base.tracking_uri or "", None, parent))


@app.command("tune-worker", hidden=True)
@guarded
def tune_worker(plan_file: str, index: int):
    """One worker process of `daeflow tune --workers N` (started by it)."""
    from pathlib import Path

    from daeflow.workflow.tune import Plan, work

    def write(line: str) -> None:
        typer.echo(f"[worker {index}] {line}" if line.strip() else line)

    work(Plan.from_json(Path(plan_file).read_text()), index, write)
