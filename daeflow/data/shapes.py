"""Array shape helpers shared by training and inference: batches of one, padding."""

import numpy as np


def as_batch(array: np.ndarray) -> np.ndarray:
    """(H, W) and (H, W, C) as a batch of one; (N, H, W, C) as it is."""
    if array.ndim == 2:
        return array[None, ..., None]
    if array.ndim == 3:
        return array[None]
    return array


def pad_to_multiple(batch: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad height and width of a (N, H, W, C) batch up to the next multiple."""
    height, width = batch.shape[1:3]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return batch
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    return np.pad(batch, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode=mode)
