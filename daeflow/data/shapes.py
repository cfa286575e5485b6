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
    """Reflect-pad every spatial axis of a (N, *spatial, C) batch up to the next multiple
    (edge-pad where an axis is too short to reflect)."""
    spatial = batch.shape[1:-1]
    pads = [-n % multiple for n in spatial]
    if not any(pads):
        return batch
    mode = "reflect" if all(p < n for p, n in zip(pads, spatial, strict=True)) else "edge"
    return np.pad(batch, ((0, 0), *((0, p) for p in pads), (0, 0)), mode=mode)
