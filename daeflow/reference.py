"""`daeflow baseline`: a classical denoiser as an MLflow run, comparable with network runs."""

import time

import numpy as np

from daeflow import inputs
from daeflow.baselines import METHODS, apply, scores, tune
from daeflow.config import DataOptions
from daeflow.errors import UsageError
from daeflow.specs import Architecture


class MethodModel:
    """Makes a tuned classical method look like a Keras model to the reporting code."""

    def __init__(self, method, params):
        self.method, self.params = method, params

    def predict_on_batch(self, noisy):
        return apply(self.method, noisy, self.params).astype(np.float32)


def _inference_ms(model, channels: int) -> float:
    image = np.random.default_rng(0).uniform(0, 1, (1, 256, 256, channels)).astype(np.float32)
    start = time.perf_counter()
    model.predict_on_batch(image)
    return 1000 * (time.perf_counter() - start)


def run_baseline(
    method_name: str,
    data: DataOptions,
    seed: int = 0,
    experiment: str = "daeflow",
    run_name: str | None = None,
    tracking_uri: str | None = None,
    write=print,
):
    """Tune on the validation split, score the test split once, log it all as one run."""
    if method_name not in METHODS:
        raise UsageError(f"Unknown method {method_name!r}. Choose one of: {', '.join(METHODS)}.")
    method = METHODS[method_name]
    placeholder = Architecture(method_name, method.library, build=None)
    prepared = inputs.prepare(data, placeholder, seed)
    write(f"Using {prepared.range_note}. Tuning {method_name} on {len(prepared.val)} images.")

    import mlflow

    from daeflow import artifacts, tracking, workflow

    tracking.use_tracking_uri(tracking_uri)
    tags = {"method": method_name, "daeflow.command": "baseline", "arch": f"baseline:{method_name}"}
    with tracking.tracked_run(experiment, run_name or f"baseline-{method_name}", tags) as active:
        start = time.perf_counter()
        best = tune(method, prepared.val, write)
        model = MethodModel(method, best)
        test, noisy = scores(method, prepared.test, best)
        options = {f"data.{k}": v for k, v in vars(data).items() if k != "noise_params"}
        mlflow.log_params(
            {
                "method": method_name,
                "arch": f"baseline:{method_name}",
                "library": method.library,
                "seed": seed,
                **{f"tuned.{k}": v for k, v in best.items()},
                **options,
                **{f"noise.{k}": v for k, v in data.noise_params.items()},
                **prepared.params,
            }
        )
        workflow.log_inputs(prepared)
        metrics = {**test.means("test_"), **noisy.means("noisy_")}
        metrics["psnr_gain"] = metrics["test_psnr"] - metrics["noisy_psnr"]
        metrics["ssim_gain"] = metrics["test_ssim"] - metrics["noisy_ssim"]
        metrics.update(artifacts.log_test_report(model, prepared.test, test, noisy))
        metrics.update(
            train_seconds=time.perf_counter() - start,
            trainable_params=0.0,
            inference_ms=_inference_ms(model, prepared.source.image_shape[-1]),
            inference_size=256.0,
        )
        artifacts.ProbeLogger(prepared.val).log(model, step=0)
        mlflow.log_metrics(metrics)
    return active.info.run_id, metrics, best
