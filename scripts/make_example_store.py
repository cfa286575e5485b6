"""Regenerate mlruns.example/, the small MLflow store shown by `daeflow ui --store mlruns.example`.

Run it with `make example-store`. It deletes mlruns.example/, starts an MLflow tracking server
that proxies artifacts into mlruns.example/artifacts, and logs the example runs through the
real CLI (five architectures, two classical baselines and a small sweep on the bundled demo
data).

Because the runs are logged through the server, their artifact URIs are `mlflow-artifacts:/...`,
relative to whatever folder a later server is given as --artifacts-destination, so the store
works from any clone location (a file store would record absolute file:// paths instead).
"""

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "mlruns.example"
EXPERIMENT = "daeflow-demo"
EPOCHS = 20
# The defaults of conv_deep and resunet make 9 MB model files; halving their base filters
# keeps every file of the store under 5 MB.
ARCH_PARAMS = {
    "conv_deep": ["--arch-param", "filters=16"],
    "resunet": ["--arch-param", "filters=8"],
}
SEED = 0
ARCHS = ("conv_baseline", "conv_deep", "conv_transpose", "residual_fast", "resunet")
BASELINES = ("nlm", "tv")
# A sweep parent and its children: two learning rates of conv_baseline, one seed each.
SWEEP = ["--arch", "conv_baseline", "--param", "learning_rate=0.003,0.001", "--seeds", "1"]
SWEEP_EPOCHS = 5
SWEEP_RUNS = 1 + 2
MAX_BYTES = 20 * 1024 * 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    """Poll the server's /health until it answers, or fail if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"The MLflow server exited with code {server.returncode}.")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"The MLflow server did not answer at {url} within {timeout:.0f} s.")


def stop(server: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the server's process group and wait until all of it (uvicorn too) is gone."""
    os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.poll()  # reaps the leader, so that the group can empty
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def daeflow_command() -> str:
    """The daeflow console script, relative to the repository root.

    MLflow records the script path as the run's `mlflow.source.name` tag; a relative path
    keeps the generating machine's folders out of the store.
    """
    script = Path(sys.executable).parent / "daeflow"
    if not script.exists():
        found = shutil.which("daeflow")
        if found is None:
            raise SystemExit("No daeflow command: run 'make example-store' to install it first.")
        script = Path(found)
    try:
        return os.path.relpath(script, ROOT)
    except ValueError:
        return str(script)


def client_env() -> dict:
    """The environment of the logging commands: every installed plugin, fixed user name."""
    env = {k: v for k, v in os.environ.items() if k != "DAEFLOW_LOAD_PLUGINS"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        MLFLOW_TRACKING_USERNAME="daeflow",  # the runs' mlflow.user tag, not the local login
        MLFLOW_DISABLE_TELEMETRY="true",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def log_runs(url: str) -> None:
    """The example runs, through the real CLI against the server at `url`."""
    common = ["--tracking-uri", url, "--experiment", EXPERIMENT, "--seed", str(SEED)]
    commands = [
        [
            "run",
            "--arch",
            arch,
            "--run-name",
            arch,
            "--epochs",
            str(EPOCHS),
            *ARCH_PARAMS.get(arch, []),
            *common,
        ]
        for arch in ARCHS
    ]
    # Baselines first: the networks' runs and reports then show them next to their numbers.
    commands = [["baseline", "--method", method, *common] for method in BASELINES] + commands
    commands.append(
        ["sweep", *SWEEP, "--epochs", str(SWEEP_EPOCHS), "--run-name", "sweep", *common]
    )
    daeflow, env = daeflow_command(), client_env()
    for args in commands:
        print(f"\n$ daeflow {' '.join(args)}", flush=True)
        subprocess.run([daeflow, *args], cwd=ROOT, env=env, check=True)


def check_store(database: Path) -> list[tuple[str, str]]:
    """Every run FINISHED with an mlflow-artifacts: URI; returns (name, status) per run."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        runs = db.execute("SELECT name, status FROM runs ORDER BY start_time").fetchall()
        uris = [row[0] for row in db.execute("SELECT artifact_uri FROM runs")]
        uris += [row[0] for row in db.execute("SELECT artifact_location FROM experiments")]
        uris += [row[0] for row in db.execute("SELECT artifact_location FROM logged_models")]
    expected = len(ARCHS) + len(BASELINES) + SWEEP_RUNS
    if len(runs) != expected:
        raise SystemExit(f"Expected {expected} runs in the store, found {len(runs)}.")
    unfinished = [run for run in runs if run[1] != "FINISHED"]
    if unfinished:
        raise SystemExit(f"Runs not FINISHED: {unfinished}")
    absolute = [uri for uri in uris if not uri.startswith("mlflow-artifacts:")]
    if absolute:
        raise SystemExit(f"Artifact locations not relative to the store: {absolute}")
    return runs


def compact(database: Path) -> None:
    """VACUUM the database and remove sqlite's side files."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("VACUUM")
    for suffix in ("-journal", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def local_paths_in_store() -> list[str]:
    """Files of the store that mention this checkout's absolute path."""
    needles = {str(ROOT).encode(), str(STORE).encode()}
    return [
        str(path.relative_to(STORE))
        for path in STORE.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


def store_size() -> int:
    """Bytes of all files in the store."""
    return sum(path.stat().st_size for path in STORE.rglob("*") if path.is_file())


def main() -> None:
    """Rebuild mlruns.example/ from scratch and check it."""
    start = time.monotonic()
    shutil.rmtree(STORE, ignore_errors=True)
    (STORE / "artifacts").mkdir(parents=True)
    database = STORE / "mlflow.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{database}",
        "--artifacts-destination", str(STORE / "artifacts"),
        "--serve-artifacts",
    ]  # fmt: skip
    # No job runner: nothing here queues server-side jobs, and it starts several processes.
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                server_command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                wait_until_up(url, server)
                print(f"MLflow server at {url}, store {STORE.relative_to(ROOT)}/", flush=True)
                log_runs(url)
            except BaseException:
                sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                raise
            finally:
                stop(server)
    runs = check_store(database)
    compact(database)
    leaks = local_paths_in_store()
    if leaks:
        raise SystemExit(f"Files that mention {ROOT}: {leaks}")
    size = store_size()
    print(f"\n{len(runs)} runs FINISHED in experiment {EXPERIMENT!r}:")
    for name, status in runs:
        print(f"  {name}: {status}")
    print(
        f"Artifact URIs are mlflow-artifacts:/ (relative); no absolute path of this checkout.\n"
        f"Store size {size / 1e6:.1f} MB, made in {time.monotonic() - start:.0f} s. "
        f"Open it with: daeflow ui --store {STORE.relative_to(ROOT)}"
    )
    if size >= MAX_BYTES:
        raise SystemExit(f"The store is {size / 1e6:.1f} MB, over {MAX_BYTES / 1e6:.0f} MB.")


if __name__ == "__main__":
    main()
