"""Checks and summaries of a clean/noisy pairing: alignment, noise level, clipping."""

import numpy as np

from daeflow.errors import DataError

SAMPLE = 32


def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 3])
    return np.sort(rng.choice(n, size=min(n, SAMPLE), replace=False))


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
    c = clean.read(indices).reshape(len(indices), -1).astype(np.float64)
    n = noisy.read(indices).reshape(len(indices), -1).astype(np.float64)
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
    noisy, clean = source.batch(_sample(len(source.clean), seed))
    n, c = noisy.astype(np.float64), clean.astype(np.float64)
    residual = (n - c) * source.data_range
    profile = {}
    for channel in range(c.shape[-1]):
        profile[f"noise_sigma_c{channel}"] = float(residual[..., channel].std())
        profile[f"noise_mean_shift_c{channel}"] = float(residual[..., channel].mean())
    profile["noisy_clipped_fraction"] = float(np.mean((n <= 0) | (n >= 1)))
    return profile
