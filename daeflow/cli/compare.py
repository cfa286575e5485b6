"""`daeflow compare`: rank runs, and set chosen runs' test images side by side."""

import json
from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import Json, TrackingUri, app, guarded, print_table


def _fmt(value, digits=2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


@app.command(rich_help_panel="Compare")
@guarded
def compare(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="Runs to compare (default: all).")
    ] = None,
    experiment: Annotated[str, typer.Option(help="Experiment to list.")] = "daeflow",
    metric: Annotated[str, typer.Option(help="Metric to rank by, higher is better.")] = "test_psnr",
    sheet: Annotated[
        Path | None, typer.Option(help="Where to write the image sheet (with run ids).")
    ] = None,
    as_json: Json = False,
    tracking_uri: TrackingUri = None,
):
    """Rank runs by test PSNR with their cost; with run ids also write a PNG image sheet."""
    from daeflow import comparison, tracking

    tracking.use_tracking_uri(tracking_uri)
    rows = comparison.rows(comparison.find_runs(run_ids or [], experiment), metric)
    sheet_path = None
    if run_ids:
        sheet_path = comparison.sheet(
            rows, sheet or Path(f"compare-{'-'.join(r[:8] for r in run_ids)}.png")
        )
    if as_json:
        typer.echo(
            json.dumps({"runs": rows, "sheet": str(sheet_path) if sheet_path else None}, indent=2)
        )
        return
    shown = [
        {
            "run": r["run_id"][:8],
            "name": r["run_name"],
            "arch": r["arch"],
            "params": r["params"],
            "PSNR": _fmt(r["test_psnr"]),
            "SSIM": _fmt(r["test_ssim"], 4),
            "gain dB": _fmt(r["psnr_gain"]),
            "params #": _fmt(r["trainable_params"], 0),
            "train s": _fmt(r["train_seconds"], 1),
            "img/s": _fmt(r["train_images_per_second"], 0),
            "infer ms": _fmt(r["inference_ms"], 1),
            "status": r["status"],
        }
        for r in rows
    ]
    print_table(shown, list(shown[0]) if shown else ["run"], f"Runs by {metric}")
    if sheet_path:
        typer.echo(f"Image sheet: {sheet_path}")
