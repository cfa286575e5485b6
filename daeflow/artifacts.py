"""What a run logs as it trains and ends: epoch metrics, probe grids, per-image tables, cost."""

import resource
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np

from daeflow.backend import load_keras
from daeflow.evaluation import Scores
from daeflow.images import denoising_grid
from daeflow.pipeline import predict

keras = load_keras()

PROBES = 4
EXAMPLES = "test_examples.npz"
COST_SIZE = 256


class EpochLogger(keras.callbacks.Callback):
    """Logs every numeric value of each epoch's logs as an MLflow metric with step=epoch."""

    def on_epoch_end(self, epoch, logs=None):
        values = {k: float(v) for k, v in (logs or {}).items() if np.isscalar(v) or np.ndim(v) == 0}
        mlflow.log_metrics(values, step=epoch)


class ProbeLogger(keras.callbacks.Callback):
    """Logs the grid clean | noisy | denoised | error of fixed validation images every epoch."""

    def __init__(self, subset, multiple: int = 1):
        super().__init__()
        ordered = np.sort(subset.indices)  # spread over the split, the same for the same seed
        indices = ordered[np.unique(np.linspace(0, len(ordered) - 1, PROBES).astype(int))]
        self.noisy, self.clean = subset.source.batch(indices)
        self.multiple = multiple

    def on_epoch_end(self, epoch, logs=None):
        self.log(self.model, epoch)

    def log(self, model, step: int) -> None:
        """Log the probe grid of `model`'s output at `step`."""
        denoised = predict(model, self.noisy, self.multiple)
        mlflow.log_image(denoising_grid(self.clean, self.noisy, denoised), key="probe", step=step)


def log_test_report(model, test, test_scores: Scores, noisy_scores: Scores) -> dict:
    """Per-image table, percentiles, the worst images and examples; returns the new metrics."""
    indices = np.asarray(test.indices)
    mlflow.log_table(
        {
            "image": indices.tolist(),
            "psnr": test_scores.psnr.tolist(),
            "ssim": test_scores.ssim.tolist(),
            "noisy_psnr": noisy_scores.psnr.tolist(),
            "noisy_ssim": noisy_scores.ssim.tolist(),
        },
        artifact_file="test_per_image.json",
    )
    metrics = {}
    for name, values in (("psnr", test_scores.psnr), ("ssim", test_scores.ssim)):
        for q in (5, 50, 95):
            metrics[f"test_{name}_p{q:02d}"] = float(np.percentile(values, q))
    worst = indices[np.argsort(test_scores.psnr)[:PROBES]]
    _log_grid(model, test.source, worst, "worst_test_images.png")
    _log_examples(model, test.source, np.sort(indices)[:PROBES])
    return metrics


def _log_grid(model, source, indices, artifact_file):
    noisy, clean = source.batch(indices)
    denoised = predict(model, noisy, source.pad_multiple)
    mlflow.log_image(denoising_grid(clean, noisy, denoised), artifact_file=artifact_file)


def _log_examples(model, source, indices):
    """The first test images, noisy and denoised, so `daeflow compare` can set runs side by side."""
    noisy, clean = source.batch(indices)
    denoised = np.clip(predict(model, noisy, source.pad_multiple), 0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / EXAMPLES
        np.savez_compressed(
            path,
            indices=indices,
            clean=clean.astype(np.float16),
            noisy=np.clip(noisy, 0, 1).astype(np.float16),
            denoised=denoised.astype(np.float16),
        )
        mlflow.log_artifact(str(path))


def cost_metrics(model, channels: int, multiple: int) -> dict:
    """Trainable parameters, inference time of one size x size image, peak memory so far."""
    size = max(multiple, COST_SIZE // multiple * multiple)
    image = np.zeros((1, size, size, channels), np.float32)
    model.predict_on_batch(image)  # warm-up
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        model.predict_on_batch(image)
        timings.append(time.perf_counter() - start)
    return {
        "trainable_params": float(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "inference_ms": 1000 * float(np.median(timings)),
        "inference_size": float(size),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
