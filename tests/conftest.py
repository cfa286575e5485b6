import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import contextlib  # noqa: E402
import itertools  # noqa: E402
import shutil  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from daeflow.plugin.manager import reset_plugins  # noqa: E402


@pytest.fixture(autouse=True)
def builtin_plugins_only(monkeypatch):
    """Only built-in plugins, unless a test asks for installed ones."""
    monkeypatch.setenv("DAEFLOW_LOAD_PLUGINS", "")
    monkeypatch.delenv("DAEFLOW_STRICT_PLUGINS", raising=False)
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture(autouse=True)
def daeflow_home(tmp_path, monkeypatch):
    """Run folders (checkpoints, journals) of the test's runs, under its tmp_path."""
    home = tmp_path / "daeflow-home"
    monkeypatch.setenv("DAEFLOW_HOME", str(home))
    return home


@pytest.fixture
def installed_plugins(monkeypatch):
    """Load every installed plugin (the example plugin among them)."""
    monkeypatch.delenv("DAEFLOW_LOAD_PLUGINS", raising=False)
    reset_plugins()


def _build(arch: str, channels: int):
    from daeflow.plugin.registry import get_architecture

    spec = get_architecture(arch).spec
    return spec.build((None, None, channels), spec.defaults)


@pytest.fixture(scope="session")
def fresh_model():
    """An untrained built-in model (random weights), built once per architecture and channels."""
    models = {}

    def get(arch: str = "conv_baseline", channels: int = 1):
        if (arch, channels) not in models:
            models[arch, channels] = _build(arch, channels)
        return models[arch, channels]

    return get


@pytest.fixture(scope="session")
def trained_model():
    """A built-in model trained for 30 steps on smooth images, trained once per session."""
    models = {}

    def get(arch: str = "conv_baseline", channels: int = 1):
        if (arch, channels) not in models:
            import keras

            model = _build(arch, channels)
            model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
            rng = np.random.default_rng(0)
            clean = rng.uniform(0.2, 0.8, (8, 32, 32, channels)).astype(np.float32)
            noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
            for _ in range(30):
                model.train_on_batch(noisy, clean)
            models[arch, channels] = model
        return models[arch, channels]

    return get


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory):
    """An MLflow sqlite store with its schema created once per session."""
    import mlflow

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(migrated_store, tmp_path, monkeypatch):
    """A fresh copy of the migrated store, with artifacts under tmp_path."""
    import mlflow

    path = tmp_path / "mlflow.db"
    shutil.copy(migrated_store, path)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    if mlflow.active_run():
        mlflow.end_run()


def cli(*args, code=0):
    """Invoke the daeflow CLI in this process and check its exit code."""
    from typer.testing import CliRunner

    from daeflow.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def one_error_line(result, code, *fragments) -> str:
    """The exit code, no traceback, and exactly one "Error:" line on stderr holding fragments."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ")
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def make_pairs(n=24, size=16, channels=1, dtype=np.uint8, sigma=20.0, seed=0, data_range=255):
    """Smooth random clean images and noisy copies, as (clean, noisy) of `dtype`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for _ in range(n):
        fx, fy, phase = rng.uniform(0.5, 3, 3)
        base = 0.5 + 0.4 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase * 6)
        images.append(np.repeat(base[..., None], channels, axis=-1))
    clean = np.stack(images) * data_range
    noisy = clean + rng.normal(0, sigma * data_range / 255, clean.shape)
    clip = (0, data_range)
    if np.issubdtype(dtype, np.integer):
        return (
            np.clip(np.rint(clean), *clip).astype(dtype),
            np.clip(np.rint(noisy), *clip).astype(dtype),
        )
    return clean.astype(dtype), np.clip(noisy, *clip).astype(dtype)


@pytest.fixture
def pair_files(tmp_path):
    """Write a small aligned clean/noisy pair to .npy files and return their paths."""

    def write(**kwargs):
        clean, noisy = make_pairs(**kwargs)
        clean_path, noisy_path = tmp_path / "clean.npy", tmp_path / "noisy.npy"
        np.save(clean_path, clean)
        np.save(noisy_path, noisy)
        return clean_path, noisy_path

    return write


_ids = itertools.count()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Install fake distributions with entry points in group 'daeflow' onto sys.path."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("DAEFLOW_LOAD_PLUGINS", raising=False)

    def install(dist: str, code: str, entry: str | None = None) -> str:
        module = f"fake_plugin_{next(_ids)}"
        (root / f"{module}.py").write_text(textwrap.dedent(code))
        info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[daeflow]\n{entry or dist} = {module}\n")
        reset_plugins()
        return entry or dist

    return install


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A daeflow command in its own process, its output read line by line as it comes."""

    def __init__(self, *args, cwd=None, env=None):
        import subprocess
        import sys
        import threading

        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daeflow", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, start: str, timeout: float = 180.0) -> str:
        """The first output line that starts with `start`; fails after `timeout` seconds."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if line.startswith(start)]
            if found:
                return found[0]
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        self.process.kill()
        pytest.fail(f"no line {start!r}; output: {self.lines}; {self.process.stderr.read()}")

    def epochs(self) -> int:
        """How many epoch lines the command has printed."""
        return sum(line.startswith("epoch") for line in self.lines)

    def finish(self, timeout: float = 300.0) -> tuple[int, str]:
        """Wait for the exit: (exit code, stderr)."""
        stderr = self.process.stderr.read()
        self.process.wait(timeout)
        self.reader.join(timeout)
        return self.process.returncode, stderr


def wait_healthy(url: str, process, timeout: float = 120.0) -> None:
    """Wait until the server at `url` answers /health."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server at {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the server at {url} did not start in {timeout:g} s")


class Server:
    """A real tracking server on 127.0.0.1, stopped and started again at will."""

    def __init__(self, command: list[str], port: int, log):
        self.command, self.port, self.log = command, port, log
        self.url, self.process = f"http://127.0.0.1:{port}", None

    def start(self) -> "Server":
        import subprocess

        # MLflow's job runner serves GenAI features: two processes less on a 2-core machine.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            self.command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env=env,
        )  # fmt: skip
        wait_healthy(self.url, self.process)
        return self

    def stop(self) -> None:
        import signal
        import subprocess
        import time

        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 30  # its workers too: the port must be free again
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def mlflow_server(tmp_path, migrated_store):
    """`mlflow server` on a sqlite store in tmp_path (a copy of a migrated one: 7 s less)."""
    import sys

    shutil.copy(migrated_store, tmp_path / "server.db")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path}/server.db"]
    command += ["--artifacts-destination", str(tmp_path / "server-artifacts")]
    with open(tmp_path / "server.log", "ab") as log:
        server = Server(command, port, log).start()
        yield server
        server.stop()


TEAM_ADMIN = ("admin", "team-admin-password")


@pytest.fixture
def team_server(tmp_path, monkeypatch):
    """`daeflow server`: PostgreSQL (Debian's package) and `mlflow server` on 127.0.0.1, with
    accounts; the test's MLflow clients and daeflow commands log in as its admin."""
    import importlib.util
    import sys

    from daeflow.errors import UsageError
    from daeflow.track.server import postgres_programs

    missing = None
    try:
        postgres_programs()
    except UsageError:
        missing = "PostgreSQL's server programs are not installed (apt-get install postgresql)"
    if importlib.util.find_spec("psycopg2") is None:
        missing = "psycopg2 is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("DAEFLOW_REQUIRE_POSTGRES"):
            pytest.fail(missing)
        pytest.skip(missing)
    import tempfile

    # Not under tmp_path: as root, PostgreSQL runs as user postgres, who must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="daeflow-team-"))
    folder.chmod(0o711)
    monkeypatch.setenv("DAEFLOW_ADMIN_PASSWORD", TEAM_ADMIN[1])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", TEAM_ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", TEAM_ADMIN[1])
    port = free_port()
    command = [sys.executable, "-m", "daeflow", "server", "--dir", str(folder)]
    command += ["--port", str(port), "--workers", "2"]
    try:
        with open(tmp_path / "server.log", "ab") as log:
            server = Server(command, port, log).start()
            server.folder = folder  # its PostgreSQL cluster lives here
            yield server
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
