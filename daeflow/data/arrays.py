"""Load and validate image arrays without reading them into memory."""

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.data.axes import canonical_shape, canonical_view, check_axes, npy_axes, parse_axes
from daeflow.data.formats import Opened
from daeflow.errors import DataError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
BLOCK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class ArrayHeader:
    """What a .npy header says about its array: enough to check it before any of it is read."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool = False
    offset: int = 0  # bytes of magic and header before the data
    names: tuple[str, ...] | None = None  # a folder's file names, to match pairs by

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # Python ints: a lying shape cannot overflow

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


class _Counted:
    """A stream that counts what has been read from it (the .npy header's length)."""

    def __init__(self, stream):
        self.stream, self.count = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        return data


def read_npy_header(stream) -> ArrayHeader:
    """The header at the start of a .npy stream, read without its data; ValueError if corrupt."""
    counted = _Counted(stream)
    major, _ = np.lib.format.read_magic(counted)
    read = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read(counted)
    return ArrayHeader(tuple(shape), dtype, fortran_order, counted.count)


def available_memory() -> int | None:
    """Bytes of memory this process can still take (MemAvailable, or what a cgroup leaves).

    None where neither can be read (not Linux): then nothing is refused for its size.
    """
    found = []
    try:
        match = re.search(r"MemAvailable:\s*(\d+) kB", Path("/proc/meminfo").read_text())
        if match:
            found.append(int(match.group(1)) * 1024)
    except OSError:
        pass
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def readable_bytes(n: int) -> str:
    """A byte count as people read it: 2.0 GiB, 512 MiB, 800 bytes."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


@dataclass
class ImageArray:
    """An (N, H, W, C) array of images or (N, Z, Y, X, C) of volumes, on disk or in memory
    (or a lazy array read through its __getitem__), read a few images at a time.

    A C-ordered .npy file is memory-mapped for its header and then read with
    positioned reads from the file descriptor opened with it (so a file replaced
    later is not read by mistake), so pages already used do not stay resident and
    memory does not grow with the dataset.
    """

    array: np.ndarray
    name: str
    path: Path | None = None
    fd: int | None = None  # of the file the array was mapped from
    axes: str | None = None  # the file's axes, as given (--axes) or read (data.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def __len__(self) -> int:
        return self.array.shape[0]

    @property
    def spatial_dims(self) -> int:
        """2 for images (N, H, W, C), 3 for volumes (N, Z, Y, X, C)."""
        return len(self.shape) - 2

    def with_array(self, array: np.ndarray) -> "ImageArray":
        """The same file seen through another view of its array (e.g. a channel axis added)."""
        return ImageArray(array, self.name, self.path, self.fd, self.axes)

    @property
    def _on_disk(self) -> bool:
        return isinstance(self.array, np.memmap) and self.array.flags.c_contiguous

    def _read_at(self, reads) -> None:
        """Fill each (offset, writable view) from the file, or say that it was cut short."""
        fd = self.fd if self.fd is not None else os.open(self.array.filename, os.O_RDONLY)
        try:
            for offset, view, index in reads:
                if os.preadv(fd, [view], offset) != len(view):
                    raise DataError(
                        f"{self.name} file {self.array.filename} ended before image {index}; "
                        "it was truncated after it was opened. Save it again."
                    )
        finally:
            if fd != self.fd:
                os.close(fd)

    def read(self, indices) -> np.ndarray:
        """The images at `indices`, in that order, as a new in-memory array."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if not self._on_disk or not len(indices):
            return np.array(self.array[indices])
        indices = np.where(indices < 0, indices + len(self), indices)
        self._check_indices(indices)
        image_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        buffer = out.reshape(len(indices), -1).view(np.uint8)
        self._read_at(
            (self.array.offset + int(i) * image_bytes, memoryview(buffer[row]), int(i))
            for row, i in enumerate(indices)
        )
        return out

    def read_crops(self, indices, starts, size, *sizes_2d) -> np.ndarray:
        """The window of `size` (one length per spatial axis) at starts[k] of image indices[k].

        `starts` holds one row of spatial offsets per index, shape (k, dims). On disk only
        the window is read, one positioned read per contiguous run of it (an X row), so a
        patch of a huge image or volume costs the patch, not the image; a lazy array is
        read through `array[...]` with the window's slices. The 2D form
        read_crops(indices, tops, lefts, height, width) is still taken.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if sizes_2d:
            starts = np.stack([np.asarray(starts).reshape(-1), np.asarray(size).reshape(-1)], -1)
            size = tuple(sizes_2d)
        size = tuple(int(s) for s in size)
        dims = len(size)
        spatial = tuple(self.shape[1 : 1 + dims])
        if dims != len(self.shape) - 2:
            raise IndexError(
                f"a {dims}-dimensional window does not fit images of shape {self.shape[1:]}"
            )
        starts = np.asarray(starts, dtype=np.int64).reshape(len(indices), dims)
        out = np.empty((len(indices), *size, *self.shape[1 + dims :]), dtype=self.dtype)
        if len(indices) and (
            (starts < 0).any() or (starts + np.array(size) > np.array(spatial)).any()
        ):
            raise IndexError(
                f"a {'x'.join(map(str, size))} window at {starts.tolist()} does not fit in "
                f"images of {'x'.join(map(str, spatial))}"
            )
        if not self._on_disk or not len(indices):
            for k, (i, at) in enumerate(zip(indices, starts, strict=True)):
                window = tuple(slice(int(a), int(a) + s) for a, s in zip(at, size, strict=True))
                out[k] = self.array[(int(i), *window)]
            return out
        self._check_indices(indices)
        # C order: the last spatial axis runs contiguously; a window is read by its X rows.
        strides = self.array.strides[1 : 1 + dims]
        runs = list(np.ndindex(*size[:-1]))
        buffer = out.reshape(len(indices), len(runs), -1).view(np.uint8)
        self._read_at(
            (
                self.array.offset
                + int(i) * self.array.strides[0]
                + sum((int(a) + j) * st for a, j, st in zip(at, (*run, 0), strides, strict=True)),
                memoryview(buffer[k, r]),
                int(i),
            )
            for k, (i, at) in enumerate(zip(indices, starts, strict=True))
            for r, run in enumerate(runs)
        )
        return out

    def blocks(self, max_bytes: int | None = None):
        """Yield (image, row, block) over the whole array, at most about `max_bytes` at a time.

        `block` holds whole images (or volumes) starting at `image` (row 0), or, for one
        larger than `max_bytes`, a band of its first spatial axis (rows of an image, planes
        of a volume) starting at `row`. Blocks come in memory order, so hashing them in
        turn hashes the array's bytes.
        """
        max_bytes = max_bytes or BLOCK_BYTES
        row_bytes = max(1, int(np.prod(self.shape[2:], dtype=np.int64)) * self.dtype.itemsize)
        image_bytes = row_bytes * self.shape[1]
        if image_bytes <= max_bytes:
            step = max(1, max_bytes // image_bytes)
            for start in range(0, len(self), step):
                yield start, 0, self.read(np.arange(start, min(start + step, len(self))))
            return
        rows = max(1, max_bytes // row_bytes)
        rest = tuple(self.shape[2:-1])
        for i in range(len(self)):
            for top in range(0, self.shape[1], rows):
                band = min(rows, self.shape[1] - top)
                start = [[top] + [0] * len(rest)]
                yield i, top, self.read_crops([i], start, (band, *rest))

    def _check_indices(self, indices: np.ndarray) -> None:
        # Positioned reads do no bounds checking of their own: an index past the end
        # would leave np.empty's garbage in the batch, a negative one read the header.
        bad = (indices < 0) | (indices >= len(self))
        if bad.any():
            raise IndexError(
                f"index {int(indices[bad][0])} is out of bounds for {len(self)} images"
            )


def _check_file(path: Path, what: str) -> bytes:
    """The first bytes of a file (b"" for a folder of images or a Zarr store)."""
    from daeflow.data.image_folders import is_pattern

    if is_pattern(str(path)) and not path.exists():
        return b""
    if not path.exists():
        raise DataError(f"{what} file not found: {path}. Check the path and try again.")
    if path.is_dir():
        return b""
    try:
        with open(path, "rb") as f:
            return f.read(6)
    except OSError as exc:
        raise DataError(
            f"Cannot read {what} file {path}: {exc.strerror}. Check its permissions."
        ) from None


def load_array(
    path: str | os.PathLike,
    what: str,
    key: str | None = None,
    check: Callable[[ArrayHeader], None] | None = None,
    axes: str | None = None,
    with_format: bool = False,
):
    """Open a .npy (memory-mapped) or one key of a .npz, refusing anything that needs pickle;
    or a TIFF, a Zarr store or a folder (or glob) of images (daeflow.data.formats).

    The array's header is checked first (by `check` too, if given: e.g. the shape images
    need), so an array that would be refused costs its header, not its size in memory.
    `axes` (--axes, parsed): the file's axes; the array then comes in the canonical layout
    `(N, *spatial, C)`, as it always does for TIFF, Zarr and folders. A .npy or .npz without
    `axes` comes as saved, (N, H, W[, C]). `with_format`: return (ImageArray, Opened), the
    second saying how the file was read (None for a .npy or .npz without `axes`), which a
    writer of a file like it needs (daeflow.data.writers).
    """
    path, axes = Path(path), parse_axes(axes)
    magic = _check_file(path, what)
    opened = _open_other(path, what, key, magic, axes)
    if opened is not None:
        header = ArrayHeader(opened.shape, opened.dtype, names=opened.names)
        if check is not None:
            check(header)
        array = opened.canonical()
        fd = os.open(array.filename, os.O_RDONLY) if isinstance(array, np.memmap) else None
        loaded = ImageArray(array, what, path, fd, opened.axes)
        return (loaded, opened) if with_format else loaded
    if axes is not None and check is not None:
        check = _canonical_check(check, axes, f"{what} file {path}")
    if magic.startswith(NPY_MAGIC):
        if key is not None:
            # Ignoring the key would hand back the same array for every key: clean == noisy.
            raise DataError(
                f"{what} file {path} is a single .npy array, not an .npz holding {key!r}. "
                "Pass .npy files with --clean/--noisy, or save an .npz with numpy.savez."
            )
        array = _load_npy(path, what, check)
    elif magic.startswith(ZIP_MAGIC[:4]):
        array = _load_npz(path, what, key, check)
    else:
        raise _unknown_format(path, what)
    fd = os.open(path, os.O_RDONLY) if isinstance(array, np.memmap) else None
    if axes is None:
        loaded, opened = ImageArray(array, what, path, fd, npy_axes(array.ndim)), None
    else:
        loaded = ImageArray(canonical_view(array, axes), what, path, fd, axes)
        opened = Opened("npy", None, array, axes, axes)
    return (loaded, opened) if with_format else loaded


def _canonical_check(check, axes: str, where: str):
    """`check` of a canonical header, given a .npy's header as saved."""

    def checked(header: ArrayHeader) -> None:
        check_axes(axes, header.shape, where)
        check(ArrayHeader(canonical_shape(header.shape, axes), header.dtype))

    return checked


def _unknown_format(path: Path, what: str) -> DataError:
    return DataError(
        f"{what} file {path} is not a .npy, .npz or TIFF file (wrong magic bytes), nor a "
        "Zarr store or a folder of images. Save it with numpy.save or tifffile.imwrite."
    )


def _open_other(path: Path, what: str, key: str | None, magic: bytes, axes: str | None):
    """A TIFF, Zarr store or folder opened by its reader (None: a .npy or .npz)."""
    if magic.startswith(NPY_MAGIC) or magic.startswith(ZIP_MAGIC[:4]):
        return None
    from daeflow.data.formats import open_path

    opened = open_path(path, what, axes, magic)
    if opened is None:
        raise _unknown_format(path, what)
    return opened


def read_header(
    path: str | os.PathLike, what: str, key: str | None = None, axes: str | None = None
) -> ArrayHeader:
    """The checked header of a .npy file or of one key of a .npz (or of a TIFF, Zarr store
    or folder, in the canonical layout, as with `axes`); no data is read."""
    path, axes = Path(path), parse_axes(axes)
    magic = _check_file(path, what)
    opened = _open_other(path, what, key, magic, axes)
    if opened is not None:
        return ArrayHeader(opened.shape, opened.dtype, names=opened.names)
    if magic.startswith(ZIP_MAGIC[:4]):
        with _open_npz(path, what) as archive:
            info, where = _npz_member(archive, path, what, key)
            with archive.open(info) as stream:
                header = _npz_header(stream, info, where)
    else:
        header = _npy_file_header(path, what)
    if axes is None:
        return header
    check_axes(axes, header.shape, f"{what} file {path}")
    return ArrayHeader(canonical_shape(header.shape, axes), header.dtype)


def _npy_file_header(path: Path, what: str) -> ArrayHeader:
    with open(path, "rb") as f:
        try:
            header = read_npy_header(f)
        except ValueError as exc:
            raise DataError(
                f"{what} file {path} has a corrupt .npy header ({exc}). Save it again."
            ) from None
    if header.dtype.hasobject:
        raise DataError(
            f"{what} file {path} holds Python objects (dtype {header.dtype}), which would need "
            "pickle. Save a numeric array instead (e.g. array.astype('float32'))."
        )
    holds = path.stat().st_size
    if header.offset + header.nbytes > holds:
        raise DataError(
            f"{what} file {path} is truncated or corrupt: its header says "
            f"{header.offset + header.nbytes} bytes ({header.shape} {header.dtype}) but it "
            f"holds {holds}. Save it again."
        )
    return header


def _load_npy(path: Path, what: str, check=None) -> np.ndarray:
    header = _npy_file_header(path, what)
    if check is not None:
        check(header)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataError(
            f"{what} file {path} is truncated or corrupt ({exc}). Save it again."
        ) from None


def _open_npz(path: Path, what: str):
    import zipfile

    try:
        return zipfile.ZipFile(path)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{what} file {path} is not a valid .npz archive ({exc}). Save it again."
        ) from None


def _npz_member(archive, path: Path, what: str, key: str | None):
    """The zip entry of `key` (numpy.savez's keys: member names without '.npy')."""
    members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
    if key is None and len(members) == 1:
        key = next(iter(members))
    if key not in members:
        keys = ", ".join(members) or "none"
        if key is None:
            raise DataError(
                f"{what} file {path} holds {len(members)} arrays ({keys}); expected "
                "one. Save the array alone with numpy.save."
            )
        raise DataError(
            f"{what} key {key!r} not found in {path}; it has: {keys}. "
            "Choose one with --clean-key/--noisy-key."
        )
    return members[key], f"{what} array {key!r} in {path}"


def _npz_header(stream, info, where: str) -> ArrayHeader:
    """The member's .npy header, checked against the size the zip directory gives it."""
    try:
        header = read_npy_header(stream)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{where} is not a valid .npy array ({exc}). Save it again.") from None
    if header.dtype.hasobject:
        raise DataError(
            f"{where} holds Python objects, which would need pickle. Save a numeric array instead."
        )
    says = header.offset + header.nbytes
    if says != info.file_size:
        raise DataError(
            f"{where} says {says} bytes ({header.shape} {header.dtype}) but holds "
            f"{info.file_size}: the archive is corrupt or forged. Save it again."
        )
    return header


def _load_npz(path: Path, what: str, key: str | None, check=None) -> np.ndarray:
    """Inflate one member of a .npz into memory, after its header has been checked.

    numpy.load would inflate the whole member before anything could be checked; here the
    header decides first, and the data are read in blocks into an array of the size it
    declares, so a member that would inflate to more than it says takes no more memory.
    """
    import zipfile
    import zlib

    with _open_npz(path, what) as archive:
        info, where = _npz_member(archive, path, what, key)
        try:
            with archive.open(info) as stream:
                header = _npz_header(stream, info, where)
                if check is not None:
                    check(header)
                _check_memory(header, where)
                return _read_data(stream, header, where)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            raise DataError(f"{where} is corrupt ({exc}). Save it again.") from None


def _check_memory(header: ArrayHeader, where: str) -> None:
    available = available_memory()
    if available is not None and header.nbytes > available:
        raise DataError(
            f"{where} takes {readable_bytes(header.nbytes)} in memory ({header.shape} "
            f"{header.dtype}), more than the {readable_bytes(max(available, 0))} available. "
            "Save it as a .npy file (numpy.save): daeflow reads those from disk."
        )


def _read_data(stream, header: ArrayHeader, where: str) -> np.ndarray:
    """The data after the header, read in blocks into the array; fewer bytes are refused.

    zipfile never inflates more than the member's size in the zip directory (checked to
    equal the header's), and checks the CRC when it reaches that size.
    """
    shape = header.shape[::-1] if header.fortran_order else header.shape
    array = np.empty(shape, dtype=header.dtype)
    buffer = memoryview(array.reshape(-1).view(np.uint8)) if header.nbytes else memoryview(b"")
    done = 0
    while done < header.nbytes:
        block = stream.read(min(BLOCK_BYTES, header.nbytes - done))
        if not block:
            raise DataError(
                f"{where} ends after {done} of the {header.nbytes} bytes its header says. "
                "Save it again."
            )
        buffer[done : done + len(block)] = block
        done += len(block)
    return array.T if header.fortran_order else array


def check_image_layout(array: np.ndarray | ArrayHeader, name: str) -> None:
    """Refuse what cannot be images: a non-numeric dtype, not (N, H, W[, C]) nor volumes
    (N, Z, Y, X, C), no image.

    Works on a header as on an array, so a file can be refused before it is read.
    """
    if array.dtype.kind not in "uif":
        raise DataError(
            f"{name} array has dtype {array.dtype}, which is not numeric. "
            "Use uint8, uint16, int16, float32 or float64."
        )
    if array.ndim not in (3, 4, 5):
        raise DataError(
            f"{name} array has {array.ndim} dimensions (shape {array.shape}); expected "
            "(N, H, W, C) or (N, H, W) images, or (N, Z, Y, X, C) volumes."
        )
    if array.size == 0:
        shape = array.shape if array.ndim > 3 else (*array.shape, 1)
        raise DataError(f"{name} array is empty (shape {shape}). Pass at least one image.")


def as_images(images: ImageArray) -> ImageArray:
    """Check dtype and dimensions; give (N, H, W) a channel axis ((N, H, W, C) images and
    (N, Z, Y, X, C) volumes stay as they are)."""
    check_image_layout(images.array, images.name)
    array = images.array
    return images.with_array(array[..., np.newaxis] if array.ndim == 3 else array)
