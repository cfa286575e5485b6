"""`daeflow run`: train one architecture and log it as one MLflow run."""

from pathlib import Path
from typing import Annotated

import typer

from daeflow.cli.common import TrackingUri, app, guarded, warn_plugin_failures


def parse_duration(text: str | None) -> float | None:
    """'90', '90s', '10m' or '1.5h' as seconds."""
    if text is None:
        return None
    from daeflow.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise UsageError(
            f"--time-budget must look like 90s, 10m or 1.5h. Received: {text!r}"
        ) from None
    if seconds <= 0:
        raise UsageError(f"--time-budget must be positive. Received: {text!r}")
    return seconds


def ui_hint(tracking_uri: str) -> str:
    """How to open the MLflow UI on this store."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"Open {tracking_uri} in a browser."
    return f"See it in the MLflow UI: mlflow ui --backend-store-uri {tracking_uri}"


@app.command()
@guarded
def run(
    arch: Annotated[
        str, typer.Option(help="Architecture name (see 'daeflow archs').")
    ] = "conv_baseline",
    clean: Annotated[
        Path | None, typer.Option(help="Clean images, .npy of shape (N, H, W[, C]).")
    ] = None,
    noisy: Annotated[Path | None, typer.Option(help="Noisy images aligned with --clean.")] = None,
    data: Annotated[Path | None, typer.Option(help="An .npz holding both arrays.")] = None,
    clean_key: Annotated[str, typer.Option(help="Key of the clean array in --data.")] = "clean",
    noisy_key: Annotated[str, typer.Option(help="Key of the noisy array in --data.")] = "noisy",
    noise: Annotated[
        str | None, typer.Option(help="Synthetic noise model for clean-only data.")
    ] = None,
    noise_param: Annotated[
        list[str] | None, typer.Option(help="Noise parameter KEY=VALUE, repeatable.")
    ] = None,
    groups: Annotated[
        Path | None,
        typer.Option(help=".npy of one group id per image; a group stays in one split."),
    ] = None,
    val_data: Annotated[
        Path | None, typer.Option(help="Separate validation .npz instead of --val-fraction.")
    ] = None,
    test_data: Annotated[
        Path | None, typer.Option(help="Separate test .npz instead of --test-fraction.")
    ] = None,
    data_range: Annotated[
        float | None,
        typer.Option(
            help="Value of full white (default: 255 for uint8, 65535 for uint16, else observed)."
        ),
    ] = None,
    pad: Annotated[
        bool, typer.Option(help="Pad images to the size multiple the architecture needs.")
    ] = False,
    alignment_check: Annotated[
        bool, typer.Option(help="Check that clean[i] and noisy[i] belong together.")
    ] = True,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum number of epochs.")] = 20,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per training batch.")] = 32,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    lr_schedule: Annotated[str, typer.Option(help="constant, cosine or step.")] = "constant",
    val_fraction: Annotated[float, typer.Option(help="Fraction of images for validation.")] = 0.1,
    test_fraction: Annotated[
        float, typer.Option(help="Fraction of images for the final test.")
    ] = 0.1,
    patch_size: Annotated[
        int | None, typer.Option(min=1, help="Train on random PxP crops.")
    ] = None,
    patches_per_image: Annotated[
        int, typer.Option(min=1, help="Random crops per image in one epoch (with --patch-size).")
    ] = 1,
    augment: Annotated[bool, typer.Option(help="Random flips and 90-degree rotations.")] = False,
    time_budget: Annotated[
        str | None, typer.Option(help="Stop after the epoch that passes e.g. 10m.")
    ] = None,
    early_stopping: Annotated[
        int | None, typer.Option(min=1, help="Stop after N epochs without better val_psnr.")
    ] = None,
    jit_compile: Annotated[
        bool | None, typer.Option(help="XLA compilation (default: Keras's choice).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, noise and weights.")] = 0,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "daeflow",
    run_name: Annotated[str | None, typer.Option(help="MLflow run name.")] = None,
    tracking_uri: TrackingUri = None,
    arch_param: Annotated[
        list[str] | None, typer.Option(help="Hyperparameter KEY=VALUE, repeatable.")
    ] = None,
):
    """Train a denoiser and log params, per-epoch metrics, test PSNR/SSIM and the model to MLflow.

    Without --clean/--noisy/--data it trains on bundled demo photographs with Gaussian noise
    (sigma 25 of 255).
    """
    from daeflow.config import DataOptions, RunConfig, TrainOptions
    from daeflow.hyperparams import split_pairs

    warn_plugin_failures()
    config = RunConfig(
        arch=arch,
        arch_params=split_pairs(arch_param or [], "--arch-param"),
        data=DataOptions(
            clean=_text(clean),
            noisy=_text(noisy),
            data=_text(data),
            clean_key=clean_key,
            noisy_key=noisy_key,
            noise=noise,
            noise_params=split_pairs(noise_param or [], "--noise-param"),
            groups=_text(groups),
            val_data=_text(val_data),
            test_data=_text(test_data),
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            data_range=data_range,
            pad=pad,
            alignment_check=alignment_check,
        ),
        train=TrainOptions(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            lr_schedule=lr_schedule,
            patch_size=patch_size,
            patches_per_image=patches_per_image,
            augment=augment,
            time_budget=parse_duration(time_budget),
            early_stopping=early_stopping,
            jit_compile=jit_compile,
            seed=seed,
        ),
        experiment=experiment,
        run_name=run_name,
        tracking_uri=tracking_uri,
    )
    from daeflow.workflow import run as run_workflow

    outcome = run_workflow(config, write=typer.echo)
    report(outcome)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def report(outcome) -> None:
    """Print the run id, test and noisy-input PSNR/SSIM, and where to look."""
    m = outcome.metrics
    typer.echo(f"\nMLflow run {outcome.run_id} (experiment {outcome.experiment_id}) finished.")
    typer.echo(f"  test PSNR {m['test_psnr']:.2f} dB  SSIM {m['test_ssim']:.4f}")
    typer.echo(
        f"  noisy input PSNR {m['noisy_psnr']:.2f} dB  SSIM {m['noisy_ssim']:.4f}  "
        f"(gain {m['psnr_gain']:+.2f} dB)"
    )
    typer.echo(
        f"  model: {outcome.model_uri}  (best epoch {outcome.best_epoch + 1}, "
        f"stopped by {outcome.stop_reason})"
    )
    typer.echo(ui_hint(outcome.tracking_uri))
