"""`daeflow check-model` and `daeflow serve`: a model folder checked as data before it is served."""

from typing import Annotated

import typer

from daeflow.cli.common import TrackingUri, app, guarded

Model = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="runs:/<id>/model, models:/<name>@<alias>, models:/<name>/<n>, or a model folder.",
    ),
]


@app.command("check-model", rich_help_panel="Use a model")
@guarded
def check_model(model: Model, tracking_uri: TrackingUri = None):
    """Read a model folder as data, importing nothing from it: is it a plain daeflow model?"""
    from daeflow.workflow.serve import check_model as check

    typer.echo(f"{model}: {check(model, tracking_uri)}.")


@app.command(rich_help_panel="Use a model")
@guarded
def serve(
    model: Model,
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5001,
    workers: Annotated[int, typer.Option(min=1, help="Scoring server worker processes.")] = 1,
    max_body: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Largest request body in bytes, refused with HTTP 413 above it (default: 3 x "
            "the model's params max_bytes + 1 MiB, 3 GiB for the default 1 GiB).",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
):
    """Check a model as check-model does, then serve it; a bad request gets a 4xx in one line."""
    from daeflow.workflow.serve import serve_model

    raise typer.Exit(
        serve_model(model, host, port, workers, tracking_uri, typer.echo, max_body=max_body)
    )
