"""`daeflow baseline` and `daeflow ui`: classical reference runs, and the MLflow UI."""

from pathlib import Path
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
    from daeflow.reference import run_baseline

    run_id, metrics, tuned = run_baseline(
        method, data_options, seed, experiment, run_name, tracking_uri, typer.echo
    )
    typer.echo(
        f"\nMLflow run {run_id}: {method} {tuned} test PSNR {metrics['test_psnr']:.2f} dB, "
        f"SSIM {metrics['test_ssim']:.4f} (noisy input {metrics['noisy_psnr']:.2f} dB)"
    )


def store_uris(store: Path) -> tuple[str, str | None]:
    """Backend URI and artifact folder for a store path: a folder holding mlflow.db, or the file."""
    from daeflow.errors import UsageError

    store = store.resolve()
    database = store / "mlflow.db" if store.is_dir() else store
    if not database.is_file():
        raise UsageError(
            f"No MLflow store at {store}: expected an mlflow.db file or a folder with one."
        )
    artifacts = database.parent / "artifacts"
    return f"sqlite:///{database}", str(artifacts) if artifacts.is_dir() else None


def ui_command(store: Path | None, tracking_uri: str | None, port: int) -> list[str]:
    """The `mlflow ui` command line, bound to 127.0.0.1."""
    import sys

    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if store is not None:
        backend, artifacts = store_uris(store)
        command += ["--backend-store-uri", backend]
        if artifacts:
            command += ["--artifacts-destination", artifacts, "--serve-artifacts"]
    elif tracking_uri:
        command += ["--backend-store-uri", tracking_uri]
    return command


@app.command(rich_help_panel="Compare")
@guarded
def ui(
    store: Annotated[
        Path | None, typer.Option(help="An mlflow.db, or a folder such as mlruns.example.")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: TrackingUri = None,
):
    """Start the MLflow UI for a store, bound to 127.0.0.1, and print its URL."""
    import os
    import sys

    command = ui_command(store, tracking_uri, port)
    typer.echo(f"MLflow UI: http://127.0.0.1:{port}  (Ctrl-C to stop)")
    sys.stdout.flush()
    # One worker and no job runner: the UI starts in seconds instead of half a minute.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    os.execve(sys.executable, command, env)  # signals reach the server itself
