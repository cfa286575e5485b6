"""Denoise images of any size by overlapping tiles: bounded memory, no seams.

Each tile is read with a margin of context on every side (cut at the image border,
where the window is reflect-padded up to the size multiple, as the whole image would
be) and only its core is kept. Tile corners sit on multiples of the architecture's
size multiple, so pooling grids line up with the untiled ones; with a margin wider
than the receptive field the result equals the untiled one. At most WINDOW_PIXELS window
pixels go through the model at a time (one interior window of 1088 x 1088, or several
smaller ones at the borders), which bounds memory.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from daeflow.data.shapes import as_batch, pad_to_multiple
from daeflow.runtime.tiles import MARGIN, TILE

WINDOW_PIXELS = 4 * 576 * 576  # window pixels denoised in one call


@dataclass(frozen=True)
class Tile:
    """A core of the output and the window of input read around it (rows y, columns x)."""

    top: int
    left: int
    height: int
    width: int
    y0: int
    x0: int
    y1: int
    x1: int

    def core_of_window(self) -> tuple[slice, slice]:
        """Where the core lies within the window."""
        y, x = self.top - self.y0, self.left - self.x0
        return slice(y, y + self.height), slice(x, x + self.width)


def tiles(height: int, width: int, tile=TILE, margin=MARGIN, multiple=1) -> Iterator[Tile]:
    """The tiles covering a height x width image, corners on multiples of `multiple`."""
    core = max(multiple, tile // multiple * multiple)
    margin = -(-margin // multiple) * multiple
    for top in range(0, height, core):
        for left in range(0, width, core):
            yield Tile(
                top,
                left,
                min(core, height - top),
                min(core, width - left),
                max(0, top - margin),
                max(0, left - margin),
                min(height, top + core + margin),
                min(width, left + core + margin),
            )


def predict(model, noisy: np.ndarray, multiple: int = 1) -> np.ndarray:
    """Run the model on a (N, H, W, C) batch, padding to the size it needs and cropping back."""
    height, width = noisy.shape[1:3]
    return np.asarray(_runner(model)(pad_to_multiple(noisy, multiple)))[:, :height, :width, :]


def _runner(model) -> Callable:
    """Keras models: traced predict_on_batch; eager calls when trained on several devices,
    where Keras's distributed predict_on_batch returns too many images for odd batches."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return lambda batch: model(batch, training=False)
    return getattr(model, "predict_on_batch", model)


def denoised_tiles(
    model, read: Callable, height: int, width: int, tile=TILE, margin=MARGIN, multiple=1
):
    """Yield (tile, window output) with `read(y0, x0, h, w)` giving float32 (h, w, C) input.

    Windows of the same shape go through the model together, up to WINDOW_PIXELS at a time
    (tiles are taken in order of their window's shape: the interior ones share one).
    """
    pending: list = []
    ordered = sorted(tiles(height, width, tile, margin, multiple), key=_window_shape)
    for t in ordered:
        window = read(t.y0, t.x0, t.y1 - t.y0, t.x1 - t.x0)
        if pending and (
            len(pending) == _per_call(pending[0][1]) or pending[0][1].shape != window.shape
        ):
            yield from _through(model, pending, multiple)
            pending = []
        pending.append((t, window))
    if pending:
        yield from _through(model, pending, multiple)


def _per_call(window: np.ndarray) -> int:
    return max(1, WINDOW_PIXELS // (window.shape[0] * window.shape[1]))


def _window_shape(t: Tile) -> tuple[int, int]:
    return t.y1 - t.y0, t.x1 - t.x0


def _through(model, pending: list, multiple: int):
    outputs = predict(model, np.stack([window for _, window in pending]), multiple)
    return zip([t for t, _ in pending], outputs, strict=True)


def denoise_image(model, image, tile: int = TILE, margin: int = MARGIN, multiple: int = 1):
    """Denoise one (H, W, C) float32 image on the [0, 1] scale; returns the same shape."""
    out = np.empty(image.shape, dtype=np.float32)
    read = _reader(image, 1.0)
    for t, result in denoised_tiles(model, read, *image.shape[:2], tile, margin, multiple):
        out[t.top : t.top + t.height, t.left : t.left + t.width] = result[t.core_of_window()]
    return out


def _reader(image: np.ndarray, scale: float) -> Callable:
    def read(y0, x0, h, w):
        return image[y0 : y0 + h, x0 : x0 + w].astype(np.float32) * np.float32(scale)

    return read


def denoise_array(
    denoiser,
    array: np.ndarray,
    data_range: float,
    tile: int = TILE,
    margin: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Denoise (H, W), (H, W, C) or (N, H, W, C) data on its own scale; same shape and dtype.

    `margin` None: the denoiser's own. `out` (e.g. a memory-mapped .npy file) receives the
    result; by default a new array.
    """
    margin = denoiser.margin if margin is None else margin
    batch = as_batch(array)
    result = np.empty(array.shape, dtype=array.dtype) if out is None else out
    target = as_batch(result)
    for i in range(len(batch)):
        read = _reader(batch[i], 1.0 / data_range)
        for t, window in denoised_tiles(
            denoiser.model, read, *batch.shape[1:3], tile, margin, denoiser.size_multiple
        ):
            target[i, t.top : t.top + t.height, t.left : t.left + t.width] = restore(
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
