"""New files like an input (.npy, TIFF, Zarr), to be filled through a writable view in the
canonical layout, so that the code that fills them knows no file format."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.data.axes import LazyArray, canonical_view
from daeflow.data.formats import Opened
from daeflow.data.tiff_files import TIFF_SUFFIXES
from daeflow.errors import UsageError


@dataclass
class Output:
    """A file being written: `view` takes the result (canonical layout, or the input's own
    shape for a .npy read without --axes); `close()` flushes it."""

    view: object
    mapped: object = None  # the np.memmap behind `view`, if any

    def close(self) -> None:
        if self.mapped is not None:
            self.mapped.flush()
            self.mapped = None


def check_output_format(opened: Opened | None, output: Path) -> None:
    """Refuse, before any work, an output that cannot take the input's format."""
    kind = opened.kind if opened is not None else "npy"
    if kind == "folder":
        raise UsageError(
            "denoise takes one file or store (.npy, .tif, Zarr), not a folder of images. "
            "Denoise the images one by one, or stack them into one file."
        )
    if kind == "tiff" and output.suffix.lower() not in TIFF_SUFFIXES:
        raise UsageError(
            f"A TIFF input is written as TIFF: give --output a .tif name. Received: {output}"
        )
    if kind == "zarr" and output.exists():
        raise UsageError(f"--output {output} exists; a Zarr store is written as a new folder.")


def create_like(opened: Opened | None, shape: tuple, dtype, path: Path) -> Output:
    """A new file at `path` like the input (`opened` None: a .npy of `shape`)."""
    if opened is None:
        mapped = _reserved(np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape))
        return Output(mapped, mapped)
    if opened.kind == "npy":
        mapped = np.lib.format.open_memmap(
            path, mode="w+", dtype=opened.dtype, shape=opened.array.shape
        )
        return Output(canonical_view(_reserved(mapped), opened.axes), mapped)
    if opened.kind == "tiff":
        from daeflow.data.tiff_files import create_tiff

        mapped = _reserved(create_tiff(path, opened.source))
        return Output(canonical_view(mapped, opened.axes), mapped)
    from daeflow.data.zarr_stores import create_zarr

    return Output(LazyArray(create_zarr(path, opened.source), opened.axes, writable=True))


def _reserved(mapped: np.memmap) -> np.memmap:
    """A file mapped for writing, its disk space reserved up front.

    Writing into a mapping on a full disk would kill the process (SIGBUS); reserving the
    space first turns that into an OSError before any work.
    """
    fd = os.open(mapped.filename, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (95, 22):  # EOPNOTSUPP, EINVAL: the file system cannot reserve
            raise
    finally:
        os.close(fd)
    return mapped


def remove(path: Path) -> None:
    """A partly written output (a file, or a Zarr folder), gone."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
