"""The axes of an image file (`--axes`) and the canonical layout daeflow works in.

A file names its axes with the letters S, T, C, Z, Y, X in its own order. Inside
daeflow every array is `(N, *spatial, C)`: `(N, Y, X, C)` for images, `(N, Z, Y, X, C)`
for volumes. S and T both become N (S outer, T inner); a missing C is a channel axis of
1 and missing S/T make N = 1. `canonical_view` gives that layout over any array-like
without reading it: a NumPy view where one exists, else a `LazyArray` that reads only
what is asked.
"""

import math

import numpy as np

from daeflow.errors import DataError, UsageError

LETTERS = "STCZYX"
SAMPLE_AXES = "ST"  # both become the canonical sample axis N, S outer
AXES_PARAM = "data.axes"  # the file's axes, as given or read
NPY_AXES = {3: "SYX", 4: "SYXC", 5: "SZYXC"}  # what a .npy is read as without --axes


def parse_axes(text: str | None) -> str | None:
    """`--axes` checked and upper-cased (None stays None): letters S T C Z Y X, each at most
    once, Y and X required."""
    if text is None:
        return None
    axes = text.strip().upper()
    for letter in axes:
        if letter not in LETTERS:
            raise UsageError(
                f"--axes takes the letters S, T, C, Z, Y, X; {letter!r} is not one of them. "
                f"Received: {text!r}"
            )
        if axes.count(letter) > 1:
            raise UsageError(f"--axes names {letter!r} twice. Received: {text!r}")
    missing = [letter for letter in "YX" if letter not in axes]
    if missing:
        raise UsageError(
            f"--axes needs Y and X (rows and columns); {missing[0]!r} is missing. "
            f"Received: {text!r}"
        )
    return axes


def canonical_axes(axes: str) -> str:
    """The canonical axes of a file's axes, without N: 'YXC' for images, 'ZYXC' for volumes."""
    return axes_of_dims(spatial_dims(axes))


def axes_of_dims(dims: int) -> str:
    """The canonical axes of data with `dims` spatial dimensions, without N: what a model's
    metadata `axes` says."""
    return "ZYXC" if dims == 3 else "YXC"


def spatial_dims(axes: str) -> int:
    """2 for images, 3 for volumes."""
    return 3 if "Z" in axes else 2


def check_axes(axes: str, shape: tuple, where: str) -> None:
    """Refuse axes whose count differs from the file's dimensions."""
    if len(axes) != len(shape):
        raise DataError(
            f"{where} has {len(shape)} dimensions (shape {tuple(shape)}) but --axes {axes} "
            f"names {len(axes)}. Pass one letter per dimension, in the file's order."
        )


def canonical_shape(shape: tuple, axes: str) -> tuple:
    """The `(N, *spatial, C)` shape of a file of `shape` and `axes`."""
    size = dict(zip(axes, shape, strict=True))
    n = math.prod(size.get(a, 1) for a in SAMPLE_AXES)
    return (n, *(size.get(a, 1) for a in canonical_axes(axes)))


def npy_axes(ndim: int) -> str | None:
    """The axes a .npy of `ndim` dimensions is read as without --axes (None: not images)."""
    return NPY_AXES.get(ndim)


def logged_axes(images) -> str:
    """The param `data.axes` of an ImageArray: the file's axes as given or read (an
    in-memory array: as a .npy of its shape is read)."""
    return images.axes or npy_axes(images.array.ndim) or "SYXC"


def default_axes(shape: tuple, where: str, given: str | None = None) -> str:
    """`given` checked against `shape`, else YX for 2-D data, else a refusal asking for it."""
    if given is not None:
        check_axes(given, shape, where)
        return given
    if len(shape) == 2:
        return "YX"
    raise DataError(
        f"{where} has shape {tuple(shape)} and no axes in its metadata: pass --axes with one "
        f"letter per dimension (e.g. {'SYX or ZYX' if len(shape) == 3 else 'SZYX, TZYX or CZYX'})."
    )


def agreed_axes(read: str | None, given: str | None, shape: tuple, where: str) -> str:
    """The axes of a file: those in its metadata (`read`), which --axes must not contradict,
    else --axes, else the default for its shape."""
    if read is not None:
        if given is not None and given != read:
            raise DataError(
                f"--axes {given} contradicts {where}, whose metadata says its axes are "
                f"{read} (shape {tuple(shape)}). Drop --axes or pass --axes {read}."
            )
        check_axes(read, shape, where)
        return read
    return default_axes(shape, where, given)


def canonical_view(array, axes: str, writable: bool = False):
    """`array` (in the file's `axes` order) seen in the canonical layout, nothing read.

    A NumPy array (np.memmap included) gives a NumPy view when transposing and merging the
    sample axes need no copy; anything else (a Zarr array, a TIFF's pages, a folder of
    images) a `LazyArray`. `writable`: assignments reach `array` (an output file).
    """
    check_axes(axes, array.shape, "The array")
    if isinstance(array, np.ndarray):
        view = _numpy_view(array, axes)
        if view is not None:
            return view
    return LazyArray(array, axes, writable)


def _order(axes: str) -> list[int]:
    """The file's axes in canonical order (samples S then T, then Z, Y, X, C)."""
    rank = {letter: i for i, letter in enumerate("STZYXC")}
    return sorted(range(len(axes)), key=lambda i: rank[axes[i]])


def _numpy_view(array: np.ndarray, axes: str) -> np.ndarray | None:
    moved = array.transpose(_order(axes))
    shape = canonical_shape(array.shape, axes)
    try:
        return np.reshape(moved, shape, copy=False)
    except ValueError:  # S and T cannot be merged without a copy
        return None


class LazyBase:
    """What every lazy array-like of daeflow has besides `shape`, `dtype` and NumPy-style
    `__getitem__` (a slice on the first axis included): sizes, and `np.asarray`, which reads
    it all."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        whole = np.asarray(self[slice(None)])
        return whole if dtype is None else whole.astype(dtype)


class LazyArray(LazyBase):
    """An array-like in the canonical layout over a source in its own axis order.

    Indexing takes, per canonical axis, an int, a slice or (on the sample axis N only) a
    1-D int array, and reads from the source only the selection asked for (one source read
    per sample, or one for a run of samples of a file with one sample axis), returning an
    np.ndarray. It is not an np.ndarray: `isinstance(x, np.ndarray)` is how daeflow tells an
    in-memory array from one read from a file. `reads` counts the source reads.
    """

    def __init__(self, source, axes: str, writable: bool = False):
        self.source, self.axes, self.writable = source, axes, writable
        self.dtype = np.dtype(source.dtype)
        self.shape = canonical_shape(tuple(source.shape), axes)
        self.canonical = "N" + canonical_axes(axes)
        self.reads = 0
        sizes = dict(zip(axes, source.shape, strict=True))
        self._samples = [a for a in SAMPLE_AXES if a in axes]
        self._sample_sizes = [sizes[a] for a in self._samples]

    def __repr__(self) -> str:
        source = type(self.source).__name__
        return f"LazyArray({self.shape}, {self.dtype}, axes {self.axes} of a {source})"

    def _key(self, key) -> list:
        """One key per canonical axis: an int, a range (for a slice) or an int array."""
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:at] + fill + key[at + 1 :]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for an array of shape {self.shape}")
        key = key + (slice(None),) * (self.ndim - len(key))
        out = []
        for axis, (k, size) in enumerate(zip(key, self.shape, strict=True)):
            if isinstance(k, slice):
                out.append(range(size)[k])
            elif isinstance(k, int | np.integer):
                out.append(range(size)[int(k)])  # IndexError out of bounds, negatives wrap
            else:
                k = np.asarray(k)
                if axis != 0 or k.ndim != 1 or k.dtype.kind not in "iu":
                    raise IndexError(
                        "a LazyArray takes ints and slices, and a 1-D int array on axis 0 only"
                    )
                out.append(np.array([range(size)[int(i)] for i in k], dtype=np.int64))
        return out

    def _plans(self, n_key) -> list:
        """(sample index, or a slice of the one sample axis) per source read, in order."""
        if isinstance(n_key, int):
            return [(n_key, None)]
        if len(self._samples) == 1 and isinstance(n_key, range) and n_key.step > 0:
            return [(None, slice(n_key.start, n_key.stop, n_key.step))]
        return [(int(n), None) for n in n_key]

    def _source_key(self, n, n_slice, keys) -> tuple:
        other = dict(zip(self.canonical[1:], keys[1:], strict=True))
        sample = {}
        if n is not None and self._samples:
            sample = dict(zip(self._samples, np.unravel_index(n, self._sample_sizes), strict=True))
        out = []
        for letter in self.axes:
            if letter in SAMPLE_AXES:
                out.append(n_slice if n_slice is not None else int(sample[letter]))
            else:
                k = other[letter]
                out.append(k if isinstance(k, int) else slice(k.start, _stop(k), k.step))
        return tuple(out)

    def _kept(self, keys, n_slice) -> tuple[list[str], list[str]]:
        """The letters of a source read's result (file order), and those of one sample of
        the canonical result, both without int-indexed axes."""
        source = [
            a
            for a in self.axes
            if (a in SAMPLE_AXES and n_slice is not None)
            or (a not in SAMPLE_AXES and not isinstance(keys[self.canonical.index(a)], int))
        ]
        canonical = [
            a for a in self.canonical[1:] if not isinstance(keys[self.canonical.index(a)], int)
        ]
        return source, canonical

    def _sample(self, data: np.ndarray, keys, n_slice) -> np.ndarray:
        """A source read in canonical order, with the axes the file lacks added."""
        source, canonical = self._kept(keys, n_slice)
        if n_slice is not None:
            source = ["N" if a in SAMPLE_AXES else a for a in source]
            canonical = ["N", *canonical]
        present = [a for a in canonical if a in source]
        data = data.transpose([source.index(a) for a in present])
        for at, letter in enumerate(canonical):
            if letter not in source:  # C (or Z) missing from the file: size 1
                data = np.expand_dims(data, at)
                data = data.take(np.asarray(keys[self.canonical.index(letter)]), axis=at)
        return data

    def __getitem__(self, key) -> np.ndarray:
        keys = self._key(key)
        n_key = keys[0]
        if not isinstance(n_key, int) and not len(n_key):
            return np.empty(self._selection_shape(keys), dtype=self.dtype)
        if not self._samples:
            return self._without_samples(keys)
        plans = self._plans(n_key)
        parts = []
        for n, n_slice in plans:
            self.reads += 1
            data = np.asarray(self.source[self._source_key(n, n_slice, keys)])
            parts.append(self._sample(data, keys, n_slice))
        if isinstance(n_key, int) or plans[0][1] is not None:
            return parts[0]
        return np.stack(parts)

    def _without_samples(self, keys) -> np.ndarray:
        """A file without S/T: one read, and N (of size 1) indexed like the axes it lacks."""
        self.reads += 1
        data = np.asarray(self.source[self._source_key(0, None, keys)])
        data = self._sample(data, keys, None)
        n_key = keys[0]
        if isinstance(n_key, int):
            return data
        return np.expand_dims(data, 0).take(np.asarray(n_key), axis=0)

    def _selection_shape(self, keys) -> tuple:
        return tuple(len(k) for k in keys if not isinstance(k, int))

    def __setitem__(self, key, value) -> None:
        if not self.writable:
            raise ValueError("this LazyArray is read-only")
        keys = self._key(key)
        value = np.broadcast_to(np.asarray(value, dtype=self.dtype), self._selection_shape(keys))
        n_key = keys[0]
        samples = [n_key] if isinstance(n_key, int) else list(n_key)
        for row, n in enumerate(samples):
            part = value if isinstance(n_key, int) else value[row]
            self._write(int(n), keys, part)

    def _write(self, n: int, keys, part: np.ndarray) -> None:
        """One sample of a canonical selection back into the source, in the file's order."""
        source, canonical = self._kept(keys, None)
        for at in reversed(range(len(canonical))):
            if canonical[at] not in source:  # an axis of 1 the file lacks
                if part.shape[at] == 0:
                    return
                part = part.take(0, axis=at)
        present = [a for a in canonical if a in source]
        part = part.transpose([present.index(a) for a in source])
        self.source[self._source_key(n if self._samples else 0, None, keys)] = part


def _stop(r: range):
    """The stop of a slice that selects range `r` (None where a negative step ends at 0)."""
    return None if r.stop < 0 else r.stop
