"""Checkpoints to the run's artifacts, in the background, so a slow server never stalls training.

The newest checkpoint goes to `checkpoints/last`, the best to `checkpoints/best` (each
replaces the previous one). An upload that fails is left for later: the local run folder
keeps every checkpoint that matters until the run ends.
"""

import logging
import queue
from pathlib import Path

import mlflow

from daeflow.runtime.workers import Worker

LAST, BEST = "checkpoints/last", "checkpoints/best"


class CheckpointUploader:
    """One worker thread that uploads checkpoints in order, then runs `after` (pruning).

    An upload that fails is owed, not dropped: the newest and the best checkpoint not yet
    uploaded are tried again with the next one and when closing, so a server that comes
    back gets them; `owed` says what it never got.
    """

    def __init__(self, run_id: str, after=None):
        self.run_id, self.after = run_id, after
        self.pending: queue.Queue = queue.Queue()
        self.owed: dict[str, Path] = {}  # LAST / BEST -> the folder not yet uploaded there
        self.uploaded = 0
        self.worker = Worker(self._work, "uploads")
        self.worker.start()

    def submit(self, folder: Path, is_best: bool) -> None:
        """Upload this checkpoint folder (as the best one too, if it is); first, raise what
        ended the worker, if something did."""
        self.worker.raise_error()
        self.pending.put((Path(folder), is_best))

    def _work(self) -> None:
        client = mlflow.MlflowClient()
        while True:
            items = [self.pending.get()]
            while not self.pending.empty():  # only the newest and the best matter
                items.append(self.pending.get())
            for item in items:
                if item is not None:
                    folder, is_best = item
                    self.owed[LAST] = folder
                    if is_best:
                        self.owed[BEST] = folder
            for where, folder in list(self.owed.items()):
                if not folder.is_dir():  # pruned: a newer checkpoint replaced it
                    del self.owed[where]
                    continue
                try:
                    client.log_artifacts(self.run_id, str(folder), where)
                except Exception as exc:  # the local folder is the truth; try again later
                    logging.getLogger("daeflow.uploads").info("uploading %s failed: %s", where, exc)
                    break
                del self.owed[where]
                self.uploaded += 1
            if self.after is not None:
                self.after()
            if None in items:
                return

    def close(self, timeout: float = 120.0) -> None:
        """Wait (at most `timeout` seconds) for the uploads asked for, trying owed ones again."""
        self.pending.put(None)
        self.worker.join(timeout)
        self.worker.raise_error()


def upload_checkpoint(run_id: str, folder: Path, is_best: bool, client=None) -> None:
    """Upload one checkpoint folder as the run's last (and best, if it is) checkpoint."""
    client = client or mlflow.MlflowClient()
    client.log_artifacts(run_id, str(folder), LAST)
    if is_best:
        client.log_artifacts(run_id, str(folder), BEST)


def download_checkpoint(run_id: str, path: str, destination: Path) -> Path | None:
    """The run's uploaded checkpoint `path` (LAST or BEST) as a local folder, or None."""
    from mlflow.exceptions import MlflowException

    destination.mkdir(parents=True, exist_ok=True)
    try:
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=str(destination)
            )
        )
    except (MlflowException, OSError):
        return None
