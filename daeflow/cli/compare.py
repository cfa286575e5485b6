"""`daeflow compare`: rank runs, and set chosen runs' test images side by side."""

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import Json, TrackingUri, app, guarded, print_table

WHOLE = ("run", "arch", "objective")  # what a row is: never cut, however narrow the table


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
    data: Annotated[
        str | None,
        typer.Option(
            help="Only runs on this data: a digest (its first characters) or same-as:RUN."
        ),
    ] = None,
    as_json: Json = False,
    tracking_uri: TrackingUri = None,
):
    """Rank runs by test PSNR with their objective and cost, one table per dataset (runs scored
    on one --test-data file share one, whatever they trained on); with run ids also write a
    PNG image sheet."""
    from daeflow.track import store
    from daeflow.workflow import compare as comparison

    store.use_tracking_uri(tracking_uri)
    found = comparison.select_data(comparison.find_runs(run_ids or [], experiment), data)
    rows = comparison.rows(found, metric)
    sheet_path = None
    if run_ids:
        sheet_path = comparison.sheet(
            rows, sheet or Path(f"compare-{'-'.join(r[:8] for r in run_ids)}.png")
        )
    groups = comparison.tables(rows)
    added = comparison.stored_baselines(groups, metric)
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    apart = comparison.apart(groups)
    if as_json:
        tables = [
            {
                **dataclasses.asdict(key),
                "runs": [r["run_id"] for r in shown],
                "baselines_from_store": added.get(key, []),
            }
            for key, shown in groups.items()
        ]
        found = {
            "runs": rows,
            "datasets": datasets,
            "tables": tables,
            "apart": apart,
            "sheet": str(sheet_path) if sheet_path else None,
        }
        typer.echo(json.dumps(found, indent=2))
        return
    if len(datasets) > 1:
        typer.echo(
            f"These runs used {len(datasets)} different datasets: compare numbers within a "
            "table only (--data DIGEST or --data same-as:RUN picks one)."
        )
    for line in apart:
        typer.echo(line)
    for key, listed in (groups or {None: []}).items():
        extra = added.get(key, [])
        shown = [_shown(r) for r in comparison.ranked(listed + extra, metric)]
        title = f"Runs by {metric}"
        if key is not None and key.data == comparison.ANY_TRAINING:
            title += f" on one test file, whatever they trained on: {key.describe()}"
        elif key is not None:
            digest = None if key.data == "?" else key.data
            title += f" on data {(digest or 'unknown')[:12]} ({listed[0]['data_source']}), "
            title += key.describe()
        print_table(shown, list(shown[0]) if shown else ["run"], title, WHOLE)
        if extra:
            typer.echo(
                f"With {len(extra)} classical baseline(s) of the same data, test split and data "
                "range from the tracking store (any experiment), as they stand now."
            )
    if sheet_path:
        typer.echo(f"Image sheet: {sheet_path}")


def _shown(r: dict) -> dict:
    return {
        "run": r["run_id"][:8],
        "name": r["run_name"],
        "arch": r["arch"],
        "objective": _fmt(r["objective"]),
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
