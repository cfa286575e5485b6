"""SIGTERM as an exception, so that work in progress is closed or cleaned up, not abandoned."""

import contextlib
import os
import signal
import threading

from daeflow.errors import Interrupted


@contextlib.contextmanager
def sigterm_raises(message: str = "Stopped by signal SIGTERM."):
    """Within the block, SIGTERM raises Interrupted(message) in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(message)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopSignals:
    """While a piece of work runs, the first Ctrl-C raises KeyboardInterrupt and the first
    SIGTERM raises Interrupted(message); from then on (or from `stopping()`), further ones
    are only acknowledged, so that the work can finish closing what it must.

    A signal handler raises in whatever Python code runs at that moment; if that is a
    `__del__` or a finalizer, Python prints the exception and drops it. The stop is kept
    in `requested` so that the work's own checkpoints (`raise_requested_stop`) raise it.
    """

    def __init__(self, message: str = "Stopped by signal SIGTERM."):
        self.message, self.previous, self.write = message, {}, None
        self.acknowledgement = "Stopping; one moment."
        self.requested: BaseException | None = None

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            signals = (signal.SIGINT, signal.SIGTERM)
            self.previous = {s: signal.signal(s, self._first) for s in signals}
        _open.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _open.remove(self)
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}

    def _first(self, signum, frame):
        self.stopping()
        self.requested = (
            KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(self.message)
        )
        raise self.requested

    def _acknowledge(self, signum, frame):
        if self.write is not None:
            self.write(self.acknowledgement)

    def stopping(self, acknowledgement: str | None = None, write=None) -> None:
        """From now on, Ctrl-C and SIGTERM only print `acknowledgement` (with `write`)."""
        if acknowledgement is not None:
            self.acknowledgement = acknowledgement
        if write is not None:
            self.write = write
        for number in self.previous:
            signal.signal(number, self._acknowledge)


_open: list[StopSignals] = []  # those entered and not yet left, innermost last


def innermost() -> StopSignals | None:
    """The StopSignals of the work running now, if any."""
    return _open[-1] if _open else None


def raise_requested_stop() -> None:
    """Raise the stop a signal asked for, if the code it landed in swallowed it."""
    stops = innermost()
    if stops is not None and stops.requested is not None:
        requested, stops.requested = stops.requested, None
        raise requested


# A test hook, not an option: the tests name a point of a run here to stop it there with
# SIGTERM, at a moment no timer could hit reliably (see tests/test_resilience.py).
TEST_STOP_AT = "DAEFLOW_TEST_STOP_AT"


def stop_point(name: str) -> None:
    """Send SIGTERM to this process if the test hook DAEFLOW_TEST_STOP_AT names this point."""
    if os.environ.get(TEST_STOP_AT) == name:
        os.kill(os.getpid(), signal.SIGTERM)
