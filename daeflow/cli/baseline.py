"""`daeflow baseline`: a classical denoiser on the same split as the networks, as a run."""

from typing import Annotated

import typer

from daeflow.cli.common import Experiment, RunName, TrackingUri, app, guarded
from daeflow.cli.options import with_data_options


@app.command(rich_help_panel="Compare")
@guarded
@with_data_options
def baseline(
    method: Annotated[
        str, typer.Option(help="identity, gaussian, median, nlm, tv or wavelet.")
    ] = "nlm",
    seed: Annotated[int, typer.Option(help="Seed of the split (use the networks' seed).")] = 0,
    experiment: Experiment = "daeflow",
    run_name: RunName = None,
    tracking_uri: TrackingUri = None,
    data_options=None,
):
    """Log a classical denoiser, tuned on validation, scored on the same test split as networks."""
    from daeflow.workflow.baseline import run_baseline

    run_id, metrics, tuned = run_baseline(
        method, data_options, seed, experiment, run_name, tracking_uri, typer.echo
    )
    typer.echo(
        f"\nMLflow run {run_id}: {method} {tuned} test PSNR {metrics['test_psnr']:.2f} dB, "
        f"SSIM {metrics['test_ssim']:.4f} (noisy input {metrics['noisy_psnr']:.2f} dB)"
    )
