"""Background threads that keep their failure for the thread that started them to raise.

Python's default `threading.excepthook` prints a traceback on the terminal when a thread
dies; a daeflow worker keeps the exception instead (and writes it to the "daeflow"
logger, which a run sends to its folder's log file), and the training thread raises it at
the next point it checks, through the one boundary that makes every failure one line.
"""

import logging
import threading

log = logging.getLogger("daeflow.workers")
PREFIX = "daeflow-"  # every worker's thread name: daeflow-<job>


class Worker(threading.Thread):
    """A daemon thread running `work()`; `error` is the exception that ended it, if any."""

    def __init__(self, work, job: str):
        super().__init__(name=PREFIX + job, daemon=True)
        self.work, self.error = work, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - kept, and raised by the training thread
            self.error = exc
            log.info("%s stopped: %s", self.name, exc, exc_info=True)

    def raise_error(self) -> None:
        """Raise the exception that ended the thread, if one did."""
        if self.error is not None:
            raise self.error
