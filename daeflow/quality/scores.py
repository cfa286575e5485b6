"""Per-image scores of a set of images, and the summary a run reports."""

from dataclasses import dataclass

import numpy as np

from daeflow.quality import metrics


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
    """Scores of a batch already scaled to [0, 1]; the estimate is clipped to [0, 1] first."""
    clipped = np.clip(estimate, 0, 1)
    return Scores(
        metrics.psnr(clean, clipped, 1.0),
        metrics.ssim(clean, clipped, 1.0),
        metrics.mse(clean, clipped),
    )


def concat(parts: list[Scores]) -> Scores:
    """One Scores from several batches' Scores."""
    return Scores(
        *(np.concatenate([getattr(p, k) for p in parts]) for k in ("psnr", "ssim", "mse"))
    )


def summary(denoised: Scores, noisy: Scores) -> dict[str, float]:
    """test_* and noisy_* means and the gains of the denoised over the noisy images."""
    result = {**denoised.means("test_"), **noisy.means("noisy_")}
    result["psnr_gain"] = result["test_psnr"] - result["noisy_psnr"]
    result["ssim_gain"] = result["test_ssim"] - result["noisy_ssim"]
    return result
