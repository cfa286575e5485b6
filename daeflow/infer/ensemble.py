"""Geometric self-ensemble: average a model's output over the 8 flips/rotations of its input."""

import dataclasses

import numpy as np


def _transform(batch: np.ndarray, k: int, flip: bool) -> np.ndarray:
    turned = np.rot90(batch, k, axes=(1, 2))
    return np.ascontiguousarray(turned[:, :, ::-1] if flip else turned)


def _undo(batch: np.ndarray, k: int, flip: bool) -> np.ndarray:
    return np.rot90(batch[:, :, ::-1] if flip else batch, -k, axes=(1, 2))


def self_ensemble(model):
    """`model` as a callable that denoises all 8 dihedral views and averages them (8x time)."""

    def call(batch, training=False):
        batch = np.asarray(batch)
        total = np.zeros(batch.shape, dtype=np.float32)
        for k in range(4):
            for flip in (False, True):
                view = np.asarray(model(_transform(batch, k, flip), training=False))
                total += _undo(view, k, flip)
        return total / np.float32(8)

    return call


def ensembled(denoiser):
    """A copy of a Denoiser whose model is its self-ensemble."""
    return dataclasses.replace(denoiser, model=self_ensemble(denoiser.model), self_ensemble=True)
