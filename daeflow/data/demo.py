"""The bundled demo data: scikit-learn's two sample photographs cut into patches, with noise."""

import numpy as np

PATCH = 32
SIGMA = 25.0


def demo_arrays(seed: int = 0, patch: int = PATCH, sigma: float = SIGMA):
    """Clean uint8 patches (N, patch, patch, 3) that do not overlap, and seeded noisy ones.

    The noise is Gaussian with `sigma` on the 0-255 scale, rounded and clipped to uint8
    as a camera would store it.
    """
    from sklearn.datasets import load_sample_images

    clean = []
    for image in load_sample_images().images:
        rows, cols = image.shape[0] // patch, image.shape[1] // patch
        tiles = image[: rows * patch, : cols * patch].reshape(rows, patch, cols, patch, 3)
        clean.append(tiles.transpose(0, 2, 1, 3, 4).reshape(-1, patch, patch, 3))
    clean = np.concatenate(clean)
    rng = np.random.default_rng(seed)
    noisy = clean + rng.normal(0, sigma, clean.shape)
    return clean, np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
