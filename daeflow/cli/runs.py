"""`daeflow runs`: what is running, finished, stopped or orphaned, and how to resume it."""

import json
from typing import Annotated

import typer

from daeflow.cli.common import Json, TrackingUri, app, guarded, print_table


@app.command(rich_help_panel="Train")
@guarded
def runs(
    experiment: Annotated[
        str | None, typer.Option(help="Only this experiment (default: all).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: Json = False,
    tracking_uri: TrackingUri = None,
):
    """List training runs with their state; flag RUNNING runs whose process is gone."""
    from daeflow.track import queries, store
    from daeflow.workflow.status import rows

    uri = store.use_tracking_uri(tracking_uri)
    table = rows(queries.recent_runs(experiment, limit))
    if as_json:
        typer.echo(json.dumps(table, indent=2))
        return
    if not table:
        where = f"experiment {experiment!r} of " if experiment else ""
        typer.echo(f"No training runs in {where}{store.without_credentials(uri)}.")
        return
    shown = [
        {
            "run": r["run_id"][:8],
            "name": r["run_name"],
            "state": r["state"],
            "arch": r["arch"],
            "epochs": r["epochs"],
            "best val PSNR": "-" if r["best_val_psnr"] is None else f"{r['best_val_psnr']:.2f}",
            "host": r["host"],
            "next": r["next_command"],
        }
        for r in table
    ]
    print_table(shown, list(shown[0]), "Training runs, newest first")


@app.command(rich_help_panel="Train")
@guarded
def sync(
    run: Annotated[
        str | None,
        typer.Argument(help="Run id (or its start); default: every run kept on this machine."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="Upload there (default: the store each run was logged to)."),
    ] = None,
):
    """Upload what runs kept on this machine while the tracking server was away."""
    from daeflow.workflow.sync import sync_runs

    sync_runs(run, tracking_uri, typer.echo)
