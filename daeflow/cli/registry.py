"""`daeflow register` and `daeflow export`: from a trained run to a deployable model."""

from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import TrackingUri, app, guarded


@app.command(rich_help_panel="Use a model")
@guarded
def register(
    run: Annotated[str, typer.Argument(help="Run id, its first 8 characters, or run name.")],
    name: Annotated[str, typer.Option(help="Registered model name (created if new).")],
    alias: Annotated[
        str | None, typer.Option(help="Point this alias (e.g. champion) at the new version.")
    ] = None,
    tracking_uri: TrackingUri = None,
):
    """Register a run's model as a new version of NAME, with a model card; optionally alias it."""
    from daeflow.track import store
    from daeflow.workflow.register import register_run

    store.use_tracking_uri(tracking_uri)
    done = register_run(run, name, alias)
    typer.echo(f"Registered {done.version_uri} with its model card.")
    if alias:
        typer.echo(f"Alias {alias!r} -> version {done.version}: load it as {done.uri}")


@app.command(rich_help_panel="Use a model")
@guarded
def export(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL_URI", help="runs:/<id>/model, models:/<name>@<alias>, or a path."
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", help="savedmodel or onnx.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder (savedmodel) or .onnx.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    tracking_uri: TrackingUri = None,
):
    """Export a model as a TensorFlow SavedModel or ONNX, checked against Keras on an image."""
    from daeflow.workflow.denoise import open_denoiser
    from daeflow.workflow.export import check_target, export_model

    check_target(fmt, output, force)
    denoiser = open_denoiser(model, tracking_uri, write=typer.echo)
    done = export_model(denoiser, fmt, output, force)
    typer.echo(
        f"Exported {fmt} to {done.path} (metadata in {done.metadata_path}); on a check image "
        f"its output differs from Keras's by at most {done.max_difference:.1e} "
        f"({done.checked_with})."
    )
