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


def _boxes(shape, seed: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(starts, size) of the windows looked at, the same for every image: one number per
    spatial axis. A volume's windows are single planes, so that they cost what an image's do."""
    spatial = tuple(shape[1:-1])
    if int(np.prod(spatial)) <= WHOLE:
        return [((0,) * len(spatial), spatial)]
    rng = np.random.default_rng([seed, 5])
    size = (*(1 for _ in spatial[:-2]), *(min(WINDOW, s) for s in spatial[-2:]))
    starts = [rng.integers(0, s - w + 1, WINDOWS) for s, w in zip(spatial, size, strict=True)]
    return [(tuple(int(a[k]) for a in starts), size) for k in range(WINDOWS)]


def _pixels(images, indices, boxes) -> np.ndarray:
    """(len(indices), pixels) float64: the boxes of each image, flattened side by side."""
    parts = [images.read_crops(indices, [start] * len(indices), size) for start, size in boxes]
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
    """Per-channel noise of the pairs (data scale) and the clipped fraction of noisy values.

    noise_sigma_c<k>, noise_mean_shift_c<k>: std and mean of noisy - clean.
    clean_own_noise_c<k>, noisy_own_noise_c<k>: each array's own noise (see own_noise).
    """
    indices = _sample(len(source.clean), seed)
    noisy_parts, clean_parts, own = [], [], []
    for i in indices:
        for start, size in _boxes(source.clean.shape, seed):
            noisy, clean = source.windows(int(i), start, size)
            noisy_parts.append(noisy.reshape(-1, noisy.shape[-1]))
            clean_parts.append(clean.reshape(-1, clean.shape[-1]))
            for c, n in zip(_planes(clean), _planes(noisy), strict=True):
                own.append((_high_pass(c), _high_pass(n)))
    n = np.concatenate(noisy_parts).astype(np.float64)
    c = np.concatenate(clean_parts).astype(np.float64)
    residual = (n - c) * source.data_range
    profile = {}
    for channel in range(c.shape[-1]):
        profile[f"noise_sigma_c{channel}"] = float(residual[:, channel].std())
        profile[f"noise_mean_shift_c{channel}"] = float(residual[:, channel].mean())
    profile["noisy_clipped_fraction"] = float(np.mean((n <= 0) | (n >= 1)))
    if own[0][0].size:  # images of at least 3x3 pixels
        high_c = np.concatenate([h.reshape(-1, h.shape[-1]) for h, _ in own])
        high_n = np.concatenate([h.reshape(-1, h.shape[-1]) for _, h in own])
        for channel in range(c.shape[-1]):
            sigmas = own_noise(high_c[:, channel], high_n[:, channel])
            profile[f"clean_own_noise_c{channel}"] = sigmas[0] * source.data_range
            profile[f"noisy_own_noise_c{channel}"] = sigmas[1] * source.data_range
    return profile


# Immerkaer's kernel [1, -2, 1] x [1, -2, 1]: it removes what is planar over 3x3 pixels
# and multiplies the std of white noise by 6 (the root of the sum of its squares, 36).
KERNEL_GAIN = 6.0


def _planes(window: np.ndarray) -> np.ndarray:
    """The (H, W, C) planes of a (1, H, W, C) image window or a (1, Z, H, W, C) volume's."""
    return window.reshape(-1, *window.shape[-3:])


def _high_pass(image: np.ndarray) -> np.ndarray:
    """(H - 2, W - 2, C) float64: the image filtered by Immerkaer's 3x3 kernel."""
    y = image.astype(np.float64)
    rows = y[:-2] - 2 * y[1:-1] + y[2:]
    return rows[:, :-2] - 2 * rows[:, 1:-1] + rows[:, 2:]


def own_noise(high_clean: np.ndarray, high_noisy: np.ndarray) -> tuple[float, float]:
    """Each array's own noise sigma from their high-passed pixels: (clean, noisy).

    With clean = x + n0 and noisy = x + n1 (n0, n1 independent of x and of each other),
    the covariance of the two high-passed images is the high-passed signal's variance
    alone, so var(h * clean) - cov = var(h * n0) and var(h * noisy) - cov = var(h * n1).
    The texture of x, which inflates single-image estimators, cancels; a clean array
    that is really clean gives about 0, a second noisy realisation about the noisy
    array's sigma. What does not cancel: a clean array on another gain or slightly
    shifted from its partner reads as noisier than it is.
    """
    c = high_clean - high_clean.mean()
    n = high_noisy - high_noisy.mean()
    shared = float(np.mean(c * n))
    clean = max(float(np.mean(c * c)) - shared, 0.0) ** 0.5 / KERNEL_GAIN
    noisy = max(float(np.mean(n * n)) - shared, 0.0) ** 0.5 / KERNEL_GAIN
    return clean, noisy


# Warn when the clean array's own noise is at least this fraction of the noisy array's.
# Measured by bench/noisy_targets.py (photographs with Poisson-Gaussian noise as floats,
# 12 and 8 bits; the smooth test pairs; the demo data): clean targets 0.00-0.13, the mean
# of 4 noisy captures 0.46-0.53, of 2 captures 0.69-0.73, a second noisy capture
# (Noise2Noise) 0.97-1.02. 0.6 lies between the 4- and 2-capture means: a 4-capture mean,
# a usual way to make clean targets, passes; a 2-capture mean does not. Against targets at
# ratio r even a perfect denoiser scores only 10 log10(1 + 1 / r^2) dB above the noisy
# input (5.8 dB at 0.6, 3 dB at 1): the numbers say more about the targets than the model.
NOISY_TARGETS = 0.6


def noisy_targets(profile: dict) -> str | None:
    """The line warning that the clean targets look noisy, or None when they do not."""
    channels = [k.removeprefix("clean_own_noise_") for k in profile if k.startswith("clean_own")]
    clean = float(np.mean([profile[f"clean_own_noise_{c}"] for c in channels] or [0.0]))
    noisy = float(np.mean([profile[f"noisy_own_noise_{c}"] for c in channels] or [0.0]))
    if not channels or noisy <= 0 or clean < NOISY_TARGETS * noisy:
        return None
    return (
        f"The clean targets look noisy (their own noise {clean:.4g} is "
        f"{clean / noisy:.0%} of the noisy images' {noisy:.4g}), so the PSNR against them is "
        "not a PSNR against the truth. Score on really clean test images (--val-data and "
        "--test-data), or train with a self-supervised objective once daeflow has one."
    )
