"""A tracking server for a team: MLflow's own server on a PostgreSQL store, started in one go.

With a store URI, `mlflow server` is started on it. Without one, a PostgreSQL cluster is
kept in the server's folder (Debian's `postgresql` package provides the programs): it is
created on first use, listens only on a Unix socket inside the folder (both readable by
the server's user only), and is stopped when the server stops. Artifacts go to the
folder's `artifacts`, served by MLflow. Unless told otherwise, MLflow's authentication is
on (see `daeflow.track.auth`).
"""

import contextlib
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from daeflow.errors import TrackingError, UsageError

DATABASE, ROLE, PG_PORT = "mlflow", "mlflow", 5432


def postgres_programs() -> Path:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl), newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for folder in [*found, *(str(Path(p).parent) for p in [shutil.which("pg_ctl")] if p)]:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    raise UsageError(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed. Install them "
        "(Debian/Ubuntu: sudo apt-get install postgresql) or pass --store with the URI of "
        "an existing database."
    )


def _runuser() -> str:
    """runuser, also where root's PATH lacks the sbin folders (a login shell's PATH may)."""
    import shutil

    return shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).is_file()), "runuser"
    )


def _version(folder: str) -> tuple:
    name = Path(folder).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit())


class PostgresCluster:
    """A private PostgreSQL cluster in `folder`: data in `pgdata`, its socket in `socket`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()
        self.data, self.socket = self.folder / "pgdata", self.folder / "socket"
        self.programs = postgres_programs()
        # PostgreSQL refuses to run as root: then it runs as the system's postgres user.
        self.owner = "postgres" if os.geteuid() == 0 else None

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{ROLE}@/{DATABASE}?host={self.socket}&port={PG_PORT}"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.programs / program), *args]
        if self.owner:
            command = [_runuser(), "-u", self.owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True)

    def _check(self, done: subprocess.CompletedProcess, what: str) -> None:
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout).split())[:300]
            raise TrackingError(f"PostgreSQL could not {what} in {self.data}: {detail}")

    def _own(self, *paths: Path) -> None:
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            if self.owner:
                shutil.chown(path, self.owner, self.owner)
            path.chmod(0o700)

    def start(self) -> None:
        """Create the cluster and its database on first use; start it (socket only)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._own(self.socket)
        if not (self.data / "PG_VERSION").is_file():
            self._own(self.data)
            done = self._run(
                "initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8"
            )
            self._check(done, "create a cluster")
        if self._run("pg_ctl", "status", "-D", str(self.data)).returncode != 0:
            options = f"-c listen_addresses='' -k {self.socket} -p {PG_PORT}"
            options += " -c unix_socket_permissions=0700"  # the server's user only
            log = self.data / "server.log"
            done = self._run(
                "pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(log), "-o", options
            )
            self._check(done, "start")
        self.ensure_database(DATABASE)

    def ensure_database(self, name: str) -> str:
        """Create the database `name` unless it exists (e.g. one for Optuna); its URI."""
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.stdout.strip() != "1":
            self._check(self._psql(f"CREATE DATABASE {name}"), f"create the database {name}")
        return self.uri.replace(f"@/{DATABASE}?", f"@/{name}?")

    def _psql(self, sql: str) -> subprocess.CompletedProcess:
        psql = self.programs / "psql"
        command = [str(psql), "-h", str(self.socket), "-p", str(PG_PORT), "-U", ROLE]
        command += ["-d", "postgres", "-tAc", sql]
        if self.owner:
            command = [_runuser(), "-u", self.owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True)

    def stop(self) -> None:
        """Stop the cluster (fast: open transactions are rolled back)."""
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))


def mlflow_server_command(
    store: str,
    artifacts: Path,
    host: str,
    port: int,
    workers: int,
    extra: list[str],
    app: str | None = None,
) -> list[str]:
    """The `mlflow server` command line that serves `store` and the artifacts folder."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store,
        "--artifacts-destination", str(Path(artifacts).resolve()),
        "--host", host, "--port", str(port), "--workers", str(workers),
        *(["--app-name", app] if app else []),
        *extra,
    ]  # fmt: skip


def serve(
    folder: Path,
    store: str | None,
    host: str,
    port: int,
    workers: int,
    extra: list[str],
    write=print,
    auth: bool = True,
    warn=print,
) -> int:
    """Run the tracking server until it is stopped (Ctrl-C, SIGTERM); its exit code."""
    import signal

    from daeflow.runtime.signals import sigterm_raises
    from daeflow.track import auth as accounts

    if auth:
        if any(arg.split("=", 1)[0] == "--app-name" for arg in extra):
            raise UsageError(
                "--app-name: daeflow server runs MLflow's basic-auth app itself. Pass "
                "--no-auth to run another app."
            )
        accounts.check_available()
    elif not accounts.is_loopback(host):
        warn(
            f"Warning: no accounts (--no-auth) on --host {host}: anyone who reaches port "
            f"{port} can read, delete or overwrite runs and models."
        )
    if store is None:
        _check_driver()
    folder = Path(folder).resolve()
    # Only the server's user may look inside; as root, PostgreSQL runs as user postgres,
    # who must pass through to its own folders.
    folder.mkdir(mode=0o711 if os.geteuid() == 0 else 0o700, parents=True, exist_ok=True)
    # MLflow's job runner (two more processes) serves GenAI features daeflow does not use.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    if auth:
        env.update(accounts.server_environment(folder, write))
    cluster = None
    if store is None:
        cluster = PostgresCluster(folder)
        cluster.start()
        store = cluster.uri
        write(f"PostgreSQL store in {cluster.data} (Unix socket {cluster.socket}).")
    elif store.startswith("postgresql://"):
        store = "postgresql+psycopg2://" + store.removeprefix("postgresql://")  # the driver
    app = accounts.APP if auth else None
    command = mlflow_server_command(store, folder / "artifacts", host, port, workers, extra, app)
    write(f"MLflow tracking server: http://{host}:{port} (artifacts in {folder}/artifacts).")
    if auth:
        write(
            "Accounts are on: clients set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD; the admin adds users with MLflow's API or UI."
        )
    server = subprocess.Popen(command, start_new_session=True, env=env)
    try:
        with sigterm_raises("The tracking server was stopped by SIGTERM."):
            return server.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        raise
    finally:
        if cluster is not None:
            cluster.stop()


def _check_driver() -> None:
    """MLflow reaches PostgreSQL through psycopg2, which only `daeflow[server]` installs."""
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None:
        raise UsageError("MLflow needs psycopg2 to use PostgreSQL: pip install 'daeflow[server]'")
