"""The training input pipeline alone, in patches (or images) per second, against the step rate
of residual_fast on the same machine.

Cases: fixed pairs in memory, fixed pairs memory-mapped from .npy files, and clean images with
synthetic Gaussian noise (sigma 25) drawn in the graph; each with 40x40 patches (8 per image,
flips and rotations) and with whole images. Data: train400 (400 grayscale 180x180 photos) from
../shared/data when present, else random images of that shape. Each figure is the median of
--repeats timings of --batches batches after one warm-up batch; the pipeline is drained by a
tf.data reduce, so no Python runs per batch.

    .venv/bin/python bench/pipeline.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
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


def rate(dataset, batches: int, repeats: int) -> float:
    """Median pieces per second over `repeats` drains of `batches` batches."""
    import tensorflow as tf

    next(iter(dataset))  # warm-up: tracing, thread pools
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = dataset.take(batches).reduce(
            np.int64(0), lambda total, pair: total + tf.cast(tf.shape(pair[0])[0], tf.int64)
        )
        rates.append(int(count) / (time.perf_counter() - start))
    return statistics.median(rates)


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
    model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def group_costs(source, patch: int, repeats: int, calls: int = 200) -> None:
    """Milliseconds per group of GROUP_IMAGES images for the steps of the pieces stage, each
    a tf.function called alone: where the pipeline's time goes."""
    import tensorflow as tf

    from daeflow.train.pipeline import GROUP_IMAGES, _patches, _pieces

    count = GROUP_IMAGES * repeats
    group = tf.range(GROUP_IMAGES, dtype=tf.int64)
    images = tf.constant(source.clean.array[:GROUP_IMAGES])
    seed = tf.constant([0, 1], tf.int64)
    pieces = _pieces(source, 0, patch, repeats, True)
    steps = {
        "read + crops + flips + noise (all)": lambda: pieces(tf.constant(0, tf.int64), 0, group),
        "crops + flips (one gather)": lambda: _patches(
            seed, [images], patch, repeats, source.image_shape, True
        ),
        "Gaussian noise draws": lambda: source.noise.graph_apply(
            tf.zeros([count, patch, patch, 1]), seed, source.noise_params, 255.0
        ),
    }
    print(f"\nper group of {GROUP_IMAGES} images ({count} patches), median of 3 x {calls} calls")
    for name, step in steps.items():
        function = tf.function(step)
        function()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(calls):
                function()
            times.append((time.perf_counter() - start) / calls)
        seconds = statistics.median(times)
        print(f"{name:<36} {seconds * 1e3:6.2f} ms  ({count / seconds:>9,.0f} patches/s alone)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=40)
    parser.add_argument("--patches-per-image", type=int, default=8)
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument(
        "--stages", action="store_true", help="also time each step of one group's pieces"
    )
    args = parser.parse_args()
    print_machine()

    from daeflow.backend import load_keras

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
        print(f"{'case':<28} {'patches':<26} {'pieces/s':>9}")
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
                pieces = rate(dataset, args.batches if patch else args.batches // 4, args.repeats)
                print(f"{name:<28} {what:<26} {pieces:>9,.0f}", flush=True)
                if patch and name.startswith("synthetic"):
                    best_patches = pieces
        if args.stages:
            synthetic = sources["synthetic Gaussian noise"]
            group_costs(synthetic, args.patch_size, args.patches_per_image)
    steps = training_rate(args.batch_size, args.patch_size, args.train_steps)
    print(
        f"\nresidual_fast training, float32, batch {args.batch_size}, "
        f"{args.patch_size}x{args.patch_size}: {steps:,.0f} patches/s"
    )
    print(f"pipeline (synthetic noise, patches) / training step rate: {best_patches / steps:.0f}x")


if __name__ == "__main__":
    main()
