"""The Z planes of volumes seen as 2D images (--slices), without reading them."""

import numpy as np

from daeflow.data.arrays import ImageArray
from daeflow.errors import UsageError


class PlaneView:
    """(N*Z, Y, X, C) over a lazy (N, Z, Y, X, C) array: plane i is plane i % Z of volume
    i // Z, read through the volume array's own __getitem__ (one plane at a time)."""

    def __init__(self, volumes):
        self.volumes = volumes
        n, depth, *rest = volumes.shape
        self.depth = depth
        self.shape = (n * depth, *rest)
        self.dtype = volumes.dtype
        self.ndim = len(self.shape)

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
