"""Throughput and peak memory of `daeflow denoise` on large uint16 images.

    .venv/bin/python bench/denoise_speed.py --sizes 4096 8192

Trains a `residual` model on 64x64 patches of synthetic uint16 data (one short run through
`daeflow run`), then denoises one SIZE x SIZE uint16 image per size with `daeflow denoise`
in a fresh process under /usr/bin/time -v, and prints megapixels/s and peak memory.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DAEFLOW = str(ROOT / ".venv" / "bin" / "daeflow")


def train_model(folder: Path, arch: str) -> str:
    """A model trained on 64x64 patches of uint16 data; returns its runs:/ URI."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    clean = np.stack(
        [
            (0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(1, 4) * xx + rng.uniform(1, 4) * yy)))
            for _ in range(64)
        ]
    )
    np.save(folder / "clean.npy", np.rint(clean * 65535).astype(np.uint16))
    store = f"sqlite:///{folder / 'mlflow.db'}"
    command = [
        DAEFLOW,
        "run",
        "--arch",
        arch,
        "--clean",
        str(folder / "clean.npy"),
        "--noise",
        "gaussian",
        "--noise-param",
        "sigma=3000",
        "--patch-size",
        "64",
        "--patches-per-image",
        "4",
        "--epochs",
        "2",
        "--tracking-uri",
        store,
    ]
    print("$", shlex.join(command), flush=True)
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=folder)
    run_id = re.search(r"MLflow run (\w+)", output.stdout).group(1)
    return f"runs:/{run_id}/model", store


def denoise(folder: Path, size: int, model: str, store: str, precision: str) -> None:
    image = np.random.default_rng(1).integers(0, 65535, (size, size), dtype=np.uint16)
    source, target = folder / f"in{size}.npy", folder / f"out{size}.npy"
    np.save(source, image)
    del image
    command = [
        DAEFLOW,
        "denoise",
        str(source),
        "-o",
        str(target),
        "--model",
        model,
        "--tracking-uri",
        store,
        "--precision",
        precision,
    ]
    print("$", shlex.join(command), flush=True)
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=folder
    )
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    out = np.load(target, mmap_mode="r")
    print(done.stdout.strip())
    print(
        f"{size}x{size} uint16 -> {out.dtype} {out.shape}: peak memory {peak_kib / 1024:.0f} MiB "
        f"(input {size * size * 2 / 2**20:.0f} MiB)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--arch", default="residual")
    parser.add_argument(
        "--precision", nargs="+", default=["float32", "auto"], help="denoise --precision, each"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, store = train_model(folder, args.arch)
        for size in args.sizes:
            for precision in args.precision:
                denoise(folder, size, model, store, precision)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
