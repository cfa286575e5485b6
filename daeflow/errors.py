"""The errors a user may see; the CLI turns each into one line on stderr."""

import os


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message on one line (each run of whitespace one space), cut at `limit`."""
    text = " ".join(str(exc).split())
    return text if limit is None else text[:limit]


class DaeflowError(Exception):
    """Base class: a problem the user can fix, explained in one line."""

    exit_code = 2


class UsageError(DaeflowError):
    """An option value that cannot be used."""


class DataError(DaeflowError):
    """Input data that is missing, unreadable or unsuitable."""


class PluginError(DaeflowError):
    """A plugin that failed to load or declares something invalid."""


class ArchitectureError(DaeflowError):
    """An unknown, duplicated or misbehaving architecture."""


class ModelLoadError(DaeflowError):
    """A saved model that cannot, or must not, be loaded."""


class TrackingError(DaeflowError):
    """An MLflow tracking store or server that cannot be used."""

    exit_code = 1


class CredentialsError(DaeflowError):
    """A tracking server that asks for a login it was not given, or refuses the one it was."""


class TrainingError(DaeflowError):
    """Training that went wrong on the way, such as a loss that became NaN."""

    exit_code = 1


class MissingDependency(DaeflowError):
    """An optional dependency the command needs that is not installed: the environment's
    problem, not the input's."""

    exit_code = 1


class DiskFull(DaeflowError):
    """A full disk: the run's local folder, the sqlite file or the artifact folder."""

    exit_code = 1


class Interrupted(BaseException):
    """Work stopped by a signal (SIGTERM). Like KeyboardInterrupt, not an Exception, so that
    no handler meant for errors (a builder, a sweep child) swallows it."""

    exit_code = 130


def debugging() -> bool:
    """Whether DAEFLOW_DEBUG asks for tracebacks and every log line instead of one line."""
    return os.environ.get("DAEFLOW_DEBUG", "") not in ("", "0")
