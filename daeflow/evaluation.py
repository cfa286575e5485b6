"""Score a model on a fixed set of images, image by image, without holding them all."""

from dataclasses import dataclass

import numpy as np

from daeflow import metrics
from daeflow.pipeline import PairSource, predict


@dataclass
class Scores:
    """Per-image PSNR (dB), SSIM and MSE (on the [0, 1] scale) of one set of images."""

    psnr: np.ndarray
    ssim: np.ndarray
    mse: np.ndarray

    def means(self, prefix: str = "") -> dict[str, float]:
        """Dataset means, keyed e.g. 'test_psnr'."""
        return {
            f"{prefix}psnr": float(np.mean(self.psnr)),
            f"{prefix}ssim": float(np.mean(self.ssim)),
            f"{prefix}mse": float(np.mean(self.mse)),
        }


def score(clean: np.ndarray, estimate: np.ndarray) -> Scores:
    """Scores of a batch already scaled to [0, 1]."""
    clipped = np.clip(estimate, 0, 1)
    return Scores(
        metrics.psnr(clean, clipped, 1.0),
        metrics.ssim(clean, clipped, 1.0),
        np.mean((clean - estimate) ** 2, axis=(1, 2, 3)),
    )


def concat(parts: list[Scores]) -> Scores:
    """One Scores from several batches' Scores."""
    return Scores(
        *(np.concatenate([getattr(p, k) for p in parts]) for k in ("psnr", "ssim", "mse"))
    )


def evaluate(model, source: PairSource, indices, batch_size: int, with_noisy: bool = False):
    """Scores of the model's output (and, with_noisy, of the noisy input) on `indices`."""
    denoised, noisy_parts = [], []
    for noisy, clean in source.eval_batches(indices, batch_size):
        denoised.append(score(clean, predict(model, noisy, source.pad_multiple)))
        if with_noisy:
            noisy_parts.append(score(clean, noisy))
    if with_noisy:
        return concat(denoised), concat(noisy_parts)
    return concat(denoised)
