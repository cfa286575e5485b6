"""`daeflow run` and `daeflow sweep`: train architectures, each as an MLflow run."""

from typing import Annotated

import typer

from daeflow.cli.common import Experiment, RunName, TrackingUri, app, guarded
from daeflow.cli.options import with_data_options, with_train_options

Seed = Annotated[int, typer.Option(help="Seed of the split, noise and weights.")]
ArchParam = Annotated[list[str] | None, typer.Option(help="Hyperparameter KEY=VALUE, repeatable.")]
Register = Annotated[
    str | None,
    typer.Option("--register", metavar="NAME", help="Register the model as a new version of NAME."),
]
RegisterBest = Annotated[
    str | None,
    typer.Option(
        "--register-best",
        metavar="NAME",
        help="Register the model of the best run (by validation PSNR, or the objective's "
        "validation loss without clean validation images) as a version of NAME.",
    ),
]


def check_register_name(name: str | None) -> None:
    """Refuse a registered-model name before any training."""
    if name is not None:
        from daeflow.track.registry import check_name

        check_name(name)


def register_and_report(run_id: str, name: str | None) -> None:
    """Register the run's model as a version of `name` (if given) and say how to load it."""
    if name is None:
        return
    from daeflow.workflow.register import register_run

    done = register_run(run_id, name)
    typer.echo(f"Registered run {run_id[:8]}'s model as {done.version_uri}.")


def ui_hint(tracking_uri: str, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """How to open the MLflow UI on this store, with a command that works as printed."""
    if tracking_uri.startswith(("http://", "https://")):
        from daeflow.track.queries import ui_page
        from daeflow.track.store import without_credentials

        base = without_credentials(tracking_uri).rstrip("/")
        opened = f"Open it in a browser: {ui_page(base, experiment_id, run_id)}"
        if experiment_id is None or run_id is None:
            return opened
        table = ui_page(base, experiment_id, view=True)
        return f"{opened}\n  all runs of the experiment, by test PSNR: {table}"
    return f"See it in the MLflow UI: {daeflow_command()} ui --tracking-uri {tracking_uri}"


def daeflow_command() -> str:
    """'daeflow' if that name on PATH runs this installation, else a command that does."""
    import shutil
    import sys
    from pathlib import Path

    script, found = Path(sys.argv[0]).resolve(), shutil.which("daeflow")
    if found and (script.name != "daeflow" or Path(found).resolve() == script):
        return "daeflow"
    if script.name == "daeflow":
        return str(script)  # e.g. .venv/bin/daeflow, with the venv not activated
    return f"{sys.executable} -m daeflow"


def _config(arch, arch_param, data_options, train_values, seed, experiment, run_name, uri):
    from daeflow.config import RunConfig, TrainOptions
    from daeflow.plugin.hyperparams import split_pairs

    return RunConfig(
        arch=arch,
        arch_params=split_pairs(arch_param or [], "--arch-param"),
        data=data_options,
        train=TrainOptions(**train_values, seed=seed),
        experiment=experiment,
        run_name=run_name,
        tracking_uri=uri,
    )


@app.command(rich_help_panel="Train")
@guarded
@with_data_options
@with_train_options
def run(
    ctx: typer.Context,
    arch: Annotated[
        str, typer.Option(help="Architecture (see 'daeflow archs').")
    ] = "conv_baseline",
    arch_param: ArchParam = None,
    seed: Seed = 0,
    experiment: Experiment = "daeflow",
    run_name: RunName = None,
    tracking_uri: TrackingUri = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue this run (id, its first 8 characters, or name) from its last "
            "checkpoint; training options given with it replace the run's."
        ),
    ] = None,
    register: Register = None,
    data_options=None,
    train_values=None,
):
    """Train a denoiser and log params, per-epoch metrics, test PSNR/SSIM and the model to MLflow.

    Without --clean/--noisy/--data it trains on bundled demo photographs with Gaussian noise
    (sigma 25 of 255). Checkpoints are written every epoch; --resume continues a run.
    """
    check_register_name(register)
    if resume:
        from daeflow.workflow.resume import resume as resume_run

        given = [
            name
            for name in ctx.params
            if ctx.get_parameter_source(name).name == "COMMANDLINE"
            and name not in ("resume", "tracking_uri", "register")
        ]
        overrides = {name: ctx.params[name] for name in given}
        outcome = resume_run(resume, overrides, tracking_uri, typer.echo)
        report(outcome)
        register_and_report(outcome.run_id, register)
        return
    from daeflow.workflow.run import run as run_workflow

    config = _config(
        arch, arch_param, data_options, train_values, seed, experiment, run_name, tracking_uri
    )
    outcome = run_workflow(config, write=typer.echo)
    report(outcome)
    register_and_report(outcome.run_id, register)


def report(outcome) -> None:
    """Print the run id, test and noisy-input PSNR/SSIM, and where to look."""
    m = outcome.metrics
    typer.echo(f"\nMLflow run {outcome.run_id} (experiment {outcome.experiment_id}) finished.")
    if "test_psnr" in m:
        typer.echo(f"  test PSNR {m['test_psnr']:.2f} dB  SSIM {m['test_ssim']:.4f}")
        typer.echo(
            f"  noisy input PSNR {m['noisy_psnr']:.2f} dB  SSIM {m['noisy_ssim']:.4f}  "
            f"(gain {m['psnr_gain']:+.2f} dB)"
        )
    else:
        typer.echo(
            f"  test loss {m['test_objective_loss']:.5f} (the objective's, on noisy images: "
            "no clean test images, so no PSNR; pass --test-data PAIRS.npz to score)"
        )
    typer.echo(
        f"  model: {outcome.model_uri}  (best epoch {outcome.best_epoch}, "
        f"stopped by {outcome.stop_reason})"
    )
    if outcome.baselines:
        shown = sorted(outcome.baselines, key=lambda b: -(b["test_psnr"] or 0))
        typer.echo(
            "  classical baselines on the same test images: "
            + ", ".join(f"{b['method']} {b['test_psnr']:.2f} dB" for b in shown)
        )
    for note in outcome.notes:
        typer.echo(f"Note: {note}")
    typer.echo(ui_hint(outcome.tracking_uri, outcome.experiment_id, outcome.run_id))


@app.command(rich_help_panel="Train")
@guarded
@with_data_options
@with_train_options
def sweep(
    arch: Annotated[list[str], typer.Option(help="Architecture, repeatable.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="Grid NAME=V1,V2 over a training option, arch.<name> or objective.<name>, "
            "repeatable."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per configuration.")] = 2,
    seed: Annotated[int, typer.Option(help="First seed.")] = 0,
    experiment: Experiment = "daeflow",
    run_name: RunName = None,
    tracking_uri: TrackingUri = None,
    register_best: RegisterBest = None,
    data_options=None,
    train_values=None,
):
    """Train a grid of architectures and parameters over several seeds, as nested MLflow runs."""
    from daeflow.workflow.sweep import parse_grid, run_sweep

    check_register_name(register_best)
    base = _config(
        arch[0], [], data_options, train_values, seed, experiment, run_name, tracking_uri
    )
    parent, children, summary, ranked_by = run_sweep(
        base, arch, parse_grid(param or []), list(range(seed, seed + seeds)), typer.echo
    )
    from daeflow.cli.common import print_table

    rows = [
        {
            "configuration": label,
            "finished": e["finished"],
            "failed": e["failed"],
            "PSNR mean": f"{e.get('test_psnr_mean', float('nan')):.2f}",
            "PSNR std": f"{e.get('test_psnr_std', float('nan')):.2f}",
        }
        for label, e in summary.items()
    ]
    if not ranked_by.higher_is_better:  # no clean validation images: the objective's loss
        for row, e in zip(rows, summary.values(), strict=True):
            for statistic in ("mean", "std"):
                shown = e.get(f"best_val_loss_{statistic}")
                row[f"val loss {statistic}"] = "-" if shown is None else f"{shown:.5f}"
                if f"test_psnr_{statistic}" not in e:
                    row[f"PSNR {statistic}"] = "-"
    print_table(rows, list(rows[0]), f"Sweep {parent}")
    failed = [c for c in children if c.status != "FINISHED"]
    typer.echo(
        f"Parent run {parent}: {len(children) - len(failed)} finished, {len(failed)} failed."
    )
    if register_best is not None:
        from daeflow.workflow.register import best_child

        register_and_report(
            best_child(parent, ranked_by.run_metric, ranked_by.higher_is_better), register_best
        )
