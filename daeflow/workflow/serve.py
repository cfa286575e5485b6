"""`daeflow check-model` and `daeflow serve`: a model folder checked as data, then served.

The check reads the folder without importing anything from it (see
`daeflow.track.model_check`). `serve` checks a private copy of the model (downloaded for
runs:/ and models:/ URIs, copied for a folder) and serves that same copy with MLflow's
scoring app as `mlflow models serve --env-manager local` does, run by this interpreter's
uvicorn behind daeflow's guard (`daeflow.track.scoring_guard`: bodies over a limit refused,
error replies in one sentence without the input), so no activated venv is needed.
"""

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daeflow.errors import UsageError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _use_store(model_uri: str, tracking_uri: str | None) -> None:
    from daeflow.workflow.denoise import needs_store

    if needs_store(model_uri):
        from daeflow.track import store

        store.use_tracking_uri(tracking_uri)


def check_model(model_uri: str, tracking_uri: str | None = None) -> str:
    """Check the model at `model_uri` (a folder, runs:/, models:/); what it is, in a sentence.

    Raises ModelLoadError with the reason when it is not a plain daeflow model.
    """
    from daeflow.track.model_check import checked_model

    _use_store(model_uri, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="daeflow-check-") as tmp:
        return checked_model(model_uri, Path(tmp) / "model").summary()


def check_port(host: str, port: int) -> None:
    """Refuse, before any work, an address the scoring server could not listen on."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        raise UsageError(
            f"--host {host!r} is not an address of this machine. Pass 127.0.0.1 (this "
            "machine only) or 0.0.0.0 (every network)."
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"Port {port} on {host} is in use (another server?). Stop it or pass "
                    "another --port."
                ) from None
            raise UsageError(
                f"Cannot listen on {host}:{port}: {exc.strerror}. Pass another --host or --port."
            ) from None


def scoring_server_env() -> dict[str, str]:
    """The environment with this interpreter's bin folder first on PATH (for what the
    server may start)."""
    here = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": here + (os.pathsep + path if path else "")}


def serve_model(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 5001,
    workers: int = 1,
    tracking_uri: str | None = None,
    write=print,
    max_body: int | None = None,
) -> int:
    """Check the model, then serve the checked copy until the server stops (Ctrl-C, SIGTERM:
    passed on to it); the server's exit code. Request bodies over `max_body` bytes (default:
    from the model's params "max_bytes", see scoring_guard) are refused."""
    from daeflow.data.arrays import readable_bytes
    from daeflow.track import scoring_guard
    from daeflow.track.model_check import checked_model

    check_port(host, port)
    _use_store(model_uri, tracking_uri)
    private = Path(tempfile.mkdtemp(prefix="daeflow-serve-"))  # mode 0700
    try:
        folder = checked_model(model_uri, private / "model", copy_local=True)
        write(f"Checked {model_uri}: {folder.summary()}.")
        max_body = max_body or scoring_guard.max_body_for(folder.path)
        write(
            f"Serving it at http://{host}:{port}/invocations, request bodies up to "
            f"{readable_bytes(max_body)} (Ctrl-C stops it)."
        )
        command, env = scoring_guard.server_command(folder.path, host, port, workers, max_body)
        return run_forwarding_signals(command, {**scoring_server_env(), **env})
    finally:
        shutil.rmtree(private, ignore_errors=True)


def run_forwarding_signals(command: list[str], env: dict[str, str]) -> int:
    """Run `command` in its own process group until it exits; SIGINT and SIGTERM are passed on
    to the whole group (the server and its workers). Its exit code, 128 + N for signal N."""
    child = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_stop_with_parent)
    stopped_by: list[int] = []

    def forward(signum, frame):
        stopped_by.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {number: signal.signal(number, forward) for number in STOP_SIGNALS}
    try:
        code = child.wait()
        # uvicorn's supervisor may end before its workers: the port is free only when the
        # whole group is gone.
        _end_group(child.pid)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if code < 0:
        return 128 - code
    if stopped_by and code != 0:  # a server may exit 1 on a Ctrl-C it was sent
        return 128 + stopped_by[0]
    return code


def _end_group(group: int, grace: float = 30.0) -> None:
    """Wait for the rest of a process group to finish (SIGTERM sent), then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _running_in(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _running_in(group: int) -> bool:
    """Whether a process of the group still runs (zombies, left to be reaped, do not)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat_file in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] not in "ZX":
                return True
    return False


def _stop_with_parent() -> None:
    """In the child, before it starts: SIGTERM when daeflow dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
