"""What a run logs while it trains goes to a local journal first, then to MLflow from a thread.

Training never waits for the tracking server: each epoch's metrics, tags and probe
picture are appended to `journal.jsonl` in the run's folder (pictures as PNG files beside
it) and sent, in order, by one worker thread. When the server does not answer, the worker
waits and tries again (5 s, doubling, at most a minute apart) while training goes on; what
was sent is counted in `journal.sent`, so `daeflow sync` can send the rest later.
A local file that cannot be written (a full disk) ends the worker; the training thread
raises that error at its next record or at `close`.
"""

import json
import logging
import os
import threading
import time
from pathlib import Path

import mlflow
import numpy as np

from daeflow.runtime import disks
from daeflow.runtime.workers import Worker

JOURNAL, SENT = "journal.jsonl", "journal.sent"
FIRST_WAIT, LONGEST_WAIT, HURRIED_WAIT = 5.0, 60.0, 2.0


class Journal:
    """Append records; a worker sends them to the run in order; `close` waits a bounded time."""

    def __init__(self, run_id: str, folder: Path, start_sender: bool = True):
        self.run_id, self.folder = run_id, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / JOURNAL
        self.lock = threading.Condition()
        self.records = _read(self.path)
        self.sent = _sent(self.folder)
        self.closing = False
        self.hurry = False  # the run is ending: retry every HURRIED_WAIT seconds
        self.last_error: str | None = None
        self.last_failure: Exception | None = None  # the store's latest refusal, if any
        self.worker = None
        if start_sender:
            self.worker = Worker(self._send_all, "journal")
            self.worker.start()

    # Recording (the training thread)

    def metrics(self, values: dict, step: int | None = None) -> None:
        self._append({"kind": "metrics", "values": values, "step": step, "time": _now_ms()})

    def tags(self, values: dict) -> None:
        self._append({"kind": "tags", "values": {k: str(v) for k, v in values.items()}})

    def image(self, picture: np.ndarray, key: str, step: int) -> None:
        from PIL import Image

        self._raise_worker_error()
        name = f"image-{len(self.records):06d}.png"
        with disks.naming(self.folder / name):
            Image.fromarray(picture).save(self.folder / name)
        self._append({"kind": "image", "file": name, "key": key, "step": step})

    def _append(self, record: dict) -> None:
        self._raise_worker_error()
        with self.lock:
            with disks.naming(self.path), open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.records.append(record)
            self.lock.notify_all()

    def _raise_worker_error(self) -> None:
        """The worker's own failure (writing its count on a full disk), in this thread."""
        if self.worker is not None:
            self.worker.raise_error()

    def stuck_on_full_disk(self) -> bool:
        """Whether the store refuses the records because its disk is full (no use waiting)."""
        return (
            self.pending() > 0
            and self.last_failure is not None
            and disks.is_full(self.last_failure)
        )

    # Sending (the worker)

    def last_step(self) -> int:
        """The highest epoch (step) recorded in the journal, sent or not."""
        with self.lock:
            steps = [r.get("step") or 0 for r in self.records if r["kind"] == "metrics"]
        return max(steps, default=0)

    def pending(self) -> int:
        with self.lock:
            return len(self.records) - self.sent

    def _send_all(self) -> None:
        client, wait = mlflow.MlflowClient(), FIRST_WAIT
        while True:
            with self.lock:
                while self.sent == len(self.records) and not self.closing:
                    self.lock.wait()
                if self.sent == len(self.records) and self.closing:
                    return
                record = self.records[self.sent]
            try:
                self.send(client, record)
            except Exception as exc:  # the server is away: keep the record, try again later
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                self.last_failure = exc
                logging.getLogger("daeflow.journal").info("sending a record failed: %s", exc)
                with self.lock:
                    if self.closing:
                        return
                    self.lock.wait(HURRIED_WAIT if self.hurry else wait)
                wait = min(LONGEST_WAIT, wait * 2)
                continue
            wait, self.last_failure = FIRST_WAIT, None
            with self.lock:
                self.sent += 1
                _write_sent(self.folder, self.sent)
                self.lock.notify_all()

    def send(self, client, record: dict) -> None:
        """Send one record to the run."""
        from mlflow.entities import Metric, RunTag

        kind = record["kind"]
        if kind == "metrics":
            step, stamp = record["step"] or 0, record.get("time") or _now_ms()
            client.log_batch(
                self.run_id,
                metrics=[Metric(k, float(v), stamp, step) for k, v in record["values"].items()],
            )
        elif kind == "tags":
            client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in record["values"].items()])
        elif kind == "image":
            from PIL import Image

            with Image.open(self.folder / record["file"]) as picture:
                client.log_image(
                    self.run_id, np.asarray(picture), key=record["key"], step=record["step"]
                )

    def close(self, timeout: float) -> int:
        """Wait at most `timeout` seconds for the records to be sent; the number left over."""
        deadline = time.monotonic() + timeout
        with self.lock:
            self.hurry = True  # wake a worker waiting to retry: try now, then every 2 s
            self.lock.notify_all()
            while (
                self.sent < len(self.records)
                and time.monotonic() < deadline
                and self.worker is not None
                and self.worker.is_alive()
                and not self.stuck_on_full_disk()
            ):
                self.lock.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            self.closing = True
            self.lock.notify_all()
        self._raise_worker_error()
        with self.lock:
            return len(self.records) - self.sent

    def send_rest(self) -> int:
        """Send every record not yet sent, in this thread (for `daeflow sync`); the count."""
        client, count = mlflow.MlflowClient(), 0
        while self.sent < len(self.records):
            self.send(client, self.records[self.sent])
            self.sent += 1
            _write_sent(self.folder, self.sent)
            count += 1
        return count


def _now_ms() -> int:
    return int(time.time() * 1000)


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a crash: what follows cannot be trusted
    return records


def _sent(folder: Path) -> int:
    try:
        return int((folder / SENT).read_text())
    except (OSError, ValueError):
        return 0


def _write_sent(folder: Path, count: int) -> None:
    temporary = folder / f".{SENT}.tmp"
    with disks.naming(temporary):
        temporary.write_text(str(count))
    os.replace(temporary, folder / SENT)
