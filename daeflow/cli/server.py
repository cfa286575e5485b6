"""`daeflow server`: MLflow's tracking server on PostgreSQL, for a team or many processes."""

from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import app, guarded


@app.command(
    rich_help_panel="Compare",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@guarded
def server(
    ctx: typer.Context,
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Folder of the server: PostgreSQL data, artifacts, accounts."),
    ] = Path("daeflow-server"),
    store: Annotated[
        str | None,
        typer.Option(help="An existing database URI (postgresql://...) instead of --dir's."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="Server worker processes.")] = 2,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth/--no-auth",
            help="Accounts and per-experiment permissions (MLflow's basic-auth); --no-auth "
            "lets in anyone who reaches the port.",
        ),
    ] = True,
):
    """Run an MLflow tracking server on PostgreSQL; more `mlflow server` options may follow.

    On first start it creates the account 'admin' with the password in
    DAEFLOW_ADMIN_PASSWORD, or prints a generated one (kept in DIR/admin-password).
    """
    from daeflow.track.server import serve

    def warn(line: str) -> None:
        typer.echo(line, err=True)

    code = serve(folder, store, host, port, workers, list(ctx.args), typer.echo, auth, warn)
    raise typer.Exit(code)
