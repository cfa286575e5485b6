"""Denoise images of any size by overlapping tiles: bounded memory, no seams.

Each tile is read with a margin of context on every side (cut at the image border, so
border pixels see what the untiled model sees) and only its core is kept. Tile corners
sit on multiples of the architecture's size multiple, so pooling grids line up with the
untiled ones; with a margin wider than the receptive field the result equals the
untiled one. Only one tile is ever converted to float32.
"""

import numpy as np

from daeflow.pipeline import pad_to_multiple


def denoised_tiles(model, image, scale, tile=512, margin=32, multiple=1):
    """Yield (top, left, core) with core the denoised float32 [0, 1] pixels of each tile."""
    height, width = image.shape[:2]
    padded = pad_to_multiple(image[None], multiple)[0]
    ph, pw = padded.shape[:2]
    core = max(multiple, tile // multiple * multiple)
    margin = -(-margin // multiple) * multiple
    for top in range(0, ph, core):
        for left in range(0, pw, core):
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(ph, top + core + margin), min(pw, left + core + margin)
            window = padded[y0:y1, x0:x1][None].astype(np.float32) * np.float32(scale)
            result = np.asarray(model(window, training=False))[0]
            ch, cw = min(core, height - top), min(core, width - left)
            if ch > 0 and cw > 0:
                yield top, left, result[top - y0 : top - y0 + ch, left - x0 : left - x0 + cw]


def denoise_image(model, image, tile: int = 512, margin: int = 32, multiple: int = 1):
    """Denoise one (H, W, C) float32 image on the [0, 1] scale; returns the same shape."""
    out = np.empty(image.shape, dtype=np.float32)
    for top, left, core in denoised_tiles(model, image, 1.0, tile, margin, multiple):
        out[top : top + core.shape[0], left : left + core.shape[1]] = core
    return out


def as_batch(array: np.ndarray) -> np.ndarray:
    """(H, W) and (H, W, C) as a batch of one; (N, H, W, C) as it is."""
    if array.ndim == 2:
        return array[None, ..., None]
    if array.ndim == 3:
        return array[None]
    return array


def denoise_array(
    denoiser, array: np.ndarray, data_range: float, tile: int = 512, margin: int = 32
) -> np.ndarray:
    """Denoise (H, W), (H, W, C) or (N, H, W, C) data on its own scale; same shape and dtype."""
    batch = as_batch(array)
    out = np.empty(batch.shape, dtype=array.dtype)
    for i in range(len(batch)):
        tiles = denoised_tiles(
            denoiser.model, batch[i], 1.0 / data_range, tile, margin, denoiser.size_multiple
        )
        for top, left, core in tiles:
            out[i, top : top + core.shape[0], left : left + core.shape[1]] = restore(
                core, data_range, array.dtype
            )
    return out.reshape(array.shape)


def restore(image: np.ndarray, data_range: float, dtype) -> np.ndarray:
    """Back to the data's own scale and dtype (clipped to [0, range], rounded for integers)."""
    scaled = np.clip(image, 0, 1) * data_range
    if np.issubdtype(dtype, np.integer):
        return np.rint(scaled).astype(dtype)
    return scaled.astype(dtype)
