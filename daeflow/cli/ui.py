"""`daeflow ui`: the MLflow UI for a store, on 127.0.0.1 (it runs `python -m mlflow ui`)."""

from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import TrackingUri, app, guarded


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


def experiment_pages(command: list[str], base: str) -> list[tuple[str, str]]:
    """(experiment, URL) of each experiment with runs in an existing sqlite store.

    The URLs of daeflow's experiments open the runs table in daeflow's view (giving the
    experiment that view first if its runs are older than it).
    """
    from daeflow.track import queries, store, view

    backend = (
        command[command.index("--backend-store-uri") + 1]
        if "--backend-store-uri" in command
        else "sqlite:///mlflow.db"
    )
    database = store.sqlite_path(backend)
    pages = []
    if database is not None and database.is_file():
        pages = [
            (name, queries.ui_page(base, experiment_id, view=view.view_for(backend, experiment_id)))
            for name, experiment_id in queries.training_experiments(backend)
        ]
    return pages or [("all experiments", queries.ui_page(base))]


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
    base = f"http://127.0.0.1:{port}"
    typer.echo(f"MLflow UI on {base} (Ctrl-C to stop). Runs, in its Model training view:")
    for name, url in experiment_pages(command, base):
        typer.echo(f"  {name}: {url}")
    sys.stdout.flush()
    # One worker and no job runner: the UI starts in seconds instead of half a minute.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    os.execve(sys.executable, command, env)  # signals reach the server itself
