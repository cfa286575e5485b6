"""Classical reference denoisers, tuned on the validation set, scored on the same test split."""

import itertools
from dataclasses import dataclass, field

import numpy as np

from daeflow.quality.scores import concat, score


def _identity(image, **_):
    return image


def _gaussian(image, sigma):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, sigma=(sigma, sigma, 0))


def _median(image, size):
    from scipy.ndimage import median_filter

    return median_filter(image, size=(size, size, 1))


def _noise_sigma(image):
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(image, channel_axis=-1)))


def _nlm(image, h):
    from skimage.restoration import denoise_nl_means

    sigma = _noise_sigma(image)
    return denoise_nl_means(
        image,
        h=h * sigma,
        sigma=sigma,
        patch_size=5,
        patch_distance=6,
        fast_mode=True,
        channel_axis=-1,
    )


def _tv(image, weight):
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(image, weight=weight, channel_axis=-1)


def _wavelet(image, scale):
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(
        image,
        sigma=scale * _noise_sigma(image),
        method="BayesShrink",
        mode="soft",
        rescale_sigma=True,
        channel_axis=-1,
    )


@dataclass(frozen=True)
class Method:
    """A classical denoiser and the parameter grid searched on the validation set."""

    name: str
    library: str
    function: object
    grid: dict = field(default_factory=dict)


METHODS = {
    m.name: m
    for m in (
        Method("identity", "none (the noisy input)", _identity),
        Method(
            "gaussian",
            "scipy.ndimage.gaussian_filter",
            _gaussian,
            {"sigma": (0.5, 0.8, 1.0, 1.5, 2.0)},
        ),
        Method("median", "scipy.ndimage.median_filter", _median, {"size": (3, 5)}),
        Method(
            "nlm", "skimage.restoration.denoise_nl_means", _nlm, {"h": (0.4, 0.5, 0.6, 0.8, 1.0)}
        ),
        Method(
            "tv",
            "skimage.restoration.denoise_tv_chambolle",
            _tv,
            {"weight": (0.03, 0.06, 0.1, 0.15, 0.2)},
        ),
        Method(
            "wavelet", "skimage.restoration.denoise_wavelet", _wavelet, {"scale": (0.75, 1.0, 1.25)}
        ),
    )
}


def apply(method: Method, noisy: np.ndarray, params: dict) -> np.ndarray:
    """Denoise a (N, H, W, C) batch on [0, 1] image by image; the output keeps its shape."""
    # scikit-image drops a channel axis of length 1: give it back.
    return np.stack(
        [
            np.reshape(method.function(image.astype(np.float64), **params), image.shape)
            for image in noisy
        ]
    )


def scores(method: Method, subset, params: dict, batch_size: int = 32):
    """Per-image scores of the method on a subset, and of its noisy input."""
    denoised, noisy_parts = [], []
    for noisy, clean in subset.source.eval_batches(subset.indices, batch_size):
        denoised.append(score(clean, apply(method, noisy, params)))
        noisy_parts.append(score(clean, noisy))
    return concat(denoised), concat(noisy_parts)


def tune(method: Method, val, write=print) -> dict:
    """The grid point with the best mean validation PSNR."""
    best, best_psnr = {}, -np.inf
    names = list(method.grid)
    for values in itertools.product(*(method.grid[n] for n in names)):
        params = dict(zip(names, values, strict=True))
        psnr = float(np.mean(scores(method, val, params)[0].psnr))
        write(f"  {method.name} {params}: validation PSNR {psnr:.2f} dB")
        if psnr > best_psnr:
            best, best_psnr = params, psnr
    return best
