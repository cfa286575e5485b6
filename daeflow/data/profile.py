"""Checks and summaries of a clean/noisy pairing: alignment, noise level, clipping.

Both look at a seeded sample of at most SAMPLE images and, in large images, at a few
windows of them, so their memory does not grow with the size of the images.
"""

import numpy as np

from daeflow.errors import DataError

SAMPLE = 32
WINDOW = 64  # side of each sampled window in large images
WINDOWS = 4  # windows per image
WHOLE = 128 * 128  # images with at most this many pixels are used whole


def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 3])
    return np.sort(rng.choice(n, size=min(n, SAMPLE), replace=False))


def _boxes(shape, seed: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of the windows looked at, the same for every image."""
    height, width = shape[1:3]
    if height * width <= WHOLE:
        return [(0, 0, height, width)]
    rng = np.random.default_rng([seed, 5])
    size_h, size_w = min(WINDOW, height), min(WINDOW, width)
    tops = rng.integers(0, height - size_h + 1, WINDOWS)
    lefts = rng.integers(0, width - size_w + 1, WINDOWS)
    return [(int(t), int(left), size_h, size_w) for t, left in zip(tops, lefts, strict=True)]


def _pixels(images, indices, boxes) -> np.ndarray:
    """(len(indices), pixels) float64: the boxes of each image, flattened side by side."""
    parts = [
        images.read_crops(indices, [top] * len(indices), [left] * len(indices), h, w)
        for top, left, h, w in boxes
    ]
    return np.concatenate([p.reshape(len(indices), -1) for p in parts], axis=1).astype(np.float64)


def check_alignment(clean, noisy, seed: int = 0) -> float:
    """Refuse pairs that do not belong together; return the fraction of sampled pairs that do.

    For a sample of images, the mean squared difference between clean[i] and noisy[i]
    must be below its median over the other sampled noisy images, for at least 90% of
    them. Noise raises every difference alike; a shuffled or shifted array fails.
    A clean image that differs from the others by less than a tenth of its own noise
    (repeated captures of one scene, flat fields) cannot be told apart, and swapping
    its partner would change nothing, so it counts as aligned.
    """
    if len(clean) < 3:
        return 1.0
    indices = _sample(len(clean), seed)
    boxes = _boxes(clean.shape, seed)
    c, n = _pixels(clean, indices, boxes), _pixels(noisy, indices, boxes)
    off_diagonal = ~np.eye(len(indices), dtype=bool)
    distance = _mean_squared_distances(c, n)
    matched = np.diag(distance)
    others = np.nanmedian(np.where(off_diagonal, distance, np.nan), axis=1)
    between_clean = np.nanmedian(
        np.where(off_diagonal, _mean_squared_distances(c, c), np.nan), axis=1
    )
    belongs = (matched < others) | (between_clean <= 0.1 * matched)
    aligned = float(np.mean(belongs))
    if aligned < 0.9:
        first = int(indices[np.argmin(belongs)])
        raise DataError(
            f"Clean and noisy images do not look aligned: only {aligned:.0%} of {len(indices)} "
            f"sampled pairs are closer to their own partner than to other images (e.g. image "
            f"{first}). Check that both arrays are in the same order, or pass "
            "--no-alignment-check."
        )
    return aligned


def _mean_squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """mean((a[i] - b[j]) ** 2) for every i, j, of flattened images."""
    squares = (a**2).mean(1)[:, None] + (b**2).mean(1)[None, :] - 2 * (a @ b.T) / a.shape[1]
    return np.maximum(squares, 0)  # rounding can leave equal images a hair below zero


def noise_profile(source, seed: int = 0) -> dict[str, float]:
    """Per-channel noise sigma and mean shift of noisy - clean (data scale), clipped fraction."""
    indices = _sample(len(source.clean), seed)
    noisy_parts, clean_parts = [], []
    for i in indices:
        for top, left, height, width in _boxes(source.clean.shape, seed):
            noisy, clean = source.windows(int(i), top, left, height, width)
            noisy_parts.append(noisy.reshape(-1, noisy.shape[-1]))
            clean_parts.append(clean.reshape(-1, clean.shape[-1]))
    n = np.concatenate(noisy_parts).astype(np.float64)
    c = np.concatenate(clean_parts).astype(np.float64)
    residual = (n - c) * source.data_range
    profile = {}
    for channel in range(c.shape[-1]):
        profile[f"noise_sigma_c{channel}"] = float(residual[:, channel].std())
        profile[f"noise_mean_shift_c{channel}"] = float(residual[:, channel].mean())
    profile["noisy_clipped_fraction"] = float(np.mean((n <= 0) | (n >= 1)))
    return profile
