"""Volumes seen otherwise, without reading them: their Z planes as 2D images (--slices),
or a few volumes cut into slabs along Z, so that they split into train, validation and test."""

import math

import numpy as np

from daeflow.data.arrays import ImageArray
from daeflow.data.axes import LazyBase
from daeflow.data.splits import splittable
from daeflow.errors import DataError, UsageError

SLAB_UNITS = 10  # slabs wanted in all, so that fractions of 0.1 hold out one each


class PlaneView(LazyBase):
    """(N*Z, Y, X, C) over a lazy (N, Z, Y, X, C) array: plane i is plane i % Z of volume
    i // Z, read through the volume array's own __getitem__ (one plane at a time)."""

    def __init__(self, volumes):
        self.volumes = volumes
        n, depth, *rest = volumes.shape
        self.depth = depth
        self.shape = (n * depth, *rest)
        self.dtype = np.dtype(volumes.dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, slice):
            first = np.arange(*first.indices(self.shape[0]))
        if np.ndim(first) == 0:
            volume, plane = divmod(int(first), self.depth)
            return np.asarray(self.volumes[(volume, plane, *rest)])
        planes = [self[(int(i), *rest)] for i in np.asarray(first).reshape(-1)]
        if planes:
            return np.stack(planes)
        return np.empty((0, *np.empty(self.shape[1:], np.uint8)[rest].shape), self.dtype)


def as_planes(images: ImageArray) -> ImageArray:
    """Volumes (N, Z, Y, X, C) as the images (N*Z, Y, X, C) of their Z planes, image
    n * Z + z being plane z of volume n: a reshaped view of an array or memory map (nothing
    is read), or a PlaneView of a lazy array. 2D images are refused in one line."""
    if len(images.shape) != 5:
        raise UsageError(
            f"--slices trains a 2D model on the Z planes of volumes (N, Z, Y, X, C); the "
            f"{images.name} data are 2D images of shape {images.shape}. Drop --slices."
        )
    array = images.array
    n, depth, *rest = array.shape
    if isinstance(array, np.ndarray) and array.flags.c_contiguous:
        return images.with_array(array.reshape(n * depth, *rest))
    return images.with_array(PlaneView(array))


def volume_groups(n_volumes: int, depth: int, groups=None) -> np.ndarray:
    """One group id per plane: the volume's own (or its id in `groups`), so that the planes
    of a volume stay in one split."""
    ids = np.arange(n_volumes) if groups is None else np.asarray(groups)
    return np.repeat(ids, depth)


class SlabView(LazyBase):
    """(N*K, D, Y, X, C) over an (N, Z, Y, X, C) array: slab i is planes
    (i % K) * D .. + D of volume i // K (the last Z - K * D planes are left out), read
    through the volume array's own __getitem__."""

    def __init__(self, volumes, slabs: int):
        self.volumes, self.slabs = volumes, slabs
        n, depth, *rest = volumes.shape
        self.depth = depth // slabs
        self.shape = (n * slabs, self.depth, *rest)
        self.dtype = np.dtype(volumes.dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, planes, rest = key[0], (key[1:2] or (slice(None),))[0], key[2:]
        if isinstance(first, slice):
            first = np.arange(*first.indices(self.shape[0]))
        if np.ndim(first) == 0:
            volume, slab = divmod(int(first), self.slabs)
            z = np.arange(self.depth)[planes] + slab * self.depth
            if np.ndim(z) == 0:
                return np.asarray(self.volumes[(volume, int(z), *rest)])
            start = int(z[0]) if len(z) else slab * self.depth
            step = int(z[1] - z[0]) if len(z) > 1 else 1
            stop = start + step * len(z)
            return np.asarray(self.volumes[(volume, slice(start, stop, step), *rest)])
        return np.stack([self[(int(i), planes, *rest)] for i in np.asarray(first).reshape(-1)])


def slab_count(
    volumes: int, depth: int, min_depth: int, val_fraction: float, test_fraction: float
) -> int:
    """Slabs to cut each volume into along Z: 1 where the volumes split as they are, else
    enough for about SLAB_UNITS in all, each at least `min_depth` planes; a one-line refusal
    where even the thinnest slabs are too few."""
    if splittable(volumes, val_fraction, test_fraction):
        return 1
    most = depth // max(1, min_depth)
    wanted = min(most, max(2, math.ceil(SLAB_UNITS / volumes)))
    if most < 2 or not splittable(volumes * wanted, val_fraction, test_fraction):
        raise DataError(
            f"{volumes} volume(s) of {depth} planes are too few to split into train, "
            f"validation and test, even cut into slabs of {min_depth} planes along Z. Add "
            "volumes, use a smaller --patch-size in Z, or pass --val-data/--test-data."
        )
    return wanted


def as_slabs(images: ImageArray, slabs: int, multiple: int = 1) -> ImageArray:
    """Volumes (N, Z, Y, X, C) as N * `slabs` slabs of Z // slabs planes (rounded down to
    `multiple`), slab k of volume n being image n * slabs + k: a view, nothing is read."""
    array = images.array
    n, depth, *rest = array.shape
    thick = depth // slabs // multiple * multiple
    if isinstance(array, np.ndarray) and array.flags.c_contiguous and thick * slabs == depth:
        return images.with_array(array.reshape(n * slabs, thick, *rest))
    view = SlabView(array, slabs)
    if view.depth != thick:
        view.depth, view.shape = thick, (n * slabs, thick, *rest)
    return images.with_array(view)
