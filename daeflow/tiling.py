"""Denoise images of any size by overlapping tiles: bounded memory, no seams.

Each tile is read with a margin of context on every side (cut at the image border, so
border pixels see what the untiled model sees) and only its core is kept. Tile corners
sit on multiples of the architecture's size multiple, so pooling grids line up with the
untiled ones; with a margin wider than the receptive field the result equals the
untiled one.
"""

import numpy as np

from daeflow.pipeline import pad_to_multiple


def _starts(size: int, core: int) -> range:
    return range(0, size, core)


def denoise_image(model, image: np.ndarray, tile: int = 512, margin: int = 32, multiple: int = 1):
    """Denoise one (H, W, C) float32 image on the [0, 1] scale; returns the same shape."""
    height, width = image.shape[:2]
    padded = pad_to_multiple(image[None], multiple)[0]
    ph, pw = padded.shape[:2]
    core = max(multiple, tile // multiple * multiple)
    margin = -(-margin // multiple) * multiple
    out = np.empty(padded.shape, dtype=np.float32)
    for top in _starts(ph, core):
        for left in _starts(pw, core):
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(ph, top + core + margin), min(pw, left + core + margin)
            window = padded[y0:y1, x0:x1][None]
            result = np.asarray(model(window, training=False))[0]
            ch, cw = min(core, ph - top), min(core, pw - left)
            out[top : top + ch, left : left + cw] = result[
                top - y0 : top - y0 + ch, left - x0 : left - x0 + cw
            ]
    return out[:height, :width]


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
    scale = np.float32(1.0 / data_range)
    for i in range(len(batch)):
        image = batch[i].astype(np.float32) * scale
        denoised = denoise_image(denoiser.model, image, tile, margin, denoiser.size_multiple)
        out[i] = restore(denoised, data_range, array.dtype)
    return out.reshape(array.shape)


def restore(image: np.ndarray, data_range: float, dtype) -> np.ndarray:
    """Back to the data's own scale and dtype (clipped to [0, range], rounded for integers)."""
    scaled = np.clip(image, 0, 1) * data_range
    if np.issubdtype(dtype, np.integer):
        return np.rint(scaled).astype(dtype)
    return scaled.astype(dtype)
