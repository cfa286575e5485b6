"""Image quality metrics, computed per image (or volume) and then averaged.

PSNR(x, y) = 10 * log10(R**2 / MSE(x, y)) with R the data range and the MSE taken over
one whole image (all pixels and channels), or one whole volume (all voxels and
channels). An exactly reproduced image would score infinity; its MSE is floored at
R**2 * 1e-10, so one image scores at most 100 dB and a mean stays finite.

SSIM is scikit-image's `structural_similarity` with its defaults (7x7 uniform window,
K1=0.01, K2=0.03), the data range given explicitly, averaged over channels. The SSIM
of a volume is the mean of the SSIM of its Z planes (2D SSIM, plane by plane), not a 3D
SSIM: the Z spacing of a volume usually differs from its X/Y spacing.
Estimates are clipped to [0, R] before scoring, as a displayed image would be.
"""

import numpy as np

MAX_PSNR = 100.0
SSIM_WINDOW = 7


def psnr(clean: np.ndarray, estimate: np.ndarray, data_range: float) -> np.ndarray:
    """PSNR in dB of each image in a (N, H, W, C) batch, or of each volume (over all its
    voxels) in a (N, D, H, W, C) batch; returns shape (N,)."""
    clean, estimate = _as_batches(clean, estimate, data_range)
    return psnr_from_mse(np.mean((clean - estimate) ** 2, axis=_per_item(clean)), data_range)


def psnr_from_mse(mse, data_range: float):
    """10 * log10(R**2 / MSE), with the MSE floored so that one image scores at most 100 dB."""
    floor = data_range**2 * 10 ** (-MAX_PSNR / 10)
    return 10 * np.log10(data_range**2 / np.maximum(mse, floor))


def mse(clean: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Mean squared error of each image (or volume) in a (N, *spatial, C) batch, as given (no
    clipping)."""
    difference = np.asarray(clean, dtype=np.float64) - np.asarray(estimate, dtype=np.float64)
    return np.mean(difference**2, axis=_per_item(difference))


def _per_item(batch: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, batch.ndim))


def ssim(clean: np.ndarray, estimate: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM of each image in a (N, H, W, C) batch, or of each volume in a (N, D, H, W, C)
    batch as the mean SSIM of its D planes; returns shape (N,)."""
    from skimage.metrics import structural_similarity

    clean, estimate = _as_batches(clean, estimate, data_range)
    if clean.ndim == 5:
        planes = [ssim(c, e, data_range) for c, e in zip(clean, estimate, strict=True)]
        return np.array([p.mean() for p in planes])
    win = min(SSIM_WINDOW, *_odd_floor(clean.shape[1:3]))
    return np.array(
        [
            structural_similarity(c, e, data_range=data_range, channel_axis=-1, win_size=win)
            for c, e in zip(clean, estimate, strict=True)
        ]
    )


def ssim_map(clean: np.ndarray, estimate: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM at every pixel of one (H, W, C) image, 7x7 window; only pixels 3 or more from
    the border enter the mean SSIM, so a tile's map with a 3-pixel halo is exact there."""
    from skimage.metrics import structural_similarity

    clean, estimate = _as_batches(clean, estimate, data_range)
    _, full = structural_similarity(
        clean[0], estimate[0], data_range=data_range, channel_axis=-1, full=True
    )
    return full


def _odd_floor(sizes):
    return [s if s % 2 else s - 1 for s in sizes]


def _as_batches(clean, estimate, data_range):
    clean = np.asarray(clean, dtype=np.float64)
    estimate = np.clip(np.asarray(estimate, dtype=np.float64), 0, data_range)
    if clean.shape != estimate.shape:
        raise ValueError(f"Shapes differ: {clean.shape} and {estimate.shape}")
    if clean.ndim == 3:
        clean, estimate = clean[None], estimate[None]
    return clean, estimate
