"""What checkpoints cost: residual_fast on train400 patches, a checkpoint every other epoch.

One run (`daeflow run`, in this process, into a temporary sqlite store) with
`--checkpoint-every 2`, so that epochs with and without a checkpoint alternate and are
measured under the same machine load. Each epoch's time is the one `daeflow run` prints
(training, validation and, on even epochs, writing the checkpoint); the checkpoint write
and its upload (a background thread) are also timed on their own.

    .venv/bin/python bench/checkpoints.py --epochs 9
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import contextlib
import io
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import DATA, SIGMA, load_pngs  # noqa: E402


def cpu_model() -> str:
    """The CPU's model name, with its family and model numbers (model names can be vague)."""
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.processor()
    flags = fields.get("flags", "").split()
    extras = [flag for flag in ("avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return (
        f"{fields['model name']} (family {fields.get('cpu family')}, model {fields.get('model')}"
        f"; {', '.join(extras) or 'no AVX-512'})"
    )


def print_machine() -> None:
    """The CPU and the command line, first in every benchmark's output."""
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs")
    print(f"command: {' '.join(sys.argv)}")


def timed(owner, name: str, times: list[float], only=lambda *a, **k: True):
    """Wrap owner.name to append its duration to `times` when `only(args)` holds."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            if only(*args, **kwargs):
                times.append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--patches-per-image", type=int, default=8)
    args = parser.parse_args()

    import mlflow

    from daeflow.cli import app
    from daeflow.train.checkpoints import Checkpointer

    writes, uploads = [], []
    timed(Checkpointer, "write", writes)
    timed(
        mlflow.MlflowClient,
        "log_artifacts",
        uploads,
        only=lambda self, run_id, local, path=None: str(path).startswith("checkpoints/"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        clean = np.stack(load_pngs(DATA / "train400"))
        np.save(f"{tmp}/clean.npy", clean)
        os.environ["DAEFLOW_HOME"] = f"{tmp}/home"
        command = [
            "run", "--arch", "residual_fast", "--clean", f"{tmp}/clean.npy",
            "--noise", "gaussian", "--noise-param", f"sigma={SIGMA}",
            "--patch-size", "40", "--patches-per-image", str(args.patches_per_image),
            "--augment", "--batch-size", "16", "--learning-rate", "2e-3",
            "--epochs", str(args.epochs), "--checkpoint-every", "2",
            "--val-fraction", "0.05", "--test-fraction", "0.05",
            "--tracking-uri", f"sqlite:///{tmp}/mlflow.db", "--experiment", "bench-checkpoints",
        ]  # fmt: skip
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            with contextlib.suppress(SystemExit):
                app(command, standalone_mode=False)
    text = output.getvalue()
    seconds = {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r"^epoch +(\d+)/\d+ .* ([\d.]+)s$", text, re.MULTILINE)
    }
    if len(seconds) < 5:
        print(text)
        return 1
    with_checkpoint = [s for e, s in seconds.items() if e % 2 == 0]
    without = [s for e, s in seconds.items() if e % 2 == 1 and e > 1]  # epoch 1: tracing
    epoch = statistics.median(without)
    write = statistics.median(writes)
    print_machine()
    print(f"epochs timed: {sorted(seconds)} (epoch 1 left out of 'without')")
    print(f"epoch without checkpoint, median: {epoch:.2f} s  ({without})")
    print(f"epoch with checkpoint, median:    {statistics.median(with_checkpoint):.2f} s")
    print(f"checkpoint write, median:         {write * 1000:.0f} ms  ({len(writes)} writes)")
    print(f"checkpoint upload (background), median: {statistics.median(uploads) * 1000:.0f} ms")
    print(f"write / epoch:                    {100 * write / epoch:.2f} %")
    ratio = statistics.median(with_checkpoint) / epoch - 1
    print(f"epoch with / without - 1:         {100 * ratio:+.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
