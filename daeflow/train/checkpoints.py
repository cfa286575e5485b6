"""Checkpoints: everything needed to continue a run exactly, written so a crash cannot break it.

A checkpoint is a folder `epoch-NNNN` holding the compiled model with its optimizer state
(`model.keras`) and the TrainingState (`state.json`: epochs done, history, best epoch and
val_psnr, early-stopping count, time used). It is written under a temporary name and
renamed, so a crash mid-write leaves the previous checkpoint whole; `latest` names the
newest. The best epoch's checkpoint is kept, so the best weights are never lost; the
batches themselves need no saved state (see daeflow.train.pipeline).
"""

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from daeflow.backend import load_keras
from daeflow.errors import TrainingError
from daeflow.train.callbacks import TrainingState

keras = load_keras()

LATEST = "latest"


def _write_text(path: Path, text: str) -> None:
    """Replace a small file atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


class Checkpointer(keras.callbacks.Callback):
    """Writes a checkpoint every `every_epochs` epochs or `every_seconds` seconds, and at the
    end; keeps the newest, the best and `keep` more; hands each new one to `on_written`."""

    def __init__(
        self,
        folder: Path,
        state: TrainingState,
        every_epochs: int = 1,
        every_seconds: float | None = None,
        keep: int = 0,
        on_written=None,
    ):
        super().__init__()
        self.folder, self.state = Path(folder), state
        self.every_epochs, self.every_seconds, self.keep = every_epochs, every_seconds, keep
        self.on_written, self.last_time, self.last_epoch = on_written, time.monotonic(), None
        self.folder.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        due = (
            self.every_seconds is not None
            and time.monotonic() - self.last_time >= self.every_seconds
        ) or (self.every_seconds is None and self.state.epoch % self.every_epochs == 0)
        if due:
            self.write()

    def on_train_end(self, logs=None):
        if self.state.epoch and self.last_epoch != self.state.epoch:
            self.write()  # the last epoch, before the best weights are put back

    def write(self) -> Path:
        """Write the checkpoint of the epochs done so far; returns its folder."""
        epoch = self.state.epoch
        final = self.folder / checkpoint_name(epoch)
        temporary = self.folder / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        self.model.save(temporary / "model.keras")
        (temporary / "state.json").write_text(json.dumps(self.state.as_dict()))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        _write_text(self.folder / LATEST, final.name)
        self.last_time, self.last_epoch = time.monotonic(), epoch
        if self.on_written is not None:
            self.on_written(final, self.state.best_epoch == epoch)
        else:
            prune(self.folder, self.keep)
        return final


def prune(folder: Path, keep: int = 0) -> None:
    """Delete checkpoints but the newest, the best and `keep` more of the newest."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.glob("epoch-*") if p.is_dir())
    if not names:
        return
    newest = names[-1]
    state = json.loads((folder / newest / "state.json").read_text())
    kept = {newest, checkpoint_name(state["best_epoch"])} | set(names[-1 - keep :])
    for name in names:
        if name not in kept:
            shutil.rmtree(folder / name, ignore_errors=True)


@dataclass
class Checkpoint:
    """A checkpoint read back: the compiled model, the state and the best epoch's weights."""

    model: object
    state: TrainingState


def latest(folder: Path) -> Path | None:
    """The newest whole checkpoint in `folder`, or None."""
    folder = Path(folder)
    pointer = folder / LATEST
    if pointer.is_file():
        candidate = folder / pointer.read_text().strip()
        if (candidate / "state.json").is_file() and (candidate / "model.keras").is_file():
            return candidate
    whole = sorted(p for p in folder.glob("epoch-*") if (p / "state.json").is_file() and p.is_dir())
    return whole[-1] if whole else None


def read(folder: Path) -> Checkpoint:
    """The newest checkpoint of a run folder, with the best weights so far."""
    from daeflow.backend import load_keras_file

    newest = latest(folder)
    if newest is None:
        raise TrainingError(f"No checkpoint in {folder}; this run cannot be resumed.")
    state = TrainingState.from_dict(json.loads((newest / "state.json").read_text()))
    model = load_keras_file(newest / "model.keras", compile=True)
    if state.best_epoch:
        best = Path(folder) / checkpoint_name(state.best_epoch)
        source = model if best == newest else load_keras_file(best / "model.keras")
        state.best_weights = source.get_weights()
    return Checkpoint(model, state)
