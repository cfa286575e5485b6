"""`daeflow denoise` and `daeflow evaluate`: use a trained model on new arrays."""

from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import TrackingUri, app, guarded
from daeflow.cli.options import Axes
from daeflow.runtime.tiles import MARGIN, TILE

ModelUri = Annotated[
    str,
    typer.Option(
        "--model", help="runs:/<id>/model, models:/<name>@<alias>, models:/<name>/<n>, a path."
    ),
]
SelfEnsemble = Annotated[
    bool,
    typer.Option(
        "--self-ensemble", help="Average over the 8 flips/rotations: a little better, 8x slower."
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        help="float32, mixed_bfloat16, mixed_float16, or auto: the fastest this machine has."
    ),
]
DataRange = Annotated[
    float | None,
    typer.Option(
        help="Full-scale value (default: the model's training range for input like its "
        "training data, else the input's own, as for training)."
    ),
]
Recorrupted = Annotated[
    int,
    typer.Option(
        "--recorrupted-average",
        min=0,
        metavar="K",
        help="For a model trained with --objective r2r: average K re-noised inputs, as the "
        "R2R paper does (K times slower).",
    ),
]


@app.command(rich_help_panel="Use a model")
@guarded
def denoise(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help=".npy of (H, W), (H, W, C) or (N, H, W, C); a TIFF or Zarr with --axes.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Where to write the result, in the input's format."),
    ],
    model: ModelUri,
    data_range: DataRange = None,
    tile: Annotated[int, typer.Option(min=16, help="Tile core size in pixels.")] = TILE,
    margin: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Context around each tile, wider than the receptive field (default: the "
            f"model's, stored with it; {MARGIN} for models saved without one).",
        ),
    ] = None,
    self_ensemble: SelfEnsemble = False,
    recorrupted_average: Recorrupted = 0,
    precision: Precision = "float32",
    tracking_uri: TrackingUri = None,
    axes: Axes = None,
):
    """Denoise an array of any size by overlapping tiles; keeps its shape, dtype and range,
    and its format (.npy, TIFF with its axes and OME metadata, Zarr)."""
    from daeflow.data.axes import parse_axes
    from daeflow.workflow.denoise import denoise_file

    done = denoise_file(
        input_path,
        output,
        model,
        data_range,
        tile,
        margin,
        self_ensemble,
        tracking_uri,
        typer.echo,
        precision,
        recorrupted_average,
        parse_axes(axes),
    )
    typer.echo(
        f"Denoised {done.shape} {done.dtype} (data range {done.data_range:g}) in "
        f"{done.seconds:.1f} s, {done.megapixels_per_second:.2f} mega{done.unit}/s -> {done.output}"
    )


@app.command(rich_help_panel="Use a model")
@guarded
def evaluate(
    model: ModelUri,
    clean: Annotated[Path, typer.Option(help="Clean images (.npy).")],
    noisy: Annotated[Path, typer.Option(help="Noisy images aligned with --clean (.npy).")],
    data_range: DataRange = None,
    log: Annotated[
        bool, typer.Option("--log", help="Log the scores as an MLflow evaluation run.")
    ] = False,
    experiment: Annotated[str, typer.Option(help="MLflow experiment for --log.")] = "daeflow",
    self_ensemble: SelfEnsemble = False,
    recorrupted_average: Recorrupted = 0,
    precision: Precision = "float32",
    tracking_uri: TrackingUri = None,
    axes: Axes = None,
):
    """Report PSNR/SSIM of a model on new clean/noisy data, and optionally log them."""
    from daeflow.data.axes import parse_axes

    axes = parse_axes(axes)
    from daeflow.workflow.denoise import needs_store, open_denoiser
    from daeflow.workflow.evaluate import evaluate_model

    if log and not needs_store(model):
        from daeflow.track import store

        store.use_tracking_uri(tracking_uri)
    denoiser = open_denoiser(
        model, tracking_uri, self_ensemble, precision, typer.echo, recorrupted_average
    )
    outcome = evaluate_model(
        denoiser, str(clean), str(noisy), data_range, log, experiment, typer.echo, axes
    )
    m = outcome["metrics"]
    typer.echo(
        f"{m['n_images']} images: PSNR {m['test_psnr']:.2f} dB, SSIM {m['test_ssim']:.4f}; "
        f"noisy input PSNR {m['noisy_psnr']:.2f} dB, SSIM {m['noisy_ssim']:.4f} "
        f"(gain {m['psnr_gain']:+.2f} dB)"
    )
    if outcome.get("run_id"):
        typer.echo(f"Logged as MLflow run {outcome['run_id']}.")
