"""How fast daeflow stops: SIGTERM / Ctrl-C to the training loop stopping and to exit, and
an unreachable tracking server to its one-line error.

Stops: `daeflow run` trains residual_fast on train400 patches (as bench/quality.py, epochs
of 2880 patches by default); the signal is sent at a random moment of epoch 2 (after the line of
epoch 1). "stopped" is when the run prints that training stopped (the end of the batch in
progress), "exit" when the process has logged the best model, marked the run KILLED and
exited.
Unreachable: `daeflow run --tracking-uri` a closed port on 127.0.0.1 (refused at once) and
a TEST-NET-1 address no packet comes back from (192.0.2.1, the connect times out).

    .venv/bin/python bench/stops.py --repeats 3
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoints import print_machine  # noqa: E402
from quality import DATA, ROOT, SIGMA, load_pngs  # noqa: E402

DAEFLOW = str(ROOT / ".venv" / "bin" / "daeflow")


def stop_once(tmp: str, number: int, patches: int) -> tuple[float, float, int]:
    """(seconds to 'stopped', seconds to exit, exit code) for one signal."""
    command = [
        DAEFLOW, "run", "--arch", "residual_fast", "--clean", f"{tmp}/clean.npy",
        "--noise", "gaussian", "--noise-param", f"sigma={SIGMA}", "--patch-size", "40",
        "--patches-per-image", str(patches), "--augment", "--batch-size", "16", "--epochs", "100",
        "--val-fraction", "0.05", "--test-fraction", "0.05",
        "--tracking-uri", f"sqlite:///{tmp}/mlflow.db",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DAEFLOW_HOME": f"{tmp}/home"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen: dict[str, float] = {}

    def read():
        for raw in process.stdout:
            line = raw.decode()
            if line.startswith("epoch   1/"):
                seen.setdefault("epoch1", time.monotonic())
            if "training stopped in epoch" in line:
                seen.setdefault("stopped", time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while "epoch1" not in seen:
        time.sleep(0.05)
        if process.poll() is not None:
            raise SystemExit(process.stderr.read().decode())
    time.sleep(random.uniform(1.0, 8.0))
    sent = time.monotonic()
    process.send_signal(number)
    process.wait()
    exited = time.monotonic()
    reader.join()
    return seen.get("stopped", float("nan")) - sent, exited - sent, process.returncode


def unreachable(uri: str) -> float:
    start = time.monotonic()
    done = subprocess.run([DAEFLOW, "run", "--epochs", "1", "--tracking-uri", uri],
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.monotonic() - start
    print(f"  {uri}: exit {done.returncode} after {seconds:.1f} s: {done.stderr.strip()}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patches-per-image", type=int, default=8)
    args = parser.parse_args()
    print_machine()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/clean.npy", np.stack(load_pngs(DATA / "train400")))
        for name, number in (("SIGTERM", signal.SIGTERM), ("Ctrl-C", signal.SIGINT)):
            for _ in range(args.repeats):
                stopped, exited, code = stop_once(tmp, number, args.patches_per_image)
                print(f"  {name}: training stopped after {stopped:.2f} s, exit {code} "
                      f"after {exited:.2f} s")  # fmt: skip
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        print("Unreachable tracking server (daeflow run --epochs 1 --tracking-uri ...):")
        unreachable(f"http://127.0.0.1:{port}")
        unreachable("http://192.0.2.1:5000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
