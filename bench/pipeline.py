"""The training input pipeline alone, in patches (or images) per second, against the step rate
of residual_fast on the same machine.

Cases: fixed pairs in memory, fixed pairs memory-mapped from .npy files, and clean images with
synthetic Gaussian noise (sigma 25) drawn in the graph; each with 40x40 patches (8 per image,
flips and rotations) and with whole images. Data: train400 (400 grayscale 180x180 photos) from
../shared/data when present, else random images of that shape. Each figure is the median of
--repeats timings of --batches batches after one warm-up batch; the pipeline is drained by a
tf.data reduce, so no Python runs per batch. The CPU microseconds each piece cost (all
threads) are printed too: on a shared host they move less than the wall-time rate, and two
cores' worth of them bound the rate from above.

    .venv/bin/python bench/pipeline.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoints import print_machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRAIN400 = ROOT.parent / "shared" / "data" / "train400"


def train400() -> np.ndarray:
    """(400, 180, 180, 1) uint8: the photos if they are here, else random images."""
    files = sorted(TRAIN400.glob("*.png"))
    if files:
        from PIL import Image

        return np.stack([np.array(Image.open(f).convert("L")) for f in files])[..., None]
    print("train400 not found: random images of its shape")
    return np.random.default_rng(0).integers(0, 256, (400, 180, 180, 1), dtype=np.uint8)


def cpu_seconds() -> float:
    """CPU time this process has used, all threads: less sensitive than wall time to a
    shared host's load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rate(dataset, batches: int, repeats: int) -> tuple[float, float]:
    """Median pieces per second over `repeats` drains of `batches` batches, and the median
    CPU microseconds per piece."""
    import tensorflow as tf

    next(iter(dataset))  # warm-up: tracing, thread pools
    rates, costs = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), cpu_seconds()
        count = dataset.take(batches).reduce(
            np.int64(0), lambda total, pair: total + tf.cast(tf.shape(pair[0])[0], tf.int64)
        )
        rates.append(int(count) / (time.perf_counter() - start))
        costs.append((cpu_seconds() - cpu) / int(count) * 1e6)
    return statistics.median(rates), statistics.median(costs)


def training_rate(batch_size: int, patch: int, steps: int) -> float:
    """residual_fast training patches per second on fixed batches (the step rate alone)."""
    import keras
    import tensorflow as tf

    from daeflow.plugin.registry import get_architecture

    spec = get_architecture("residual_fast").spec
    model = spec.build((None, None, 1), spec.defaults)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    x = np.random.default_rng(0).uniform(0, 1, (batch_size, patch, patch, 1)).astype("float32")
    data = tf.data.Dataset.from_tensors((x, x)).repeat()
    model.fit(data, steps_per_epoch=5, epochs=1, verbose=0, shuffle=False)  # warm-up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * batch_size / (time.perf_counter() - start)


def chunk_costs(source, patch: int, calls: int = 200) -> None:
    """Milliseconds per chunk of CHUNK_PIECES patches for each step of the pipeline's
    parallel calls, each a tf.function called alone: where the pipeline's time goes."""
    import tensorflow as tf

    from daeflow.data.noise import standard_normal
    from daeflow.train.pipeline import CHUNK_PIECES, _patch_cutter

    count = CHUNK_PIECES
    images = [tf.constant(source.clean.array)]
    rng = np.random.default_rng(0)
    height, width = source.image_shape[:2]
    sources, tops, lefts, turns = (
        tf.constant(rng.integers(0, high, count), tf.int32)
        for high in (len(source.clean), height - patch + 1, width - patch + 1, 8)
    )
    starts = tf.stack([tops, lefts], axis=1)
    cut = _patch_cutter((patch, patch), (height, width), 8)
    plain_cut = _patch_cutter((patch, patch), (height, width), 8, compiled=False)
    shape = tf.constant([count, patch, patch, 1])
    seed = tf.constant([0, 1], tf.int64)
    steps = {
        "crops, flips, turns (XLA, used)": lambda: cut(images, sources, starts, turns),
        "the same without XLA": lambda: plain_cut(images, sources, starts, turns),
        "Gaussian noise (Box-Muller, used)": lambda: standard_normal(shape, seed),
        "tf.random.stateless_normal": lambda: tf.random.stateless_normal(shape, seed),
    }
    print(f"\nper chunk of {count} patches, median of 3 x {calls} calls")
    for name, step in steps.items():
        function = tf.function(step)
        function()
        times, costs = [], []
        for _ in range(3):
            start, cpu = time.perf_counter(), cpu_seconds()
            for _ in range(calls):
                function()
            times.append((time.perf_counter() - start) / calls)
            costs.append((cpu_seconds() - cpu) / calls)
        seconds, cost = statistics.median(times), statistics.median(costs)
        print(
            f"{name:<36} {seconds * 1e3:6.2f} ms, CPU {cost * 1e3:6.2f} ms "
            f"({count / seconds:>7,.0f} patches/s alone)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=40)
    parser.add_argument("--patches-per-image", type=int, default=8)
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument(
        "--stages", action="store_true", help="also time each step of one chunk's pieces"
    )
    args = parser.parse_args()
    print_machine()

    from daeflow.runtime.backend import load_keras

    load_keras()
    from daeflow.data.arrays import ImageArray, load_array
    from daeflow.data.pairs import PairSource
    from daeflow.plugin.registry import get_noise_model
    from daeflow.train.pipeline import training_dataset

    clean = train400()
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    gaussian = get_noise_model("gaussian").spec
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "clean.npy", clean)
        np.save(Path(tmp) / "noisy.npy", noisy)
        sources = {
            "fixed pairs, in memory": PairSource(
                ImageArray(clean, "clean"), ImageArray(noisy, "noisy"), 255.0
            ),
            "fixed pairs, memory-mapped": PairSource(
                load_array(Path(tmp) / "clean.npy", "clean"),
                load_array(Path(tmp) / "noisy.npy", "noisy"),
                255.0,
            ),
            "synthetic Gaussian noise": PairSource(
                ImageArray(clean, "clean"), None, 255.0, gaussian, {"sigma": 25.0}
            ),
        }
        indices = np.arange(len(clean))
        print(f"\nbatch {args.batch_size}; median of {args.repeats} x {args.batches} batches")
        print(f"{'case':<28} {'patches':<26} {'pieces/s':>9} {'CPU us/piece':>13}")
        best_patches = 0.0
        for name, source in sources.items():
            for patch in (args.patch_size, None):
                dataset = training_dataset(
                    source, indices, args.batch_size, 0, patch, True,
                    args.patches_per_image, 0, 10_000,
                )  # fmt: skip
                what = (
                    f"{patch}x{patch}, {args.patches_per_image}/image, flips"
                    if patch
                    else "whole 180x180, flips"
                )
                batches = args.batches if patch else args.batches // 4
                pieces, cost = rate(dataset, batches, args.repeats)
                print(f"{name:<28} {what:<26} {pieces:>9,.0f} {cost:>13,.1f}", flush=True)
                if patch and name.startswith("synthetic"):
                    best_patches = pieces
        if args.stages:
            synthetic = sources["synthetic Gaussian noise"]
            chunk_costs(synthetic, args.patch_size)
    steps = training_rate(args.batch_size, args.patch_size, args.train_steps)
    print(
        f"\nresidual_fast training, float32, batch {args.batch_size}, "
        f"{args.patch_size}x{args.patch_size}: {steps:,.0f} patches/s"
    )
    print(f"pipeline (synthetic noise, patches) / training step rate: {best_patches / steps:.0f}x")


if __name__ == "__main__":
    main()
