"""Geometric self-ensemble: average a model's output over the symmetric views of its input.

Images: the 8 flips/rotations of the plane. Volumes: the 16 views made of flips of Z, Y
and X and the Y/X transposition (never a rotation that mixes Z with Y and X, since the
Z spacing usually differs), the symmetries a 3D model is trained with.
"""

import dataclasses
import itertools

import numpy as np


def _transform(batch: np.ndarray, k: int, flip: bool) -> np.ndarray:
    turned = np.rot90(batch, k, axes=(1, 2))
    return np.ascontiguousarray(turned[:, :, ::-1] if flip else turned)


def _undo(batch: np.ndarray, k: int, flip: bool) -> np.ndarray:
    return np.rot90(batch[:, :, ::-1] if flip else batch, -k, axes=(1, 2))


VOLUME_VIEWS = tuple(itertools.product((False, True), repeat=4))  # flip Z, Y, X; swap Y/X


def _volume_view(batch: np.ndarray, view: tuple) -> np.ndarray:
    """A (N, D, H, W, C) batch flipped along the axes `view` names, then Y/X swapped."""
    *flips, swap = view
    index = (slice(None), *(slice(None, None, -1 if f else 1) for f in flips), slice(None))
    seen = batch[index]
    return np.ascontiguousarray(np.swapaxes(seen, 2, 3) if swap else seen)


def _volume_undo(batch: np.ndarray, view: tuple) -> np.ndarray:
    *flips, swap = view
    batch = np.swapaxes(batch, 2, 3) if swap else batch
    return batch[(slice(None), *(slice(None, None, -1 if f else 1) for f in flips), slice(None))]


def self_ensemble(model):
    """`model` as a callable that denoises every symmetric view and averages them (8x time
    for images, 16x for volumes)."""

    def call(batch, training=False):
        batch = np.asarray(batch)
        total = np.zeros(batch.shape, dtype=np.float32)
        if batch.ndim == 5:
            for view in VOLUME_VIEWS:
                seen = np.asarray(model(_volume_view(batch, view), training=False))
                total += _volume_undo(seen, view)
            return total / np.float32(len(VOLUME_VIEWS))
        for k in range(4):
            for flip in (False, True):
                view = np.asarray(model(_transform(batch, k, flip), training=False))
                total += _undo(view, k, flip)
        return total / np.float32(8)

    return call


def ensembled(denoiser):
    """A copy of a Denoiser whose model is its self-ensemble."""
    return dataclasses.replace(denoiser, model=self_ensemble(denoiser.model), self_ensemble=True)
