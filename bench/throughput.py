"""Training throughput of daeflow's trainer against a plain Keras `model.fit` on the same arrays.

Both paths train the same architecture (built by the same registered builder, same seed),
with Adam and MSE, on the same uint8 images scaled to [0, 1], with the same batch size, in
the same process, back to back, in alternating order. Epoch 1 (--warmup-epochs) is warm-up
(tracing, XLA compilation, pipeline start-up) and is not timed; epochs 2..E are.

What is timed, for both paths: each epoch from `on_epoch_begin` to the moment Keras starts
calling that epoch's `on_epoch_end` callbacks, i.e. every training step of the epoch, the
input pipeline feeding it and Keras's end-of-epoch metric read-out. daeflow then validates
(PSNR/SSIM on the validation subset) and copies the best weights inside `on_epoch_end`;
plain `fit` does neither, so that work is reported separately and not counted as training.

    .venv/bin/python bench/throughput.py --images 2048 --size 64 --epochs 3 --jit-compile both
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse
import contextlib
import gc
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

JIT_SETTINGS = {"on": True, "off": False, "auto": None}


@dataclass
class Timing:
    """Timed epochs of one training run."""

    path: str
    jit: str
    repeat: int
    images: int
    epoch_seconds: list[float]
    extra_seconds: list[float] = field(default_factory=list)
    reported: float | None = None
    precision: str = "float32"

    @property
    def images_per_second(self) -> float:
        return self.images * len(self.epoch_seconds) / sum(self.epoch_seconds)

    @property
    def with_extras_per_second(self) -> float:
        total = sum(self.epoch_seconds) + sum(self.extra_seconds)
        return self.images * len(self.epoch_seconds) / total


def make_pairs(n: int, size: int, channels: int, sigma: float, seed: int):
    """Smooth random uint8 images and a Gaussian-noisy copy, clipped to 0..255."""
    rng = np.random.default_rng(seed)
    coarse = max(1, size // 8)
    low = rng.uniform(0, 255, (n, coarse, coarse, channels)).astype(np.float32)
    clean = np.repeat(np.repeat(low, -(-size // coarse), axis=1), -(-size // coarse), axis=2)
    clean = clean[:, :size, :size, :]
    noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
    return (
        np.clip(clean, 0, 255).round().astype(np.uint8),
        np.clip(noisy, 0, 255).round().astype(np.uint8),
    )


def epoch_timer():
    """A callback keeping the perf_counter time of every epoch's begin and end."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        # Only epoch hooks: a batch hook would switch off Keras's asynchronous batch
        # callbacks and add a host sync per step to both paths.
        def __init__(self):
            super().__init__()
            self.begins, self.ends = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.begins.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter())

    return EpochTimer()


@contextlib.contextmanager
def validation_starts():
    """Record when daeflow's Validator begins each epoch's validation.

    The Validator is the first of daeflow's epoch-end callbacks, so its start is the
    moment training of the epoch ended. The library is not changed: the method is
    wrapped for the duration of the block and restored after.
    """
    from daeflow.train import callbacks

    original = callbacks.Validator.on_epoch_end
    starts: list[float] = []

    def recording(self, epoch, logs=None):
        starts.append(time.perf_counter())
        return original(self, epoch, logs)

    callbacks.Validator.on_epoch_end = recording
    try:
        yield starts
    finally:
        callbacks.Validator.on_epoch_end = original


def architecture(name: str):
    """The registered architecture and its default hyperparameters, as `daeflow run` has them."""
    from daeflow.plugin.registry import get_architecture

    provided = get_architecture(name)
    return provided, dict(provided.spec.defaults)


def run_daeflow(clean, noisy, args, jit: str, repeat: int, precision: str) -> Timing:
    """daeflow's library path for training: registry, build_checked, PairSource, trainer.fit."""
    import keras

    from daeflow.config import TrainOptions
    from daeflow.data.arrays import ImageArray
    from daeflow.data.pairs import PairSource
    from daeflow.data.prepare import Subset
    from daeflow.plugin import building
    from daeflow.train import trainer

    provided, params = architecture(args.arch)
    source = PairSource(ImageArray(clean, "clean"), ImageArray(noisy, "noisy"), 255.0)
    train = Subset(source, np.arange(len(clean)))
    val = Subset(source, np.arange(min(len(clean), args.val_images)))
    keras.utils.set_random_seed(args.seed)
    probe = building.probe_size(source.image_shape, provided.spec.size_multiple)
    model = building.build_checked(provided, params, clean.shape[-1], probe, precision)
    options = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        jit_compile=JIT_SETTINGS[jit],
        seed=args.seed,
        precision=precision,
    )
    timer = epoch_timer()
    with validation_starts() as starts:
        result = trainer.fit(model, train, val, options, [timer], write=None)
    if len(starts) != len(timer.begins) or not all(
        b <= s <= e for b, s, e in zip(timer.begins, starts, timer.ends, strict=True)
    ):
        raise RuntimeError("Validator start times do not fall inside the epochs; check trainer.")
    timed = range(args.warmup_epochs, args.epochs)
    return Timing(
        "daeflow",
        jit,
        repeat,
        len(train),
        [starts[i] - timer.begins[i] for i in timed],
        [timer.ends[i] - starts[i] for i in timed],
        result.images_per_second,
        precision,
    )


def run_plain(x, y, args, jit: str, repeat: int, precision: str) -> Timing:
    """model.fit(x, y, batch_size=B, epochs=E, shuffle=True) on the float32 arrays; a mixed
    precision as Keras's guide sets it: the global dtype policy while the model is built."""
    import keras

    provided, params = architecture(args.arch)
    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(precision)
    try:
        model = provided.spec.build((None, None, x.shape[-1]), dict(params))
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="mse",
        jit_compile="auto" if JIT_SETTINGS[jit] is None else JIT_SETTINGS[jit],
    )
    timer = epoch_timer()
    model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer],
    )
    timed = range(args.warmup_epochs, args.epochs)
    epochs = [timer.ends[i] - timer.begins[i] for i in timed]
    return Timing("plain", jit, repeat, len(x), epochs, precision=precision)


def fresh_session() -> None:
    import keras

    keras.backend.clear_session()
    gc.collect()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="conv_baseline", help="Registered architecture name.")
    parser.add_argument("--images", type=int, default=2048, help="Training images per epoch.")
    parser.add_argument("--size", type=int, default=64, help="Image height and width.")
    parser.add_argument("--channels", type=int, default=1, help="Image channels.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="Epochs per training run.")
    parser.add_argument(
        "--warmup-epochs",
        type=int,
        default=1,
        help="Leading epochs not timed (tracing, XLA compilation, pipeline start-up).",
    )
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each path; median.")
    parser.add_argument(
        "--jit-compile",
        choices=("on", "off", "both", "auto"),
        default="both",
        help="XLA for both paths; 'auto' is Keras's choice, daeflow's default (off on CPU).",
    )
    parser.add_argument(
        "--val-images",
        type=int,
        default=64,
        help="Images daeflow validates on each epoch (not timed as training).",
    )
    parser.add_argument(
        "--precision",
        default="float32",
        help="Comma-separated Keras dtype policies: float32, mixed_bfloat16, mixed_float16.",
    )
    parser.add_argument("--sigma", type=float, default=25.0, help="Noise sigma on 0..255.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.warmup_epochs < 0 or args.epochs <= args.warmup_epochs:
        parser.error("--epochs must exceed --warmup-epochs (>= 0): warm-up epochs are not timed.")
    for name in ("images", "size", "channels", "batch_size", "repeats", "val_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1.")
    return args


def environment() -> str:
    import keras
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return (
        f"python {platform.python_version()}, tensorflow {tf.__version__}, keras "
        f"{keras.__version__}, {os.cpu_count()} CPUs, GPUs: {', '.join(gpus) or 'none'}"
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    command = shlex.join(sys.orig_argv)
    jits = ("off", "on") if args.jit_compile == "both" else (args.jit_compile,)

    from daeflow.errors import DaeflowError

    try:
        provided, params = architecture(args.arch)
    except DaeflowError as exc:
        sys.exit(str(exc))
    multiple = provided.spec.size_multiple
    if args.size % multiple:
        sys.exit(f"--size must be a multiple of {multiple} for {args.arch!r}: {args.size}")

    clean, noisy = make_pairs(args.images, args.size, args.channels, args.sigma, args.seed)
    x = noisy.astype(np.float32) / 255.0
    y = clean.astype(np.float32) / 255.0

    timings: list[Timing] = []
    precisions = args.precision.split(",")
    for jit, precision in [(j, p) for j in jits for p in precisions]:
        for repeat in range(args.repeats):
            order = ("daeflow", "plain") if repeat % 2 == 0 else ("plain", "daeflow")
            for path in order:
                fresh_session()
                start = time.perf_counter()
                if path == "daeflow":
                    timing = run_daeflow(clean, noisy, args, jit, repeat, precision)
                else:
                    timing = run_plain(x, y, args, jit, repeat, precision)
                timings.append(timing)
                epochs = " ".join(f"{e:.2f}" for e in timing.epoch_seconds)
                print(
                    f"  jit {jit:<4} {precision:<14} repeat {repeat + 1}/{args.repeats} {path:<7} "
                    f"{timing.images_per_second:9.1f} images/s  timed epochs [s]: {epochs}  "
                    f"(whole run {time.perf_counter() - start:.1f}s)",
                    flush=True,
                )

    report(args, command, params, jits, precisions, timings)


def report(args, command: str, params: dict, jits, precisions, timings: list[Timing]) -> None:
    def pick(path, jit, precision):
        return [t for t in timings if (t.path, t.jit, t.precision) == (path, jit, precision)]

    timed_epochs = args.epochs - args.warmup_epochs
    lines = [
        "",
        "=== bench/throughput.py: training throughput, daeflow trainer vs plain keras fit ===",
        f"command: {command}",
        f"cwd: {os.getcwd()}",
        f"env: {environment()}",
        f"arch: {args.arch} {params}, built with input (None, None, {args.channels}) by the "
        "registered builder for both paths; Adam lr 1e-3, MSE, seed "
        f"{args.seed}",
        f"data: {args.images} uint8 images {args.size}x{args.size}x{args.channels} (noise sigma "
        f"{args.sigma:g}), scaled to float32 [0, 1]; batch {args.batch_size}; "
        f"{args.epochs} epochs: first {args.warmup_epochs} warm-up (not timed), last "
        f"{timed_epochs} timed",
        "plain: model.fit(x, y, batch_size, epochs, shuffle=True) on in-memory float32 arrays",
        "daeflow: trainer.fit(model, Subset(PairSource(ImageArray uint8 clean/noisy, 255)), "
        f"val {min(args.images, args.val_images)} images, TrainOptions, write=None) - "
        "tf.data over uint8 arrays, scaled per batch",
        "timed: per epoch, on_epoch_begin -> start of the epoch's on_epoch_end callbacks "
        "(all steps + input pipeline + Keras metric read-out); daeflow's validation and "
        "best-weights copy (in on_epoch_end) are shown apart as 'extras', not as training; "
        "`daeflow run` also logs each epoch to MLflow and prints a line there (not included)",
        "self-reported: TrainResult.images_per_second (logged as train_images_per_second): "
        "all epochs incl. epoch 1, fit time minus Validator time",
        f"repeats: {args.repeats}, alternating order; figures are medians over repeats",
        "",
        f"{'jit':<5} {'precision':<15} {'plain img/s':>12} {'daeflow img/s':>14} {'ratio d/p':>10} "
        f"{'daeflow incl. extras':>21} {'extras s/epoch':>15} {'self-reported':>14}  "
        "per-repeat ratios",
    ]
    for jit, precision in [(j, p) for j in jits for p in precisions]:
        plain, ours = pick("plain", jit, precision), pick("daeflow", jit, precision)
        p = statistics.median(t.images_per_second for t in plain)
        d = statistics.median(t.images_per_second for t in ours)
        incl = statistics.median(t.with_extras_per_second for t in ours)
        extras = statistics.median(
            sum(t.extra_seconds) / len(t.extra_seconds) for t in ours if t.extra_seconds
        )
        reported = statistics.median(t.reported for t in ours)
        ratios = " ".join(
            f"{a.images_per_second / b.images_per_second:.3f}"
            for a, b in zip(ours, plain, strict=True)
        )
        lines.append(
            f"{jit:<5} {precision:<15} {p:>12.1f} {d:>14.1f} {d / p:>10.3f} {incl:>21.1f} "
            f"{extras:>15.3f} {reported:>14.1f}  {ratios}"
        )
    lines.append("ratio d/p = median daeflow images/s / median plain images/s (1.0 = parity).")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
