"""MLflow's own log lines (ERRORs, retries, tracebacks) off the terminal, in a run's log file.

MLflow logs a failed database write or request to the "mlflow" logger, which it points at
stderr, with a traceback, again at each retry: hundreds of lines before daeflow's own one.
While a run trains, those loggers (and "daeflow", where background threads report) write
to the run's log file instead; before the run's folder is known, to nothing. With
DAEFLOW_DEBUG=1 everything stays on the terminal.
"""

import contextlib
import logging
from pathlib import Path

import mlflow  # noqa: F401 - MLflow sets up its loggers on import; they are replaced after

from daeflow.errors import debugging

# MLflow's own loggers (mlflow.utils.logging_utils), urllib3's retry warnings, daeflow's threads.
LOGGERS = ("mlflow", "sqlalchemy.engine", "alembic", "huey", "urllib3", "daeflow")
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"


class _QuietFileHandler(logging.FileHandler):
    """A log file that says nothing on the terminal when it cannot be written (a full disk)."""

    def handleError(self, record) -> None:
        pass


@contextlib.contextmanager
def off_terminal(path: Path | None = None):
    """Within the block, MLflow's log lines go to the file `path` (appended), or nowhere."""
    if debugging():
        yield
        return
    handler: logging.Handler
    if path is None:
        handler = logging.NullHandler()
    else:
        handler = _QuietFileHandler(path, delay=True, encoding="utf-8")
        handler.setFormatter(logging.Formatter(FORMAT))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(lg.handlers, lg.propagate, lg.level) for lg in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [handler], False
        if logger.name == "daeflow":
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        handler.close()
