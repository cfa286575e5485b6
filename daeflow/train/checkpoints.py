"""Checkpoints: everything needed to continue a run exactly, written so a crash cannot break it.

A checkpoint is a folder `epoch-NNNN` holding the compiled model with its optimizer state
(`model.keras`) and the TrainingState (`state.json`: epochs done, history, best epoch and
val_psnr, early-stopping count, time used). It is written under a temporary name and
renamed, so a crash mid-write leaves the previous checkpoint whole; `latest` names the
newest. The best epoch's checkpoint is kept, so the best weights are never lost; where the
best epoch has none (checkpoints every N epochs or minutes, validation every M), the
checkpoint holds the best weights themselves (`best-weights.npz`, arrays only). The
batches need no saved state (see daeflow.train.pipeline).
"""

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.runtime import disks
from daeflow.runtime.backend import load_keras
from daeflow.train.callbacks import TrainingState

keras = load_keras()

LATEST = "latest"  # a file naming the newest checkpoint
STATE = "state.json"  # the TrainingState of a checkpoint
MODEL = "model.keras"  # the compiled model with its optimizer state
BEST_WEIGHTS = "best-weights.npz"  # the best epoch's weights, where it has no checkpoint
SET_ASIDE = "unreadable-"  # prefix of a checkpoint that could not be read


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
        try:
            with disks.naming(temporary):
                temporary.mkdir()
                self.model.save(temporary / MODEL)
                (temporary / STATE).write_text(json.dumps(self.state.as_dict()))
                best = self.state.best_epoch
                if best not in (0, epoch) and not _whole(self.folder / checkpoint_name(best)):
                    np.savez(temporary / BEST_WEIGHTS, *self.state.best_weights)
                shutil.rmtree(final, ignore_errors=True)
                os.replace(temporary, final)
                _write_text(self.folder / LATEST, final.name)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)  # the room it took, on a full disk
            raise
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
    try:
        best = checkpoint_name(json.loads((folder / newest / STATE).read_text())["best_epoch"])
    except (OSError, ValueError, KeyError):
        return  # a damaged newest checkpoint: keep everything for --resume to choose from
    kept = {newest, best} | set(names[-1 - keep :])
    for name in names:
        if name not in kept:
            shutil.rmtree(folder / name, ignore_errors=True)


@dataclass
class Checkpoint:
    """A checkpoint read back: the compiled model, the state and the best epoch's weights."""

    model: object
    state: TrainingState


def _whole(path: Path) -> bool:
    return path.is_dir() and (path / STATE).is_file() and (path / MODEL).is_file()


def newest_first(folder: Path) -> list[Path]:
    """The whole checkpoints of `folder`: the one `latest` names, then the others, newest first."""
    folder = Path(folder)
    found = sorted((p for p in folder.glob("epoch-*") if _whole(p)), reverse=True)
    pointer = folder / LATEST
    if pointer.is_file():
        named = folder / pointer.read_text().strip()
        if named in found:
            found.remove(named)
            found.insert(0, named)
    return found


def latest(folder: Path) -> Path | None:
    """The newest whole checkpoint in `folder`, or None."""
    found = newest_first(folder)
    return found[0] if found else None


def best_of(folder: Path, checkpoint: Path) -> Path:
    """The checkpoint folder of the best epoch as `checkpoint`'s state records it."""
    state = json.loads((checkpoint / STATE).read_text())
    return Path(folder) / checkpoint_name(state["best_epoch"])


class Unreadable(Exception):
    """A checkpoint whose state or model cannot be read (a truncated or damaged file)."""


def read_one(folder: Path, checkpoint: Path) -> Checkpoint:
    """One checkpoint of `folder`, with the best weights so far from its best epoch's."""
    from daeflow.errors import DaeflowError, one_line
    from daeflow.runtime.backend import load_keras_file
    from daeflow.train import averaging  # noqa: F401  (registers AveragingAdam for Keras)

    try:
        state = TrainingState.from_dict(json.loads((checkpoint / STATE).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Unreadable(f"its {STATE}: {type(exc).__name__}: {exc}") from None
    from daeflow.train.objectives import loss_class

    loss_class()  # an objective's own loss compiles again from the file
    try:
        model = load_keras_file(checkpoint / MODEL, compile=True)
    except (DaeflowError, OSError, ValueError) as exc:
        raise Unreadable(f"its {MODEL}: {one_line(exc, 160)}") from None
    if state.best_epoch and (checkpoint / BEST_WEIGHTS).is_file():
        try:
            with np.load(checkpoint / BEST_WEIGHTS, allow_pickle=False) as stored:
                state.best_weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]
        except (OSError, ValueError) as exc:
            raise Unreadable(f"its {BEST_WEIGHTS}: {one_line(exc, 160)}") from None
    elif state.best_epoch:
        best = Path(folder) / checkpoint_name(state.best_epoch)
        try:
            source = model if best == checkpoint else load_keras_file(best / MODEL)
        except (DaeflowError, OSError, ValueError) as exc:
            raise Unreadable(
                f"its best epoch's checkpoint {best.name}: {one_line(exc, 160)}"
            ) from None
        state.best_weights = source.get_weights()
    return Checkpoint(model, state)


def read_newest(folder: Path, write=print) -> tuple[Checkpoint, Path] | tuple[None, None]:
    """The newest checkpoint of `folder` that can be read, and its folder.

    Each one that cannot be read is said in one line and set aside (renamed, not deleted),
    and the next is tried.
    """
    for checkpoint in newest_first(folder):
        try:
            return read_one(folder, checkpoint), checkpoint
        except Unreadable as exc:
            aside = checkpoint.with_name(SET_ASIDE + checkpoint.name)
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(checkpoint, aside)
            write(
                f"Checkpoint {checkpoint.name} cannot be read ({exc}); set aside as {aside.name}."
            )
    return None, None


def adopt(folder: Path, downloaded: Path) -> Path | None:
    """Move a downloaded checkpoint into `folder` under its epoch's name; None if not whole."""
    try:
        epoch = json.loads((downloaded / STATE).read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return None
    target = Path(folder) / checkpoint_name(epoch)
    if not _whole(target):
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(downloaded), target)
    return target
