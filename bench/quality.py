"""Quality benchmark: train on train400 with fresh Gaussian noise, denoise Set12 at full size.

Protocol (issue 6): clean train400 images with synthetic Gaussian noise, sigma 25 on the
0-255 scale (or a range, `--sigma 0:50`: one blind model), drawn afresh for every batch; then
each Set12 image at full size, noise from numpy.random.default_rng(0) per image, times the
scored sigma (`--score-sigma`), not clipped; output clipped to [0, 1]; PSNR with data range 1
over the whole image; SSIM is scikit-image's default (7x7 uniform window).
The benchmark loads the PNGs itself; daeflow only ever sees NumPy arrays.

    .venv/bin/python bench/quality.py --budget 570s
    .venv/bin/python bench/quality.py --budget 1170s --sigma 0:50   # blind, scored at 15 25 50
"""

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SIGMA = 25.0
BLIND_SCORES = (15.0, 25.0, 50.0)  # where a model trained on a range of sigma is scored
# Set12 in the published table (DPIR's README): sigma -> (BM3D, DnCNN)
PUBLISHED = {15.0: (32.37, 32.86), 25.0: (29.97, 30.44), 50.0: (26.72, 27.18)}
# The recipe's network when --arch and --arch-param are left alone: residual_fast with ten
# half-size convs in five residual blocks (BENCHMARKS.md, issue 15), each starting as the
# identity (issue 28).
RECIPE_ARCH_PARAMS = {"residual_fast": ["depth=10", "residual_blocks=true", "skip_init=true"]}
VAL_FRACTION = TEST_FRACTION = 0.05  # of train400: 20 images each


def load_pngs(folder: Path) -> list[np.ndarray]:
    """Grayscale uint8 images, sorted by file name."""
    return [np.array(Image.open(p).convert("L")) for p in sorted(folder.glob("*.png"))]


def train_command(args, clean_path: Path, store: str) -> list[str]:
    data = [
        "--clean",
        str(clean_path),
        "--noise",
        "gaussian",
        "--noise-param",
        f"sigma={args.sigma}",
    ]
    return recipe_command(args, data, "quality-benchmark", store)


def recipe_command(args, data: list[str], experiment: str, store: str) -> list[str]:
    """`daeflow run` with the recipe of add_recipe_options, on the `data` options given."""
    command = [
        str(ROOT / ".venv" / "bin" / "daeflow"),
        "run",
        "--arch",
        args.arch,
        *data,
        "--patch-size",
        str(args.patch_size),
        "--patches-per-image",
        str(args.patches_per_image),
        "--augment",
        "--pad",  # validation images whole, padded to the network's size multiple
        "--batch-size",
        str(args.batch_size),
        "--learning-rate",
        str(args.learning_rate),
        "--lr-schedule",
        "cosine",
        "--lr-warmup",
        str(args.lr_warmup),
        "--time-budget",
        args.budget,
        "--epochs",
        str(args.epochs),
        "--ema-momentum",
        str(args.ema_momentum),
        "--val-every",
        str(args.val_every),
        "--checkpoint-every",
        args.checkpoint_every,
        "--val-fraction",
        str(VAL_FRACTION),
        "--test-fraction",
        str(TEST_FRACTION),
        "--seed",
        str(args.seed),
        "--experiment",
        experiment,
        "--tracking-uri",
        store,
        "--jit-compile" if args.jit else "--no-jit-compile",
        "--precision",
        args.precision,
    ]
    arch_params = args.arch_param
    if arch_params is None:
        arch_params = RECIPE_ARCH_PARAMS.get(args.arch, [])
    for pair in arch_params:
        command += ["--arch-param", pair]
    return command


def set12_scores(model, limit: int | None = None, sigma: float = SIGMA) -> tuple[list, float]:
    """Per-image (name, noisy PSNR, PSNR, SSIM) on Set12 (its first `limit` images) at noise
    `sigma` (0-255 scale), and the seconds spent denoising."""
    from daeflow.quality.metrics import psnr, ssim

    rows, seconds = [], 0.0
    names = sorted(p.name for p in (DATA / "Set12").glob("*.png"))
    for name, image in list(zip(names, load_pngs(DATA / "Set12"), strict=True))[:limit]:
        clean = image.astype(np.float64)[None, ..., None] / 255
        noise = np.random.default_rng(0).normal(0, sigma / 255, clean.shape)
        noisy = (clean + noise).astype(np.float32)
        start = time.perf_counter()
        denoised = np.clip(np.asarray(model(noisy, training=False)), 0, 1)
        seconds += time.perf_counter() - start
        rows.append(
            (
                name,
                psnr(clean, noisy, 1.0)[0],
                psnr(clean, denoised, 1.0)[0],
                ssim(clean, denoised, 1.0)[0],
            )
        )
    return rows, seconds


def print_table(rows) -> float:
    """Print per-image rows and their means; return the mean PSNR."""
    print(f"{'image':<8} {'noisy':>7} {'PSNR':>7} {'SSIM':>7}")
    for name, noisy_psnr, value, structure in rows:
        print(f"{name:<8} {noisy_psnr:7.2f} {value:7.2f} {structure:7.4f}")
    mean = float(np.mean([r[2] for r in rows]))
    print(
        f"{'mean':<8} {np.mean([r[1] for r in rows]):7.2f} {mean:7.2f} "
        f"{np.mean([r[3] for r in rows]):7.4f}"
    )
    return mean


def steal_ticks() -> tuple[int, int]:
    """(steal, total) CPU ticks since boot, from /proc/stat (0, 0 where there is none)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of CPU time the hypervisor took from this machine between two readings."""
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total else 0.0


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """The training recipe's options (network, patches, schedule, budget, seed, precision)."""
    parser.add_argument(
        "--arch",
        default="residual_fast",
        help="default: residual_fast (see --arch-param), the net that trained best in 10 minutes",
    )
    parser.add_argument(
        "--arch-param",
        action="append",
        help="daeflow --arch-param; default for residual_fast: "
        + " ".join(RECIPE_ARCH_PARAMS["residual_fast"]),
    )
    parser.add_argument("--budget", default="570s", help="daeflow --time-budget (none: --epochs)")
    parser.add_argument("--epochs", type=int, default=1000, help="daeflow --epochs")
    parser.add_argument("--ema-momentum", type=float, default=0.0, help="daeflow --ema-momentum")
    # validation and checkpoints in under 2 % of the budget (BENCHMARKS.md, issue 28)
    parser.add_argument("--val-every", type=int, default=5, help="daeflow --val-every")
    parser.add_argument("--checkpoint-every", default="60s", help="daeflow --checkpoint-every")
    parser.add_argument("--patch-size", type=int, default=40)
    parser.add_argument("--patches-per-image", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--lr-warmup",
        type=float,
        default=0.1,
        help="daeflow --lr-warmup (of the budget)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument(
        "--precision",
        default="auto",
        help="daeflow --precision: auto picks mixed_bfloat16 on CPUs with amx_bf16/avx512_bf16",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_options(parser)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "quality")
    parser.add_argument("--run-id", help="skip training; score this run's model")
    parser.add_argument(
        "--self-ensemble",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score the 8-view self-ensemble (daeflow denoise --self-ensemble)",
    )
    parser.add_argument(
        "--sigma",
        default=f"{SIGMA:g}",
        help="training noise, 0-255 scale: a number, or LO:HI for one blind model (default 25)",
    )
    parser.add_argument(
        "--score-sigma",
        type=float,
        action="append",
        help="sigma to score Set12 at (repeat); default: the training sigma, 15 25 50 if blind",
    )
    args = parser.parse_args()
    blind = ":" in args.sigma
    sigmas = args.score_sigma or (list(BLIND_SCORES) if blind else [float(args.sigma)])

    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{args.out / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = store
    import mlflow

    command = None
    if args.run_id is None:
        clean_path = args.out / "train400.npy"
        np.save(clean_path, np.stack(load_pngs(DATA / "train400")))
        command = train_command(args, clean_path, store)
        print("$", shlex.join(command), flush=True)
        before = steal_ticks()
        subprocess.run(command, check=True, cwd=args.out)
        steal = steal_percent(before, steal_ticks())
        run = mlflow.search_runs(
            experiment_names=["quality-benchmark"],
            order_by=["start_time DESC"],
            max_results=1,
            output_format="list",
        )[0]
    else:
        run, steal = mlflow.get_run(args.run_id), None
    from daeflow.infer.ensemble import self_ensemble
    from daeflow.infer.loading import load_denoiser

    model = load_denoiser(f"runs:/{run.info.run_id}/model").model
    params = run.data.params
    means = {}
    for sigma in sigmas:
        print(
            f"\nSet12, Gaussian sigma {sigma:g}, run {run.info.run_id} ({params['arch']}, trained "
            f"on sigma {args.sigma if args.run_id is None else params.get('noise.sigma')}) in "
            f"{params.get('precision.policy', 'float32')} ({params.get('precision.reason', '')})"
        )
        rows, seconds = set12_scores(model, sigma=sigma)
        means[(sigma, "one pass")] = (print_table(rows), seconds)
        if args.self_ensemble:
            print("\nThe same model with --self-ensemble (mean of the 8 flips/rotations):")
            rows, ensemble_seconds = set12_scores(self_ensemble(model), sigma=sigma)
            means[(sigma, "self-ensemble")] = (print_table(rows), ensemble_seconds)
    from daeflow.track.names import epoch_metric
    from daeflow.track.names import value as metric

    metrics = {
        key: metric(run.data.metrics, key)
        for key in ("train_seconds", "train_images_per_second", "trainable_params")
    }
    epochs = len(mlflow.MlflowClient().get_metric_history(run.info.run_id, epoch_metric("loss")))
    print(
        f"\ntraining: {metrics['train_seconds']:.0f} s wall (validation included), "
        f"stop reason {run.data.tags.get('stop_reason')}, {epochs} epochs, "
        f"{metrics['train_images_per_second']:.0f} patches/s of {params.get('patch_size')} px, "
        f"{int(metrics['trainable_params'])} parameters"
        + (f", CPU steal {steal:.1f} %" if steal is not None else "")
    )
    for (sigma, label), (value, spent) in means.items():
        bm3d, dncnn = PUBLISHED.get(sigma, (None, None))
        versus = f"; published BM3D {bm3d}, DnCNN {dncnn}" if bm3d else ""
        print(f"sigma {sigma:g} {label}: Set12 mean {value:.2f} dB, {spent:.1f} s{versus}")
    print("commands:")
    print("  $", shlex.join([sys.executable, *sys.argv]))
    if command:
        print("  $", shlex.join(command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
