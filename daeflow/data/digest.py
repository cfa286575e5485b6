"""Content digests of image arrays, to record exactly which data a run saw."""

import hashlib

import numpy as np


def sha256_digest(*arrays) -> str:
    """SHA-256 over the shapes, dtypes and every byte of the arrays (read block by block)."""
    digest = hashlib.sha256()
    for images in arrays:
        digest.update(f"{images.shape}{images.dtype}".encode())
        for _, _, block in images.blocks():
            digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()
