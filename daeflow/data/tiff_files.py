"""TIFF and OME-TIFF files (tifffile): axes from their metadata, memory-mapped where the
file allows it, else read lazily tile by tile or strip by strip through a Zarr view."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daeflow.data.axes import agreed_axes
from daeflow.errors import DataError

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
TIFF_SUFFIXES = (".tif", ".tiff")
# tifffile's axis letters as daeflow's: its S is the samples of a pixel (RGB), a channel axis.
TIFFFILE_LETTERS = {"T": "T", "Z": "Z", "C": "C", "Y": "Y", "X": "X", "S": "C"}


@dataclass
class TiffSource:
    """The first series of a TIFF file, in its own axis order, and what a copy needs."""

    array: object  # np.memmap, or a read-only Zarr array over the file's pages
    axes: str
    shape: tuple
    dtype: np.dtype
    write_options: dict = field(default_factory=dict)  # for tifffile.memmap of the output


def is_tiff(magic: bytes) -> bool:
    """Whether a file's first bytes are a TIFF or BigTIFF header."""
    return magic[:4] in TIFF_MAGIC


def metadata_axes(tif, series) -> str | None:
    """The axes the file's OME, ImageJ or tifffile metadata (or an RGB photometric) give,
    as daeflow letters; None where they do not say."""
    letters = series.axes
    said = tif.is_ome or tif.is_imagej or _shaped_axes(tif) is not None
    if not said and set(letters) - set("YXS"):
        return None  # tifffile's guesses (Q, I) for pages: a stack of what?
    mapped = "".join(TIFFFILE_LETTERS.get(letter, "?") for letter in letters)
    if "?" in mapped or len(set(mapped)) != len(mapped):
        return None
    return mapped


def _shaped_axes(tif) -> str | None:
    shaped = tif.shaped_metadata
    return shaped[0].get("axes") if tif.is_shaped and shaped else None


def open_tiff(path: Path, what: str, axes: str | None) -> TiffSource:
    """The first series of a TIFF, its axes agreed with --axes, no pixel read."""
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
        series = tif.series[0]
        shape, dtype = tuple(series.shape), np.dtype(series.dtype)
    except (OSError, ValueError, IndexError, tifffile.TiffFileError) as exc:
        raise DataError(
            f"{what} file {path} is not a readable TIFF ({exc}). Save it again."
        ) from None
    where = f"{what} file {path}"
    axes = agreed_axes(metadata_axes(tif, series), axes, shape, where)
    options = _write_options(tif, series, axes)
    if series.dataoffset is not None and len(tif.series) >= 1 and not series.is_multifile:
        tif.close()
        array = np.memmap(
            path, dtype.newbyteorder(tif.byteorder), "r", series.dataoffset, shape=shape
        )
        return TiffSource(array, axes, shape, np.dtype(array.dtype), options)
    import zarr

    try:
        array = zarr.open_array(series.aszarr(), mode="r")
    except Exception as exc:  # tifffile and zarr raise many kinds for a file they cannot map
        tif.close()
        raise DataError(f"{where} cannot be read lazily ({exc}). Save it again.") from None
    return TiffSource(array, axes, shape, dtype, options)


def _write_options(tif, series, axes: str) -> dict:
    """What tifffile.memmap needs to write a file like this one: its OME-XML or ImageJ
    metadata carried over, or the axes in tifffile's own description."""
    page = series.keyframe
    options = {"photometric": "rgb" if page.photometric == 2 else "minisblack"}
    if tif.is_ome:
        return {**options, "description": tif.ome_metadata, "metadata": None}
    if tif.is_imagej:
        imagej = {"axes": series.axes}
        return {**options, "imagej": True, "metadata": imagej}
    letters = "".join("S" if a == "C" and options["photometric"] == "rgb" else a for a in axes)
    return {**options, "metadata": {"axes": letters}}


def create_tiff(path: Path, like: TiffSource) -> np.memmap:
    """A new TIFF shaped like `like` (same axes and metadata), memory-mapped for writing."""
    import tifffile

    return tifffile.memmap(path, shape=like.shape, dtype=like.dtype, **like.write_options)
