"""`daeflow denoise` and `daeflow evaluate`: use a trained model on new arrays."""

import time
from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import TrackingUri, app, guarded

ModelUri = Annotated[
    str,
    typer.Option("--model", help="runs:/<id>/model, models:/<name>/<version> or a local path."),
]
SelfEnsemble = Annotated[
    bool,
    typer.Option(
        "--self-ensemble", help="Average over the 8 flips/rotations: a little better, 8x slower."
    ),
]


def _open_model(model: str, tracking_uri: str | None, ensemble: bool = False):
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
    from daeflow.ensemble import ensembled
    from daeflow.models import load_denoiser

    denoiser = load_denoiser(model)
    return ensembled(denoiser) if ensemble else denoiser


def _range_for(array, given: float | None, denoiser) -> float:
    """--data-range, else the input dtype's full range, else the model's training range."""
    import numpy as np

    if given:
        return given
    if array.dtype in (np.uint8, np.uint16):
        return float(np.iinfo(array.dtype).max)
    if denoiser.data_range:
        return float(denoiser.data_range)
    from daeflow.errors import UsageError

    raise UsageError("Cannot tell the data range of float input: pass --data-range.")


@app.command(rich_help_panel="Use a model")
@guarded
def denoise(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT.npy", help="(H, W), (H, W, C) or (N, H, W, C).")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the result (.npy).")
    ],
    model: ModelUri,
    data_range: Annotated[
        float | None,
        typer.Option(
            help="Full-scale value of the input (default: from its dtype, else the model's)."
        ),
    ] = None,
    tile: Annotated[int, typer.Option(min=16, help="Tile core size in pixels.")] = 512,
    margin: Annotated[
        int, typer.Option(min=0, help="Context around each tile, wider than the receptive field.")
    ] = 32,
    self_ensemble: SelfEnsemble = False,
    tracking_uri: TrackingUri = None,
):
    """Denoise an array of any size by overlapping tiles; keeps its shape, dtype and range."""
    import numpy as np

    from daeflow import data
    from daeflow.tiling import denoise_array

    array = data.load_array(input_path, "input").array
    if array.dtype.kind not in "uif" or array.ndim not in (2, 3, 4) or array.size == 0:
        raise data.DataError(
            f"Input must be a non-empty numeric (H, W), (H, W, C) or (N, H, W, C) array; got "
            f"shape {array.shape}, dtype {array.dtype}."
        )
    denoiser = _open_model(model, tracking_uri, self_ensemble)
    scale = _range_for(array, data_range, denoiser)
    start = time.perf_counter()
    result = denoise_array(denoiser, array, scale, tile, margin)
    seconds = time.perf_counter() - start
    np.save(output, result)
    channels = array.shape[-1] if array.ndim >= 3 else 1
    megapixels = array.size / channels / 1e6
    typer.echo(
        f"Denoised {array.shape} {array.dtype} (data range {scale:g}) in {seconds:.1f} s, "
        f"{megapixels / seconds:.2f} megapixels/s -> {output}"
    )


@app.command(rich_help_panel="Use a model")
@guarded
def evaluate(
    model: ModelUri,
    clean: Annotated[Path, typer.Option(help="Clean images (.npy).")],
    noisy: Annotated[Path, typer.Option(help="Noisy images aligned with --clean (.npy).")],
    data_range: Annotated[
        float | None, typer.Option(help="Full-scale value (default: from dtype).")
    ] = None,
    log: Annotated[
        bool, typer.Option("--log", help="Log the scores as an MLflow evaluation run.")
    ] = False,
    experiment: Annotated[str, typer.Option(help="MLflow experiment for --log.")] = "daeflow",
    self_ensemble: SelfEnsemble = False,
    tracking_uri: TrackingUri = None,
):
    """Report PSNR/SSIM of a model on new clean/noisy data, and optionally log them."""
    from daeflow.scoring import evaluate_model

    denoiser = _open_model(model, tracking_uri, self_ensemble)
    outcome = evaluate_model(denoiser, str(clean), str(noisy), data_range, log, experiment)
    m = outcome["metrics"]
    typer.echo(
        f"{m['n_images']} images: PSNR {m['test_psnr']:.2f} dB, SSIM {m['test_ssim']:.4f}; "
        f"noisy input PSNR {m['noisy_psnr']:.2f} dB, SSIM {m['noisy_ssim']:.4f} "
        f"(gain {m['psnr_gain']:+.2f} dB)"
    )
    if outcome.get("run_id"):
        typer.echo(f"Logged as MLflow run {outcome['run_id']}.")
