"""A run's folder on this machine: the one module that knows its paths and writes its files.

`<DAEFLOW_HOME>/runs/<run id>/` holds what a run keeps here until the tracking store has
it: the journal of per-epoch records not yet sent, checkpoints, and, once training has
ended, the test results, the final metrics and the model. It also holds the run's lease:
the process that trains, resumes or syncs the run holds an exclusive lock on `lease`, so
that no two processes of this machine write the same run.
"""

import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from daeflow.errors import UsageError


def home() -> Path:
    """Where daeflow keeps what belongs to runs on this machine (DAEFLOW_HOME to move it)."""
    default = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "daeflow"
    return Path(os.environ.get("DAEFLOW_HOME", default))


def runs_root() -> Path:
    """The folder holding one folder per run."""
    return home() / "runs"


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: a crash leaves the previous file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lease: host, process id and since when (seconds since the epoch)."""

    host: str
    pid: int
    since: float = 0.0

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


class RunFolder:
    """The folder of one run. Only this class builds paths inside it."""

    JOURNAL = "journal"  # per-epoch records waiting for the tracking store (track.journal)
    CHECKPOINTS = "checkpoints"  # train.checkpoints' folder
    RESULTS = "results"  # test report files, logged at the end
    MODEL = "model"  # the final model as an MLflow model folder
    FINAL = "final.json"  # the test metrics and end tags: training has ended
    STORE = "store.json"  # which tracking store the run belongs to (for `daeflow sync`)
    LEASE = "lease"  # the lock file; its text says who holds it
    LOG = "daeflow.log"  # what MLflow and the background threads said, off the terminal
    PUBLISHED = "published.json"  # what of the results the store has taken already
    ENDED = "ended.json"  # the final status the store could not take (daeflow sync sends it)

    def __init__(self, run_id: str, path: Path | None = None):
        self.run_id = run_id
        self.path = Path(path) if path is not None else runs_root() / run_id
        self._lock = None  # the open lease file while this process holds the lease

    def __repr__(self) -> str:
        return f"RunFolder({self.path})"

    @property
    def journal(self) -> Path:
        return self.path / self.JOURNAL

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def results(self) -> Path:
        return self.path / self.RESULTS

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    def create(self) -> "RunFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def _read(self, name: str) -> dict | None:
        """One of the folder's JSON files; None when it is missing or damaged."""
        try:
            found = json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    # What the run records here.

    def remember_store(self, tracking_uri: str) -> None:
        """Record which tracking store the run belongs to."""
        self.create()
        write_atomically(self.path / self.STORE, json.dumps({"tracking_uri": tracking_uri}))

    def recorded_store(self) -> str | None:
        """The tracking URI the run was logged to, as its folder records it."""
        return (self._read(self.STORE) or {}).get("tracking_uri")

    def write_final(self, metrics: dict, tags: dict) -> None:
        """The test metrics and the tags that end the run: training has ended.

        The time is kept with them, so that logging them again (after a stop or a full
        store) gives the same metric values at the same time, which MLflow stores once.
        """
        final = {"metrics": metrics, "tags": tags, "time": int(time.time() * 1000)}
        write_atomically(self.path / self.FINAL, json.dumps(final))

    def read_final(self) -> dict:
        return json.loads((self.path / self.FINAL).read_text())

    def has_ended_training(self) -> bool:
        """Whether the run trained to its end and its results wait here for the store."""
        return (self.path / self.FINAL).is_file()

    def mark_published(self, **done) -> None:
        """Record what the store has taken of the results (results=True, model_uri=...)."""
        write_atomically(self.path / self.PUBLISHED, json.dumps({**self.published(), **done}))

    def published(self) -> dict:
        """What the store has taken already of the results kept here."""
        return self._read(self.PUBLISHED) or {}

    def remember_end(self, status: str) -> None:
        """The status the run should have and the store could not take."""
        self.create()
        write_atomically(self.path / self.ENDED, json.dumps({"status": status}))

    def remembered_end(self) -> str | None:
        return (self._read(self.ENDED) or {}).get("status")

    def forget_end(self) -> None:
        (self.path / self.ENDED).unlink(missing_ok=True)

    def remove(self) -> None:
        """Forget the run here: the tracking store holds everything."""
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)

    # The lease.

    def take_lease(self) -> "RunFolder":
        """Hold the run for this process, or refuse in one line naming the holder."""
        import fcntl

        if self._lock is not None:
            return self  # held by this process already
        self.create()
        handle = open(self.path / self.LEASE, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            holder = self._holder_when_written()
            who = str(holder) if holder else "another process on this machine"
            raise UsageError(
                f"Run {self.run_id[:8]} is held by {who}, which trains or syncs it now; "
                f"wait for it to end, or stop it first (kill {holder.pid if holder else 'it'})."
            ) from None
        handle.seek(0)
        handle.truncate()
        me = Holder(socket.gethostname(), os.getpid(), time.time())
        handle.write(json.dumps(me.__dict__))
        handle.flush()
        self._lock = handle
        return self

    def holds_lease(self) -> bool:
        return self._lock is not None

    def release(self) -> None:
        """Give the lease back (also done by the system when the process ends)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def holder(self) -> Holder | None:
        """Who last took the lease, as the lease file says."""
        try:
            return Holder(**(self._read(self.LEASE) or {}))
        except TypeError:  # not (yet) signed
            return None

    def _holder_when_written(self, wait: float = 2.0) -> Holder | None:
        """The holder, waiting a moment for one that has just taken the lock to sign it."""
        deadline = time.monotonic() + wait
        while True:
            holder = self.holder()
            if holder is not None or time.monotonic() > deadline:
                return holder
            time.sleep(0.1)

    def __enter__(self) -> "RunFolder":
        return self.take_lease()

    def __exit__(self, *exc) -> None:
        self.release()


def kept() -> list[RunFolder]:
    """The run folders on this machine, oldest first."""
    root = runs_root()
    folders = [p for p in root.glob("*") if p.is_dir()] if root.is_dir() else []
    return [RunFolder(p.name, p) for p in sorted(folders, key=lambda p: p.stat().st_mtime)]


def find_kept(ref: str) -> RunFolder:
    """The run folder whose run id is `ref` or starts with it."""
    matches = [f for f in kept() if f.run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(
            f"No run {ref!r} is kept on this machine (in {runs_root()}); "
            "'daeflow sync' with no run lists those that are."
        )
    raise UsageError(f"{ref!r} matches {len(matches)} kept runs; give more of the run id.")
