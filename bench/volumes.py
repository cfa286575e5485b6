"""Volumes benchmark (issue 29): a 3D model against a 2D model on the planes, same budget.

Synthetic volumes with structure at several scales: a smooth background (Gaussian-filtered
random fields at three scales) and thin bright filaments (random walks in 3D, slightly
blurred), as fluorescence microscopy shows them. Poisson-Gaussian noise, as a camera makes
it: PEAK photons at full signal, read noise READ photons, stored as uint16 counts
OFFSET + GAIN * photons, the way instruments write them. Training and test volumes come
from different seeds; the noisy training volumes are drawn once (the realistic case).

Both models train with the same network family, width, schedule and --budget on the same
TIFF stacks (axes SZYX): the 3D model on 3D patches, the 2D one with --slices on 2D patches
of the Z planes. Both then denoise the same held-out test volumes through `daeflow denoise`
(the 3D model from an SZYX TIFF, the 2D one from the same planes as an SYX TIFF); the scores
are computed here, per volume, against the clean volumes, then averaged: PSNR over all
voxels of a volume with the data range --data-range (the same for both), SSIM as the mean
of the SSIM of the volume's Z planes (scikit-image, same data range).

Then the peak memory (maximum resident set size of the process, /usr/bin/time) of
`daeflow denoise` on one --big volume (default 512x2048x2048 uint16: 4 GiB) from a TIFF
file and from a Zarr store, with a small 3D model trained for a few seconds (--big-arch):
the point is that memory stays bounded by the tiles in flight, not by the volume.

    .venv/bin/python bench/volumes.py --budget 300s --markdown bench/out/volumes.md
    .venv/bin/python bench/volumes.py --budget 60s --big 64x512x512   # a quick check
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import argparse
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoints import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DAEFLOW = str(ROOT / ".venv" / "bin" / "daeflow")
EXPERIMENT = "volumes-benchmark"
PEAK, READ, GAIN, OFFSET = 30.0, 2.0, 20.0, 100.0  # photons at full signal; camera counts
DATA_RANGE = 2000.0  # counts: above every value the noise makes (OFFSET + GAIN * ~70)


def shape_of(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"give a shape ZxYxX, e.g. 32x128x128; got {text!r}")
    return tuple(parts)


def synthetic_volume(rng: np.random.Generator, shape, filaments: int = 12) -> np.ndarray:
    """A clean float32 volume in [0, 1]: smooth background at three scales plus filaments."""
    from scipy.ndimage import gaussian_filter

    field = np.zeros(shape, np.float32)
    for sigma, weight in ((1.5, 0.3), (4.0, 0.5), (10.0, 0.8)):
        smooth = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
        field += weight * smooth / (smooth.std() + 1e-8)
    background = np.clip(0.25 + 0.08 * field, 0, None)
    lines = np.zeros(shape, np.float32)
    bounds = np.array(shape) - 1
    for _ in range(filaments):
        point = rng.uniform(0, bounds)
        direction = rng.standard_normal(3)
        for _ in range(int(2 * max(shape))):
            direction += 0.3 * rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            point = np.clip(point + direction, 0, bounds)
            lines[tuple(np.rint(point).astype(int))] = 1.0
    lines = gaussian_filter(lines, 0.7)
    lines *= 0.7 / max(float(lines.max()), 1e-8)
    return np.clip(background + lines, 0, 1).astype(np.float32)


def counts(clean: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """uint16 camera counts of a clean volume: exact (rng None) or Poisson-Gaussian noisy."""
    photons = PEAK * clean
    if rng is not None:
        photons = rng.poisson(photons).astype(np.float32) + rng.normal(0, READ, clean.shape)
    return np.clip(np.rint(OFFSET + GAIN * photons), 0, 65535).astype(np.uint16)


def make_data(out: Path, n_train: int, n_test: int, shape, seed: int) -> dict:
    """The training and test TIFF stacks (SZYX; the test planes also as SYX)."""
    import tifffile

    paths = {}
    for role, n, offset in (("train", n_train, 0), ("test", n_test, 1000)):
        clean = np.stack(
            [synthetic_volume(np.random.default_rng([seed, offset + i]), shape) for i in range(n)]
        )
        noise = np.random.default_rng([seed, offset, 7])
        for kind, volume in (("clean", counts(clean, None)), ("noisy", counts(clean, noise))):
            path = out / f"{role}_{kind}.tif"
            tifffile.imwrite(path, volume, metadata={"axes": "QQYX"})  # no axes in the file
            paths[role, kind] = path
            if role == "test":
                planes = out / f"{role}_{kind}_planes.tif"
                tifffile.imwrite(planes, volume.reshape(-1, *shape[1:]), metadata={"axes": "QYX"})
                paths[role, kind, "planes"] = planes
    return paths


def data_paths(out: Path) -> dict:
    """The paths make_data writes (for --runs, which makes none)."""
    paths = {}
    for role in ("train", "test"):
        for kind in ("clean", "noisy"):
            paths[role, kind] = out / f"{role}_{kind}.tif"
    for kind in ("clean", "noisy"):
        paths["test", kind, "planes"] = out / f"test_{kind}_planes.tif"
    return paths


def run_command(args, paths, store: str, three_d: bool) -> list[str]:
    patch = args.patch_3d if three_d else str(args.patch_2d)
    command = [
        DAEFLOW, "run", "--arch", args.arch,
        "--clean", str(paths["train", "clean"]), "--noisy", str(paths["train", "noisy"]),
        "--axes", "SZYX", "--data-range", f"{DATA_RANGE:g}",
        "--patch-size", patch, "--patches-per-image", str(args.patches_per_volume
                                                          if three_d else 4),
        "--augment", "--batch-size", str(args.batch_3d if three_d else args.batch_2d),
        "--learning-rate", str(args.learning_rate), "--lr-schedule", "cosine",
        "--time-budget", args.budget, "--epochs", "1000",
        "--val-fraction", "0.125", "--test-fraction", "0.125",
        "--seed", str(args.seed), "--experiment", EXPERIMENT, "--tracking-uri", store,
        "--precision", args.precision,
        "--run-name", f"{args.arch}-{'3d' if three_d else '2d-slices'}",
    ]  # fmt: skip
    if not three_d:
        command.append("--slices")
    for pair in args.arch_param:
        command += ["--arch-param", pair]
    return command


def latest_run(store: str):
    import mlflow

    mlflow.set_tracking_uri(store)
    return mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        order_by=["start_time DESC"],
        max_results=1,
        output_format="list",
    )[0]


def timed(command: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak resident memory (bytes) of a command, from /usr/bin/time."""
    report = cwd / "time.txt"
    start = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-o", str(report), "-f", "%M", *command], check=True, cwd=cwd)
    return time.perf_counter() - start, int(report.read_text().split()[-1]) * 1024


def scores(denoised: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """Mean over volumes of PSNR (all voxels) and of SSIM (mean over Z planes)."""
    from skimage.metrics import structural_similarity

    psnrs, ssims = [], []
    for out, ref in zip(denoised.astype(np.float64), clean.astype(np.float64), strict=True):
        mse = float(np.mean((out - ref) ** 2))
        psnrs.append(10 * math.log10(DATA_RANGE**2 / max(mse, 1e-12)))
        planes = zip(out, ref, strict=True)
        ssims.append(
            np.mean([structural_similarity(o, r, data_range=DATA_RANGE) for o, r in planes])
        )
    return float(np.mean(psnrs)), float(np.mean(ssims))


def evaluate(args, paths, run, three_d: bool) -> dict:
    import tifffile

    key = ("test", "noisy") if three_d else ("test", "noisy", "planes")
    output = args.out / f"denoised_{'3d' if three_d else '2d'}.tif"
    command = [
        DAEFLOW, "denoise", str(paths[key]), "--output", str(output),
        "--model", f"runs:/{run.info.run_id}/model", "--axes", "SZYX" if three_d else "SYX",
        "--data-range", f"{DATA_RANGE:g}", "--tracking-uri", args.store,
    ]  # fmt: skip
    print("$", shlex.join(command), flush=True)
    seconds, peak = timed(command, args.out)
    clean = tifffile.imread(paths["test", "clean"])
    denoised = tifffile.imread(output).reshape(clean.shape)
    psnr, ssim = scores(denoised, clean)
    import mlflow

    from daeflow.track.names import epoch_metric
    from daeflow.track.names import value as metric

    patch = [int(p) for p in run.data.params.get("patch_size", "0").split("x")]
    per_patch = math.prod(patch) if len(patch) > 1 else patch[0] ** 2
    rate = metric(run.data.metrics, "train_images_per_second")
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, epoch_metric("loss"))
    return {
        "model": f"{run.data.params['arch']} {'3D' if three_d else '2D on Z planes (--slices)'}",
        "psnr": psnr,
        "ssim": ssim,
        "epochs": len(history),
        "train_voxels_per_s": rate * per_patch if rate else float("nan"),
        "denoise_voxels_per_s": clean.size / seconds,
        "params": int(metric(run.data.metrics, "trainable_params") or 0),
        "run": run.info.run_id,
    }


def make_big(out: Path, shape) -> dict:
    """The --big volume as an uncompressed TIFF and as a Zarr store, written plane by plane."""
    import tifffile
    import zarr

    rng = np.random.default_rng(5)
    tile = counts(synthetic_volume(rng, (8, 256, 256), filaments=4), rng)
    tif, store = out / "big.tif", out / "big.zarr"
    volume = tifffile.memmap(tif, shape=shape, dtype=np.uint16, metadata={"axes": "ZYX"})
    chunks = (min(32, shape[0]), min(256, shape[1]), min(256, shape[2]))
    array = zarr.create_array(store, shape=shape, chunks=chunks, dtype=np.uint16, overwrite=True)
    reps = (1, -(-shape[1] // 256), -(-shape[2] // 256))
    for z in range(0, shape[0], chunks[0]):
        planes = np.tile(tile[np.arange(z, z + chunks[0]) % 8], reps)[:, : shape[1], : shape[2]]
        planes = planes[: shape[0] - z]
        volume[z : z + len(planes)] = planes
        array[z : z + len(planes)] = planes
    volume.flush()
    del volume
    return {"tiff": tif, "zarr": store}


def big_denoise(args, paths, small_run) -> list[dict]:
    big = make_big(args.out, args.big)
    rows = []
    for kind, path in big.items():
        output = args.out / ("big_out.tif" if kind == "tiff" else "big_out.zarr")
        command = [
            DAEFLOW, "denoise", str(path), "--output", str(output), "--axes", "ZYX",
            "--model", f"runs:/{small_run.info.run_id}/model", "--tracking-uri", args.store,
            "--data-range", f"{DATA_RANGE:g}",
        ]  # fmt: skip
        print("$", shlex.join(command), flush=True)
        seconds, peak = timed(command, args.out)
        rows.append({"format": kind, "seconds": seconds, "peak": peak, "command": command})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="300s", help="training time of each model")
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--arch-param", action="append", default=None)
    parser.add_argument("--shape", type=shape_of, default=(32, 128, 128), help="of each volume")
    parser.add_argument("--train-volumes", type=int, default=16)
    parser.add_argument("--test-volumes", type=int, default=4)
    parser.add_argument("--patch-3d", default="16x64x64")
    parser.add_argument("--patch-2d", type=int, default=64)
    parser.add_argument("--patches-per-volume", type=int, default=16)
    parser.add_argument("--batch-3d", type=int, default=4)
    parser.add_argument("--batch-2d", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big", default="512x2048x2048", help="ZxYxX, or 'none'")
    parser.add_argument("--big-arch", default="conv_baseline")
    parser.add_argument("--big-arch-param", action="append", default=["filters=8"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "volumes")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument(
        "--runs",
        help="RUN_3D,RUN_2D: score these runs of an earlier call (same --out) again, "
        "training nothing (e.g. after a change to inference)",
    )
    args = parser.parse_args()
    if args.arch_param is None:
        args.arch_param = ["width=16"] if args.arch == "unet" else []
    args.big = None if args.big == "none" else shape_of(args.big)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.store = f"sqlite:///{args.out / 'mlflow.db'}"
    print(f"CPU: {cpu_model()}", flush=True)
    if args.runs:
        paths = data_paths(args.out)
        import mlflow

        mlflow.set_tracking_uri(args.store)
        given = [mlflow.get_run(run_id) for run_id in args.runs.split(",")]
    else:
        paths = make_data(args.out, args.train_volumes, args.test_volumes, args.shape, args.seed)
    results, commands = [], []
    for number, three_d in enumerate((True, False)):
        command = run_command(args, paths, args.store, three_d)
        commands.append(command)
        if not args.runs:
            print("$", shlex.join(command), flush=True)
            subprocess.run(command, check=True, cwd=args.out)
        run = given[number] if args.runs else latest_run(args.store)
        results.append(evaluate(args, paths, run, three_d))
    import tifffile

    clean = tifffile.imread(paths["test", "clean"])
    noisy_psnr, noisy_ssim = scores(tifffile.imread(paths["test", "noisy"]), clean)
    lines = [
        f"CPU: {cpu_model()}; {args.train_volumes} training volumes and {args.test_volumes} "
        f"test volumes of {'x'.join(map(str, args.shape))} voxels, Poisson-Gaussian noise "
        f"(peak {PEAK:g} photons, read noise {READ:g}), uint16 counts, data range "
        f"{DATA_RANGE:g}; each model trained for {args.budget}.",
        "",
        "| model | PSNR (dB) | SSIM (mean of Z planes) | epochs | training voxels/s "
        "| denoise voxels/s | parameters |",
        "|---|---|---|---|---|---|---|",
        f"| noisy input | {noisy_psnr:.2f} | {noisy_ssim:.3f} | | | | |",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['epochs']} | "
            f"{r['train_voxels_per_s']:,.0f} | {r['denoise_voxels_per_s']:,.0f} | "
            f"{r['params']:,} |"
        )
    if args.big is not None:
        small = [
            DAEFLOW, "run", "--arch", args.big_arch, "--clean", str(paths["train", "clean"]),
            "--noisy", str(paths["train", "noisy"]), "--axes", "SZYX",
            "--data-range", f"{DATA_RANGE:g}", "--patch-size", "16x32x32", "--epochs", "1",
            "--experiment", EXPERIMENT, "--tracking-uri", args.store, "--run-name", "big-model",
            *(f"--arch-param={pair}" for pair in args.big_arch_param),
        ]  # fmt: skip
        print("$", shlex.join(small), flush=True)
        subprocess.run(small, check=True, cwd=args.out)
        big_run = latest_run(args.store)
        voxels = math.prod(args.big)
        lines += [
            "",
            f"`daeflow denoise` of one {'x'.join(map(str, args.big))} uint16 volume "
            f"({voxels * 2 / 2**30:.1f} GiB), {args.big_arch} 3D model:",
            "",
            "| from | peak memory (RSS) | seconds | voxels/s |",
            "|---|---|---|---|",
        ]
        for row in big_denoise(args, paths, big_run):
            lines.append(
                f"| {row['format']} | {row['peak'] / 2**30:.2f} GiB | {row['seconds']:.0f} | "
                f"{voxels / row['seconds']:,.0f} |"
            )
            commands.append(row["command"])
    lines += ["", "Commands:", "", *(f"    {shlex.join(c)}" for c in commands)]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
