"""Denoise images and volumes of any size by overlapping tiles: bounded memory, no seams.

Tiles cut every spatial axis (rows and columns of an image; planes, rows and columns of
a volume). Each tile is read with a margin of context on every side (cut at the border,
where the window is reflect-padded up to the size multiple, as the whole image would
be) and only its core is kept. Tile corners sit on multiples of the architecture's
size multiple, so pooling grids line up with the untiled ones; with a margin wider
than the receptive field the result equals the untiled one. At most WINDOW_PIXELS window
pixels (voxels) go through the model at a time (one interior window of 1088 x 1088, or
several smaller ones at the borders), which bounds memory. A volume's core is at most
VOLUME_WINDOW voxels along each axis less its two margins (64 with the usual margin of
32), whatever `tile` says, since a window's voxels grow with the cube of its edge.

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
from daeflow.runtime.tiles import MARGIN, TILE

WINDOW_PIXELS = 4 * 576 * 576  # window pixels (voxels) denoised in one call
VOLUME_WINDOW = 128  # a volume's window edge (core and margins) at most, in voxels
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


def core_edge(tile: int, margin: int, multiple: int, spatial_dims: int) -> int:
    """The core's edge along each axis: `tile` rounded down to the multiple (a volume's
    capped so that its window stays within VOLUME_WINDOW voxels along each axis)."""
    core = max(multiple, tile // multiple * multiple)
    if spatial_dims >= 3:
        cap = max(VOLUME_CORE_MIN, VOLUME_WINDOW - 2 * margin)
        core = min(core, max(multiple, cap // multiple * multiple))
    return core


def tiles(shape: tuple[int, ...], tile=TILE, margin=MARGIN, multiple=1) -> Iterator[Tile]:
    """The tiles covering an image (or volume) of spatial `shape`, corners on multiples of
    `multiple`, margins rounded up to it."""
    margin = -(-margin // multiple) * multiple
    core = core_edge(tile, margin, multiple, len(shape))
    for start in itertools.product(*(range(0, n, core) for n in shape)):
        yield Tile(
            start,
            tuple(min(core, n - s) for s, n in zip(start, shape, strict=True)),
            tuple(max(0, s - margin) for s in start),
            tuple(min(n, s + core + margin) for s, n in zip(start, shape, strict=True)),
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
    for lead in itertools.product(*(range(n) for n in source.shape[: -1 - dims])):
        read = _reader(source, lead, 1.0 / data_range)
        for t, window in denoised_tiles(
            denoiser.model, read, spatial, tile, margin, denoiser.size_multiple
        ):
            target[(*lead, *t.core, slice(None))] = restore(
                window[t.core_of_window()], data_range, array.dtype
            )
    return result


def restore(image: np.ndarray, data_range: float, dtype) -> np.ndarray:
    """Back to the data's own scale and dtype: clipped to [0, range] and, for integers,
    rounded and clipped to the dtype's limits (a range above them must not wrap around)."""
    scaled = np.clip(image, 0, 1) * data_range
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return np.clip(np.rint(scaled), limits.min, limits.max).astype(dtype)
    return scaled.astype(dtype)
