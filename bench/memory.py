"""Peak resident memory of `daeflow run` against the plain in-memory recipe on the same data.

    .venv/bin/python bench/memory.py make-data --out /tmp/daeflow-mem --gigabytes 2
    .venv/bin/python bench/memory.py measure --data /tmp/daeflow-mem

Few huge images (three 10000x10000 uint8 pairs, 600 MB), trained on patches:

    .venv/bin/python bench/memory.py make-data --out /tmp/daeflow-huge --size 10000 \
        --max-images 3 --gigabytes 1
    .venv/bin/python bench/memory.py measure --data /tmp/daeflow-huge --only daeflow \
        --patch-size 64 --batch-size 32

`make-data` writes clean.npy and noisy.npy (uint8, noisy = clean + Gaussian noise, clipped)
16 MiB of images at a time (header by open_memmap, data by positioned writes), so writing
never holds the dataset in memory.
`measure` runs each side in its own process under `/usr/bin/time -v` and reports the
"Maximum resident set size" of each.
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import argparse
import math
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GNU_TIME = "/usr/bin/time"
GIB = 2**30
MIB = 2**20
CHUNK_BYTES = 16 * MIB
# The plain recipe's peak was about 1.5 GiB + 13.4 x the uint8 data on disk when measured
# at 0.05 and 0.25 GiB (uint8 copies, float32 x/y, four split copies, Keras's tensors of them).
PLAIN_BASE, PLAIN_FACTOR = 1.5 * GIB, 13.4

# Runs a command and prints the peak RSS of the largest child it waited for, in KiB.
RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "if code < 0:\n"
    "    print('Command terminated by signal', -code, file=sys.stderr)\n"
    "print('Maximum resident set size (kbytes):', "
    "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(128 - code if code < 0 else code)\n"
)


def make_data(args) -> None:
    """Write clean.npy and noisy.npy of at least --gigabytes GiB together."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shape = (args.size, args.size, args.channels)
    image_bytes = int(np.prod(shape))
    n = math.ceil(args.gigabytes * GIB / (2 * image_bytes))
    if args.max_images:
        n = min(n, args.max_images)
    paths = [out / "clean.npy", out / "noisy.npy"]
    offsets = []
    for path in paths:
        # open_memmap writes the header and sizes the file; the data goes in by plain writes
        # so that written pages do not stay mapped and counted in this process's memory.
        array = np.lib.format.open_memmap(path, "w+", np.uint8, (n, *shape))
        offsets.append(array.offset)
        del array
    rng = np.random.default_rng(args.seed)
    step = max(1, CHUNK_BYTES // image_bytes)
    start = time.perf_counter()
    with open(paths[0], "r+b") as clean, open(paths[1], "r+b") as noisy:
        for first in range(0, n, step):
            count = min(step, n - first)
            pair = _pairs(rng, count, args.size, args.channels, args.sigma)
            for f, offset, images in zip((clean, noisy), offsets, pair, strict=True):
                f.seek(offset + first * image_bytes)
                f.write(images.tobytes())
    total = sum((out / f).stat().st_size for f in ("clean.npy", "noisy.npy"))
    print(
        f"Wrote {n} pairs of {args.size}x{args.size}x{args.channels} uint8 images "
        f"(noise sigma {args.sigma:g}) to {out}: {total / GIB:.3f} GiB "
        f"({total / 1e9:.3f} GB) in {time.perf_counter() - start:.1f}s.\n"
        f"command: {shlex.join(sys.orig_argv)}"
    )


def _pairs(rng, n: int, size: int, channels: int, sigma: float):
    """Smooth random uint8 images and a Gaussian-noisy copy."""
    coarse = max(1, size // 8)
    low = rng.uniform(0, 255, (n, coarse, coarse, channels)).astype(np.float32)
    reps = -(-size // coarse)
    clean = np.repeat(np.repeat(low, reps, axis=1), reps, axis=2)[:, :size, :size, :]
    noisy = clean + sigma * rng.standard_normal(clean.shape, dtype=np.float32)
    return clean.round().astype(np.uint8), np.clip(noisy, 0, 255).round().astype(np.uint8)


def _peak_kib(text: str) -> int | None:
    match = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", text)
    return int(match.group(1)) if match else None


def _available_bytes() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"MemAvailable:\s*(\d+) kB", text)
    return int(match.group(1)) * 1024 if match else None


def measure_one(name: str, command: list[str], cwd: Path, env: dict) -> dict:
    """Run `command` in its own process and return its peak RSS, wall time and exit code."""
    report = cwd / f"{name}.time.txt"
    report.unlink(missing_ok=True)
    if Path(GNU_TIME).exists():
        wrapped = [GNU_TIME, "-v", "-o", str(report), *command]
    else:
        wrapped = [sys.executable, "-c", RUSAGE_WRAPPER, *command]
    start = time.perf_counter()
    done = subprocess.run(wrapped, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (cwd / f"{name}.stdout.txt").write_text(done.stdout)
    (cwd / f"{name}.stderr.txt").write_text(done.stderr)
    timing = report.read_text() if report.exists() else done.stderr
    if not report.exists():
        report.write_text(timing[-2000:])
    killed = re.search(r"Command terminated by signal (\d+)", timing)
    signal = int(killed.group(1)) if killed else None
    if signal is None and done.returncode < 0:
        signal = -done.returncode
    return {
        "signal": signal,
        "name": name,
        "command": shlex.join(command),
        "cwd": str(cwd),
        "code": done.returncode,
        "seconds": seconds,
        "peak_kib": _peak_kib(timing),
        "stdout": done.stdout,
        "stderr": done.stderr,
    }


def measure(args) -> None:
    """Peak RSS of `daeflow run` and of bench/plain_recipe.py, each in a fresh process."""
    data = Path(args.data).resolve()
    clean, noisy = data / "clean.npy", data / "noisy.npy"
    for path in (clean, noisy):
        if not path.is_file():
            sys.exit(f"{path} not found; write it with: {sys.argv[0]} make-data --out {data}")
    header = np.load(clean, mmap_mode="r")
    on_disk = clean.stat().st_size + noisy.stat().st_size
    tool = (
        f"{GNU_TIME} -v"
        if Path(GNU_TIME).exists()
        else "resource.getrusage(RUSAGE_CHILDREN).ru_maxrss of a wrapper process "
        f"({GNU_TIME} not found)"
    )
    bin_dir = Path(sys.executable).parent
    daeflow = bin_dir / "daeflow"
    if not daeflow.exists():
        daeflow = Path(shutil.which("daeflow") or "daeflow")
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    names = ("daeflow", "plain") if args.only == "both" else (args.only,)
    available = _available_bytes()
    estimate = PLAIN_BASE + PLAIN_FACTOR * on_disk
    if "plain" in names and available and estimate > 0.9 * available:
        message = (
            f"The plain recipe is expected to peak near {estimate / GIB:.1f} GiB "
            f"(1.5 GiB + 13.4 x {on_disk / GIB:.2f} GiB on disk) but only "
            f"{available / GIB:.1f} GiB is available; it would likely be killed by the OOM "
            "killer, which may pick other processes on a shared machine."
        )
        if not args.force:
            sys.exit(f"{message} Use a smaller dataset or pass --force to run it anyway.")
        print(f"warning: {message}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="daeflow-memory-"))
    common = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    patches = ["--patch-size", str(args.patch_size)] if args.patch_size else []
    commands = {
        "daeflow": [
            str(daeflow),
            "run",
            "--arch",
            "conv_baseline",
            "--clean",
            str(clean),
            "--noisy",
            str(noisy),
            *common,
            *patches,
            "--tracking-uri",
            f"sqlite:///{tmp}/mlflow.db",
        ],
        "plain": [
            sys.executable,
            str(HERE / "plain_recipe.py"),
            "--clean",
            str(clean),
            "--noisy",
            str(noisy),
            *common,
        ],
    }
    results = {}
    for name in names:
        print(f"running {name}: {shlex.join(commands[name])}", flush=True)
        results[name] = measure_one(name, commands[name], tmp, env)
        r = results[name]
        peak = f"{r['peak_kib'] / 1024:.0f} MiB" if r["peak_kib"] else "unknown"
        print(f"  exit {r['code']}, {r['seconds']:.1f}s, peak RSS {peak}", flush=True)
        if r["signal"]:
            print(f"  killed by signal {r['signal']} (9 is usually the out-of-memory killer)")
        if r["code"] != 0:
            print("  stderr (last lines):\n    " + "\n    ".join(r["stderr"].splitlines()[-15:]))

    lines = [
        "",
        "=== bench/memory.py: peak resident memory, daeflow run vs plain in-memory recipe ===",
        f"command: {shlex.join(sys.orig_argv)}",
        f"data: {clean} + {noisy.name}, {header.shape[0]} pairs of shape {header.shape[1:]} "
        f"{header.dtype}; on disk {on_disk / MIB:.0f} MiB ({on_disk / 1e9:.3f} GB)",
        f"measured with: {tool}; each side in its own fresh process, cwd {tmp}",
        f"memory available at start: "
        f"{f'{available / GIB:.1f} GiB' if available else 'unknown'}; "
        f"plain recipe expected near {estimate / GIB:.1f} GiB",
        "plain: np.load both, astype(float32)/255, train_test_split(test_size=0.2), "
        "conv_baseline in Keras, fit with validation_data",
        "",
    ]
    for name in names:
        r = results[name]
        peak = f"{r['peak_kib'] / 1024:9.0f} MiB" if r["peak_kib"] else "  unknown"
        killed = f"  KILLED by signal {r['signal']}" if r["signal"] else ""
        lines.append(f"{name:<8} peak RSS {peak}  exit {r['code']}  {r['seconds']:7.1f}s{killed}")
        lines.append(f"         {r['command']}")
    if all(results.get(n, {}).get("peak_kib") for n in ("daeflow", "plain")):
        d, p = results["daeflow"]["peak_kib"] * 1024, results["plain"]["peak_kib"] * 1024
        lines.append(
            f"ratio daeflow/plain {d / p:.3f}; peak / data on disk: daeflow {d / on_disk:.2f}x, "
            f"plain {p / on_disk:.2f}x"
        )
    lines.append(f"logs: {tmp}/<name>.stdout.txt, <name>.stderr.txt, <name>.time.txt")
    print("\n".join(lines))
    if any(r["code"] != 0 for r in results.values()):
        sys.exit(1)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    make = sub.add_parser("make-data", help="Write a uint8 clean/noisy .npy dataset.")
    make.add_argument("--out", required=True, help="Folder for clean.npy and noisy.npy.")
    make.add_argument(
        "--gigabytes", type=float, default=2.0, help="Both files together, in GiB (2**30)."
    )
    make.add_argument("--max-images", type=int, default=None, help="Cap the number of pairs.")
    make.add_argument("--size", type=int, default=128, help="Image height and width.")
    make.add_argument("--channels", type=int, default=1)
    make.add_argument("--sigma", type=float, default=25.0, help="Noise sigma on 0..255.")
    make.add_argument("--seed", type=int, default=0)
    run = sub.add_parser("measure", help="Peak RSS of daeflow run and the plain recipe.")
    run.add_argument("--data", required=True, help="Folder holding clean.npy and noisy.npy.")
    run.add_argument("--epochs", type=int, default=1)
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--patch-size", type=int, default=None, help="daeflow only: train on patches.")
    run.add_argument("--only", choices=("both", "daeflow", "plain"), default="both")
    run.add_argument(
        "--force",
        action="store_true",
        help="Run the plain recipe even when its expected peak exceeds available memory.",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.mode == "make-data":
        make_data(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()
