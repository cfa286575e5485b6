"""Denoise images and volumes of any size by overlapping tiles: bounded memory, no seams.

Tiles cut every spatial axis (rows and columns of an image; planes, rows and columns of
a volume). Each tile is read with a margin of context on every side (cut at the border,
where the window is reflect-padded up to the size multiple, as the whole image would
be) and only its core is kept. Tile corners sit on multiples of the architecture's
size multiple, so pooling grids line up with the untiled ones; with a margin wider
than the receptive field the result equals the untiled one. At most WINDOW_PIXELS window
pixels (voxels) go through the model at a time (one interior window of 1088 x 1088, or
several smaller ones at the borders), which bounds memory. A volume's windows hold at most
about VOLUME_WINDOW_VOXELS voxels (a 128^3 cube; `tile` caps each core edge too), since
they grow with the cube of their edge: an axis the window can take whole (often Z) is not
cut, and the others share what is left, so a thin stack is cut in Y and X only.

Each window is read from the source array (a NumPy array, a memory map or a lazy array
with NumPy-style indexing) and each core written into the output: nothing of the size
of the whole input is made.
"""

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from daeflow.data.shapes import as_batch, pad_to_multiple
from daeflow.runtime.mapped import Releaser, release, touched_bytes
from daeflow.runtime.tiles import MARGIN, TILE

WINDOW_PIXELS = 4 * 576 * 576  # window pixels (voxels) denoised in one call
VOLUME_WINDOW_VOXELS = 128**3  # a volume's window (core and margins) at most, in voxels
VOLUME_CORE_MIN = 16  # a volume's core edge at least, however wide its margins


@dataclass(frozen=True)
class Tile:
    """A core of the output and the window of input read around it, along each spatial axis
    (rows, columns; or planes, rows, columns)."""

    start: tuple[int, ...]  # the core's first index on each axis
    size: tuple[int, ...]  # the core's size on each axis
    low: tuple[int, ...]  # the window's first index on each axis
    high: tuple[int, ...]  # the window's end (exclusive) on each axis

    @property
    def core(self) -> tuple[slice, ...]:
        """Where the core lies in the image."""
        return tuple(slice(s, s + n) for s, n in zip(self.start, self.size, strict=True))

    @property
    def window(self) -> tuple[slice, ...]:
        """Where the window lies in the image."""
        return tuple(slice(lo, hi) for lo, hi in zip(self.low, self.high, strict=True))

    @property
    def window_shape(self) -> tuple[int, ...]:
        return tuple(hi - lo for lo, hi in zip(self.low, self.high, strict=True))

    def core_of_window(self) -> tuple[slice, ...]:
        """Where the core lies within the window."""
        return tuple(
            slice(s - lo, s - lo + n)
            for s, n, lo in zip(self.start, self.size, self.low, strict=True)
        )


def core_edges(shape: tuple[int, ...], tile: int, margin: int, multiple: int) -> tuple:
    """The core's edge along each axis of an image or volume of spatial `shape`: `tile`
    rounded down to the multiple; a volume's edges also kept so that a window holds about
    VOLUME_WINDOW_VOXELS voxels at most, axes short enough to be taken whole left uncut."""
    core = max(multiple, tile // multiple * multiple)
    if len(shape) < 3:
        return (core,) * len(shape)
    whole, budget = {}, VOLUME_WINDOW_VOXELS
    while True:  # axes whose whole extent fits a window's share are not cut
        rest = [axis for axis in range(len(shape)) if axis not in whole]
        edge = (budget / math.prod(whole.values() or [1])) ** (1 / max(1, len(rest)))
        fits = [axis for axis in rest if shape[axis] <= min(edge, core)]
        if not fits:
            break
        whole.update({axis: shape[axis] for axis in fits})
    cut = max(VOLUME_CORE_MIN, int(edge + 1e-6) - 2 * margin)
    cut = min(core, max(multiple, cut // multiple * multiple))
    return tuple(
        -(-shape[axis] // multiple) * multiple if axis in whole else cut
        for axis in range(len(shape))
    )


def tiles(shape: tuple[int, ...], tile=TILE, margin=MARGIN, multiple=1) -> Iterator[Tile]:
    """The tiles covering an image (or volume) of spatial `shape`, corners on multiples of
    `multiple`, margins rounded up to it."""
    margin = -(-margin // multiple) * multiple
    cores = core_edges(shape, tile, margin, multiple)
    for start in itertools.product(*(range(0, n, c) for n, c in zip(shape, cores, strict=True))):
        yield Tile(
            start,
            tuple(min(c, n - s) for s, n, c in zip(start, shape, cores, strict=True)),
            tuple(max(0, s - margin) for s in start),
            tuple(min(n, s + c + margin) for s, n, c in zip(start, shape, cores, strict=True)),
        )


def predict(model, noisy: np.ndarray, multiple: int = 1) -> np.ndarray:
    """Run the model on a (N, *spatial, C) batch, padding to the size it needs and cropping
    back."""
    crop = (slice(None), *(slice(0, n) for n in noisy.shape[1:-1]), slice(None))
    return np.asarray(_runner(model)(pad_to_multiple(noisy, multiple)))[crop]


def _runner(model) -> Callable:
    """Keras models: traced predict_on_batch; eager calls when trained on several devices,
    where Keras's distributed predict_on_batch returns too many images for odd batches."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return lambda batch: model(batch, training=False)
    return getattr(model, "predict_on_batch", model)


def denoised_tiles(model, read: Callable, shape: tuple, tile=TILE, margin=MARGIN, multiple=1):
    """Yield (tile, window output) with `read(tile)` giving the float32 (*window, C) input.

    Windows of the same shape go through the model together, up to WINDOW_PIXELS at a time
    (tiles are taken in order of their window's shape: the interior ones share one).
    """
    pending: list = []
    ordered = sorted(tiles(shape, tile, margin, multiple), key=lambda t: t.window_shape)
    for t in ordered:
        window = read(t)
        if pending and (
            len(pending) == _per_call(pending[0][1]) or pending[0][1].shape != window.shape
        ):
            yield from _through(model, pending, multiple)
            pending = []
        pending.append((t, window))
    if pending:
        yield from _through(model, pending, multiple)


def _per_call(window: np.ndarray) -> int:
    return max(1, WINDOW_PIXELS // math.prod(window.shape[:-1]))


def _through(model, pending: list, multiple: int):
    outputs = predict(model, np.stack([window for _, window in pending]), multiple)
    return zip([t for t, _ in pending], outputs, strict=True)


def denoise_image(model, image, tile: int = TILE, margin: int = MARGIN, multiple: int = 1):
    """Denoise one (H, W, C) image or (D, H, W, C) volume, float32 on the [0, 1] scale;
    returns the same shape."""
    out = np.empty(image.shape, dtype=np.float32)
    read = _reader(image, (), 1.0)
    for t, result in denoised_tiles(model, read, image.shape[:-1], tile, margin, multiple):
        out[t.core] = result[t.core_of_window()]
    return out


def _reader(source, lead: tuple, scale: float) -> Callable:
    """Read one tile's window of the image at `lead` (leading indices) of `source`."""

    def read(t: Tile) -> np.ndarray:
        window = np.asarray(source[(*lead, *t.window, slice(None))])
        return window.astype(np.float32) * np.float32(scale)

    return read


def canonical(array, spatial_dims: int = 2):
    """`array` with its leading (sample) axes and a channel axis: (H, W) and (H, W, C) as a
    batch of one; a volume (D, H, W) or (D, H, W, C) likewise; other arrays as they are
    (a lazy array must come in the canonical layout)."""
    if spatial_dims == 2 or array.ndim >= spatial_dims + 2:
        return as_batch(array) if array.ndim < 4 else array
    return array[None, ..., None] if array.ndim == spatial_dims else array[None]


def denoise_array(
    denoiser,
    array,
    data_range: float,
    tile: int = TILE,
    margin: int | None = None,
    out=None,
) -> np.ndarray:
    """Denoise data on its own scale; same shape and dtype. For a 2D model: (H, W),
    (H, W, C), (N, H, W, C), or volumes (N, D, H, W, C) plane by plane; for a 3D model:
    (D, H, W), (D, H, W, C) or (N, D, H, W, C).

    `margin` None: the denoiser's own. `out` (e.g. a memory-mapped file) receives the
    result; by default a new array. Each tile's window is read from `array`, and each
    core written into `out`.
    """
    margin = denoiser.margin if margin is None else margin
    dims = getattr(denoiser, "spatial_dims", 2) or 2
    source = canonical(array, dims)
    result = np.empty(array.shape, dtype=array.dtype) if out is None else out
    target = canonical(result, dims)
    spatial = tuple(source.shape[-1 - dims : -1])
    pages = Releaser(source, target)  # memory-mapped input and output: pages dropped as we go
    for lead in itertools.product(*(range(n) for n in source.shape[: -1 - dims])):
        read = _reader(source, lead, 1.0 / data_range)
        for t, window in denoised_tiles(
            denoiser.model, read, spatial, tile, margin, denoiser.size_multiple
        ):
            core = restore(window[t.core_of_window()], data_range, array.dtype)
            target[(*lead, *t.core, slice(None))] = core
            size = array.dtype.itemsize
            pages.moved(touched_bytes(core.shape, size) + touched_bytes(window.shape, size))
    release(source, target)
    return result


def restore(image: np.ndarray, data_range: float, dtype) -> np.ndarray:
    """Back to the data's own scale and dtype: clipped to [0, range] and, for integers,
    rounded and clipped to the dtype's limits (a range above them must not wrap around)."""
    scaled = np.clip(image, 0, 1) * data_range
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return np.clip(np.rint(scaled), limits.min, limits.max).astype(dtype)
    return scaled.astype(dtype)
