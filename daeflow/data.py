"""Load and validate image arrays without reading them into memory."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.errors import DataError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
CHUNK_BYTES = 64 * 2**20


@dataclass
class ImageArray:
    """An (N, H, W, C) array on disk or in memory, read a few images at a time.

    A C-ordered .npy file is memory-mapped for its header and then read with
    positioned reads, so pages already used do not stay resident and memory does
    not grow with the dataset.
    """

    array: np.ndarray
    name: str
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def __len__(self) -> int:
        return self.array.shape[0]

    @property
    def _on_disk(self) -> bool:
        return isinstance(self.array, np.memmap) and self.array.flags.c_contiguous

    def read(self, indices) -> np.ndarray:
        """The images at `indices`, in that order, as a new in-memory array."""
        indices = np.asarray(indices, dtype=np.int64)
        if not self._on_disk:
            return np.array(self.array[indices])
        # Positioned reads do no bounds checking of their own: an index past the end
        # would leave np.empty's garbage in the batch, a negative one read the header.
        bad = (indices < -len(self)) | (indices >= len(self))
        if bad.any():
            raise IndexError(
                f"index {int(indices[bad][0])} is out of bounds for {len(self)} images"
            )
        indices = np.where(indices < 0, indices + len(self), indices)
        image_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        buffer = out.reshape(len(indices), -1).view(np.uint8)
        with open(self.array.filename, "rb", buffering=0) as f:
            for row, i in enumerate(indices):
                f.seek(self.array.offset + int(i) * image_bytes)
                if f.readinto(memoryview(buffer[row])) != image_bytes:
                    raise DataError(
                        f"{self.name} file {self.array.filename} ended before image {int(i)}; "
                        "it was truncated after it was opened. Save it again."
                    )
        return out

    def chunks(self):
        """Yield (start, images) over the whole array, a bounded number of bytes at a time."""
        image_bytes = max(1, int(np.prod(self.shape[1:])) * self.dtype.itemsize)
        step = max(1, CHUNK_BYTES // image_bytes)
        for start in range(0, len(self), step):
            yield start, self.read(np.arange(start, min(start + step, len(self))))


def _check_file(path: Path, what: str) -> bytes:
    if not path.exists():
        raise DataError(f"{what} file not found: {path}. Check the path and try again.")
    if path.is_dir():
        raise DataError(f"{what} path is a folder, not a file: {path}. Pass a .npy or .npz file.")
    try:
        with open(path, "rb") as f:
            return f.read(6)
    except OSError as exc:
        raise DataError(
            f"Cannot read {what} file {path}: {exc.strerror}. Check its permissions."
        ) from None


def load_array(path: str | os.PathLike, what: str, key: str | None = None) -> ImageArray:
    """Open a .npy (memory-mapped) or one key of a .npz, refusing anything that needs pickle."""
    path = Path(path)
    magic = _check_file(path, what)
    if magic.startswith(NPY_MAGIC):
        if key is not None:
            # Ignoring the key would hand back the same array for every key: clean == noisy.
            raise DataError(
                f"{what} file {path} is a single .npy array, not an .npz holding {key!r}. "
                "Pass .npy files with --clean/--noisy, or save an .npz with numpy.savez."
            )
        array = _load_npy(path, what)
    elif magic.startswith(ZIP_MAGIC[:4]):
        array = _load_npz(path, what, key)
    else:
        raise DataError(
            f"{what} file {path} is not a .npy or .npz file (wrong magic bytes). "
            "Save it with numpy.save or numpy.savez."
        )
    return ImageArray(array, what, path)


def _load_npy(path: Path, what: str) -> np.ndarray:
    with open(path, "rb") as f:
        try:
            major, _ = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            _, _, dtype = read_header(f)
        except ValueError as exc:
            raise DataError(
                f"{what} file {path} has a corrupt .npy header ({exc}). Save it again."
            ) from None
    if dtype.hasobject:
        raise DataError(
            f"{what} file {path} holds Python objects (dtype {dtype}), which would need pickle. "
            "Save a numeric array instead (e.g. array.astype('float32'))."
        )
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataError(
            f"{what} file {path} is truncated or corrupt ({exc}). Save it again."
        ) from None


def _load_npz(path: Path, what: str, key: str | None) -> np.ndarray:
    import zipfile

    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{what} file {path} is not a valid .npz archive ({exc}). Save it again."
        ) from None
    with archive:
        if key is None and len(archive.files) == 1:
            key = archive.files[0]
        if key not in archive.files:
            keys = ", ".join(archive.files) or "none"
            if key is None:
                raise DataError(
                    f"{what} file {path} holds {len(archive.files)} arrays ({keys}); expected "
                    "one. Save the array alone with numpy.save."
                )
            raise DataError(
                f"{what} key {key!r} not found in {path}; it has: {keys}. "
                "Choose one with --clean-key/--noisy-key."
            )
        try:
            return archive[key]
        except ValueError:
            raise DataError(
                f"{what} array {key!r} in {path} holds Python objects, which would need pickle. "
                "Save a numeric array instead."
            ) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"{what} array {key!r} in {path} is corrupt ({exc}). Save it again."
            ) from None


def as_images(images: ImageArray) -> ImageArray:
    """Check dtype and dimensions; give (N, H, W) a channel axis."""
    array, name = images.array, images.name
    if array.dtype.kind not in "uif":
        raise DataError(
            f"{name} array has dtype {array.dtype}, which is not numeric. "
            "Use uint8, uint16, int16, float32 or float64."
        )
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4:
        raise DataError(
            f"{name} array has {array.ndim} dimensions (shape {array.shape}); expected "
            "(N, H, W, C) or (N, H, W)."
        )
    if array.size == 0:
        raise DataError(f"{name} array is empty (shape {array.shape}). Pass at least one image.")
    return ImageArray(array, name, images.path)


def check_same_shape(clean: ImageArray, noisy: ImageArray) -> None:
    """Refuse clean and noisy arrays whose shapes differ."""
    if clean.shape != noisy.shape:
        raise DataError(
            f"Clean and noisy shapes differ: {clean.shape} vs {noisy.shape}. "
            "Pass aligned arrays of the same shape."
        )


def infer_data_range(images: ImageArray, given: float | None) -> tuple[float, str]:
    """The data range and a sentence saying where it came from."""
    if given is not None:
        return float(given), f"data range {given:g} (from --data-range)"
    if images.dtype == np.uint8:
        return 255.0, "data range 255 (uint8)"
    if images.dtype == np.uint16:
        return 65535.0, "data range 65535 (uint16; pass --data-range for e.g. 12-bit data)"
    observed = max(float(np.max(chunk)) for _, chunk in images.chunks() if chunk.size)
    if images.dtype.kind == "f" and 0 < observed <= 1:
        return (
            1.0,
            f"data range 1 (floats with maximum {observed:.4g}; pass --data-range to change)",
        )
    if observed <= 0:
        raise DataError(
            f"{images.name} array has no positive values, so no data range can be inferred. "
            "Pass --data-range."
        )
    return observed, f"data range {observed:g} (observed maximum; pass --data-range to change)"


def check_values(images: ImageArray, data_range: float, slack: float = 0.0) -> None:
    """Refuse NaN/Inf and values outside [-slack * R, (1 + slack) * R]: how many, and where."""
    low, high = 0.0 - slack * data_range, (1 + slack) * data_range  # not -0.0, which prints "-0"
    tests = {"NaN": np.isnan, "Inf": np.isinf} if images.dtype.kind == "f" else {}
    tests["outside"] = lambda c: (c < low) | (c > high)
    counts = dict.fromkeys(tests, 0)
    first: dict[str, tuple] = {}
    for start, chunk in images.chunks():
        for kind, test in tests.items():
            bad = test(chunk)
            count = np.count_nonzero(bad)
            if count and kind not in first:
                where = np.unravel_index(np.argmax(bad), bad.shape)
                first[kind] = ((int(where[0]) + start, *map(int, where[1:])), chunk[where])
            counts[kind] += count
    for kind in ("NaN", "Inf"):
        if counts.get(kind):
            where, _ = first[kind]
            raise DataError(
                f"{images.name} array has {counts[kind]} {kind} value(s); the first is at index "
                f"{where}. Remove or replace them (e.g. numpy.nan_to_num)."
            )
    if counts["outside"]:
        where, value = first["outside"]
        raise DataError(
            f"{images.name} array has {counts['outside']} value(s) outside [{low:g}, {high:g}] "
            f"(data range {data_range:g}); the first is {value:g} at index {where}. Pass the "
            "right --data-range or rescale the data."
        )


def check_multiple(images: ImageArray, multiple: int, arch: str, pad: bool) -> None:
    """Refuse heights/widths that the architecture cannot take, unless padding is on."""
    height, width = images.shape[1:3]
    if pad or (height % multiple == 0 and width % multiple == 0):
        return
    raise DataError(
        f"Architecture {arch!r} needs height and width that are multiples of {multiple}; "
        f"the images are {height}x{width}. Crop or pad them, or pass --pad."
    )
