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
from daeflow.runtime.workers import PREFIX

# MLflow's own loggers (mlflow.utils.logging_utils), urllib3's retry warnings, daeflow's threads.
LOGGERS = ("mlflow", "sqlalchemy.engine", "alembic", "huey", "urllib3", "daeflow")
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"


class _QuietFileHandler(logging.FileHandler):
    """A log file that says nothing on the terminal when it cannot be written (a full disk)."""

    def handleError(self, record) -> None:
        pass


class _NotFromWorkers(logging.Filter):
    """Drops the records of daeflow's background threads: a thread still sending when the
    block below has ended (the run failed, the error is on its way to the terminal) reports
    through the training thread, never on the terminal itself."""

    def filter(self, record) -> bool:
        return not record.threadName.startswith(PREFIX)


def _keep_workers_off(loggers) -> None:
    """Put the filter on the handlers these loggers have outside the block (MLflow's own)."""
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, _NotFromWorkers) for f in handler.filters):
                handler.addFilter(_NotFromWorkers())


@contextlib.contextmanager
def off_terminal(path: Path | None = None):
    """Within the block, MLflow's log lines go to the file `path` (appended), or nowhere;
    after it, those of daeflow's background threads still go nowhere."""
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
    _keep_workers_off([*loggers, logging.getLogger()])
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
