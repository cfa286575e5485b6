"""Many runs, one team server: N concurrent `daeflow run` into `daeflow server` (PostgreSQL
and MLflow's server on 127.0.0.1), the server (both) stopped and started again while the
runs train. Counts finished runs and missing or duplicated metric steps.

Each run trains conv_baseline on the bundled demo data for --epochs epochs.

    .venv/bin/python bench/team.py --runs 8 --epochs 10
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoints import print_machine  # noqa: E402
from quality import ROOT  # noqa: E402

DAEFLOW = str(ROOT / ".venv" / "bin" / "daeflow")


def start_server(folder: str, port: int, log) -> tuple[subprocess.Popen, float]:
    """`daeflow server` and the seconds until it answers /health."""
    start = time.monotonic()
    command = [DAEFLOW, "server", "--dir", folder, "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server, time.monotonic() - start
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"daeflow server exited with {server.returncode}") from None
            time.sleep(0.2)


def stop_server(server: subprocess.Popen) -> float:
    start = time.monotonic()
    os.killpg(server.pid, signal.SIGTERM)
    server.wait()
    while True:
        try:
            os.killpg(server.pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    import mlflow

    print_machine()
    # The server's accounts: it creates its admin with this password, and the runs (and
    # this script's client) log in as that admin.
    os.environ.setdefault("DAEFLOW_ADMIN_PASSWORD", "bench-admin-password")
    os.environ["MLFLOW_TRACKING_USERNAME"] = "admin"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["DAEFLOW_ADMIN_PASSWORD"]
    folder = tempfile.mkdtemp(prefix="daeflow-team-")
    os.chmod(folder, 0o711)  # PostgreSQL, run as user postgres when root, must reach it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with open(f"{folder}/server.log", "ab") as log, tempfile.TemporaryDirectory() as work:
        server, first_start = start_server(folder, port, log)
        print(f"server up in {first_start:.1f} s (first start: creates the cluster)")
        began = time.monotonic()
        env = {**os.environ, "DAEFLOW_HOME": f"{work}/home", "PYTHONUNBUFFERED": "1"}
        command = [DAEFLOW, "run", "--epochs", str(args.epochs), "--tracking-uri", uri]
        runs, lines = [], []
        for _ in range(args.runs):
            run = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)  # fmt: skip
            printed: list[str] = []
            threading.Thread(
                target=lambda r=run, p=printed: p.extend(r.stdout), daemon=True
            ).start()
            runs.append(run)
            lines.append(printed)
        while not all(any(x.startswith("epoch") for x in printed) for printed in lines):
            time.sleep(0.2)  # until every run trains

        def epochs() -> list[int]:
            return [sum(line.startswith("epoch") for line in printed) for printed in lines]

        down, at_down = time.monotonic(), epochs()
        stopped = stop_server(server)
        server, restarted = start_server(folder, port, log)
        print(
            f"server stopped {down - began:.0f} s in (every run had trained an epoch), "
            f"stopped in {stopped:.1f} s, back after {time.monotonic() - down:.1f} s"
        )
        print(f"epochs per run when it stopped: {at_down}; when it was back: {epochs()}")
        results = [(r.wait(), r.stderr.read()) for r in runs]
        wall = time.monotonic() - began
        client = mlflow.MlflowClient(uri)
        found = client.search_runs([e.experiment_id for e in client.search_experiments()])
        finished = sum(r.info.status == "FINISHED" for r in found)
        bad_steps = 0
        for run in found:
            for key in ("epoch/loss", "epoch/val_psnr"):
                got = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
                bad_steps += got != list(range(1, args.epochs + 1))
        print(f"{args.runs} runs: exit codes {[code for code, _ in results]}, "
              f"{finished} FINISHED of {len(found)} in the store, "
              f"{bad_steps} metric histories with a missing or duplicated step, "
              f"wall {wall:.0f} s")  # fmt: skip
        for code, err in results:
            if code:
                print("  ", err.strip().splitlines()[-1:])
        stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
