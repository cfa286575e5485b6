"""Grey crops of scikit-image's sample photographs: real images no one on this project made,
for the benchmarks (bench/twelve_bit.py, bench/noisy_targets.py)."""

import numpy as np
import skimage.data


def crops(names: tuple[str, ...], size: int = 64) -> np.ndarray:
    """(N, size, size) float64 crops on [0, 1] of the named photographs, tiled without overlap
    (colour ones averaged to grey)."""
    found = []
    for name in names:
        image = getattr(skimage.data, name)().astype(np.float64)
        image = image if image.ndim == 2 else image.mean(-1)
        height, width = image.shape
        found += [
            image[i : i + size, j : j + size]
            for i in range(0, height - size + 1, size)
            for j in range(0, width - size + 1, size)
        ]
    return np.stack(found) / 255.0
