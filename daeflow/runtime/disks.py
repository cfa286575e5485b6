"""Full disks: telling one from other failures, and which of the places a run writes is full.

A full disk shows up as OSError ENOSPC (or EDQUOT) from a write, often without the file's
name (the error comes at flush or close), or as SQLite's "database or disk is full" inside
an MLflow or SQLAlchemy error. `naming` puts the path on the first kind where it is known;
`full_place` says which of a run's places is full.
"""

import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = "database or disk is full"
FULL_TEXTS = (SQLITE_FULL, "No space left on device", "Disk quota exceeded")
NEARLY_FULL = 1 << 20  # bytes: a file system with less than this free counts as full

LOCAL, SQLITE, ARTIFACTS = "the local run folder at", "the sqlite file", "the artifact folder"


@dataclass(frozen=True)
class Place:
    """Somewhere a run writes: what it is (LOCAL, SQLITE, ARTIFACTS) and its path."""

    kind: str
    path: Path

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"

    def subject(self) -> str:
        """As the start of a sentence: 'The sqlite file /srv/mlflow.db'."""
        text = str(self)
        return text[0].upper() + text[1:]

    def holds(self, name: str) -> bool:
        """Whether the file `name` is this place or inside it."""
        path, mine = Path(os.path.abspath(name)), Path(os.path.abspath(self.path))
        return path == mine or mine in path.parents

    def nearly_full(self) -> bool:
        """Whether the file system of this place has (almost) no room left."""
        path = self.path
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            stat = os.statvfs(path)
        except OSError:
            return False
        return stat.f_bavail * stat.f_frsize < NEARLY_FULL


def _chain(exc: BaseException):
    """The exception and those it was raised from or during, each once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _words(exc: BaseException) -> str | None:
    """The few words that say a disk or a database is full, in `exc` or an error it came
    from, as the system or SQLite put them; None if none says so."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in FULL_ERRNOS:
            return link.strerror or os.strerror(link.errno)
        for text in FULL_TEXTS:
            if text in str(link):
                return text
    return None


def is_full(exc: BaseException) -> bool:
    """Whether `exc` (or an error it came from) says a disk or a database is full."""
    return _words(exc) is not None


def reason(exc: BaseException) -> str:
    """The few words that say the disk is full, as the system or SQLite put them."""
    return _words(exc) or "no space left"


def filename(exc: BaseException) -> str | None:
    """The file a full-disk OSError names, if any."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in FULL_ERRNOS and link.filename:
            return str(link.filename)
    return None


def full_place(exc: BaseException, places: list[Place]) -> Place | None:
    """Which of `places` is full, if `exc` says a disk is full; None if it does not.

    The file the error names decides; else SQLite's own words name the sqlite file; else
    the first place whose file system has no room left; else the first place.
    """
    if not is_full(exc):
        return None
    name = filename(exc)
    if name is not None:
        found = [place for place in places if place.holds(name)]
        return found[0] if found else Place("the folder", Path(name).parent)
    if reason(exc) == SQLITE_FULL:
        for place in places:
            if place.kind == SQLITE:
                return place
    for place in places:
        if place.nearly_full():
            return place
    return places[0] if places else None


def refuse_full(places: list[Place], then: str) -> None:
    """Refuse, before any work, a place whose disk has (almost) no room: DiskFull, ending
    with `then`, what to type once there is room."""
    from daeflow.errors import DiskFull

    for place in places:
        if place.nearly_full():
            raise DiskFull(
                f"{place.subject()} is full (less than {NEARLY_FULL >> 20} MiB free). "
                f"Free some space there, then {then}"
            )


@contextlib.contextmanager
def naming(path):
    """Within the block, a full-disk OSError without a file name gets `path` as its name."""
    try:
        yield
    except OSError as exc:
        if exc.errno in FULL_ERRNOS and not exc.filename:
            raise type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise
