"""Score a trained model on new data, optionally as an MLflow evaluation run."""

import numpy as np

from daeflow import data
from daeflow.evaluation import Scores, concat, score
from daeflow.tiling import denoise_image


def load_pair(clean_path: str, noisy_path: str, data_range: float | None):
    """Validated clean and noisy ImageArrays with their data range."""
    clean = data.as_images(data.load_array(clean_path, "clean"))
    noisy = data.as_images(data.load_array(noisy_path, "noisy"))
    data.check_same_shape(clean, noisy)
    data_range, _ = data.infer_data_range(clean, data_range)
    data.check_values(clean, data_range)
    data.check_values(noisy, data_range, slack=1.0)
    return clean, noisy, data_range


def score_model(denoiser, clean, noisy, data_range: float) -> tuple[Scores, Scores]:
    """Per-image scores of the denoised and of the noisy images (whole images, tiled)."""
    denoised_parts, noisy_parts = [], []
    scale = np.float32(1.0 / data_range)
    for i in range(len(clean)):
        c = clean.read([i]).astype(np.float32) * scale
        n = noisy.read([i]).astype(np.float32) * scale
        d = denoise_image(denoiser.model, n[0], multiple=denoiser.size_multiple)[None]
        denoised_parts.append(score(c, d))
        noisy_parts.append(score(c, n))
    return concat(denoised_parts), concat(noisy_parts)


def evaluate_model(denoiser, clean_path, noisy_path, data_range, log=False, experiment="daeflow"):
    """Scores as metrics named like a training run's; with `log`, also an MLflow run."""
    clean, noisy, data_range = load_pair(clean_path, noisy_path, data_range)
    test, noisy_scores = score_model(denoiser, clean, noisy, data_range)
    metrics = {**test.means("test_"), **noisy_scores.means("noisy_"), "n_images": len(clean)}
    metrics["psnr_gain"] = metrics["test_psnr"] - metrics["noisy_psnr"]
    outcome = {"metrics": metrics}
    if log:
        import mlflow

        from daeflow import tracking

        tags = {"daeflow.command": "evaluate", "model_uri": denoiser.uri}
        with tracking.tracked_run(experiment, None, tags) as run:
            mlflow.log_params(
                {
                    "model_uri": denoiser.uri,
                    "data.clean": clean_path,
                    "data.noisy": noisy_path,
                    "data.range": data_range,
                    "self_ensemble": denoiser.self_ensemble,
                }
            )
            mlflow.log_metrics(metrics)
        outcome["run_id"] = run.info.run_id
    return outcome
