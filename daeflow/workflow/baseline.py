"""`daeflow baseline`: a classical denoiser as an MLflow run, comparable with network runs.

It needs no TensorFlow: the data, the classical methods and MLflow are all it imports.
"""

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from daeflow.config import DataOptions, logged_noise_params
from daeflow.data.prepare import prepare_data
from daeflow.errors import UsageError
from daeflow.plugin.specs import Architecture
from daeflow.quality.baselines import METHODS, apply, scores, tune
from daeflow.quality.scores import summary
from daeflow.track.names import TAG_COMMAND, TAG_COMMAND_LINE


class MethodModel:
    """Makes a tuned classical method look like a model to the reporting code."""

    def __init__(self, method, params):
        self.method, self.params = method, params

    def predict_on_batch(self, noisy):
        return apply(self.method, noisy, self.params).astype(np.float32)


def _placeholder_build(input_shape, params):
    raise NotImplementedError("a classical method has no network")


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
    from daeflow.infer.evaluation import inference_ms
    from daeflow.track import logs, names, queries, runs, store, view
    from daeflow.workflow import run_report
    from daeflow.workflow.run import log_inputs, scored_on
    from daeflow.workflow.run_report import COST_SIZE, TABLE, probe_renderer, write_test_report

    if method_name not in METHODS:
        raise UsageError(f"Unknown method {method_name!r}. Choose one of: {', '.join(METHODS)}.")
    method = METHODS[method_name]
    store.use_tracking_uri(tracking_uri)
    placeholder = Architecture(method_name, method.library, build=_placeholder_build)
    prepared = prepare_data(data, placeholder, seed)
    for line in prepared.lines:
        write(line)
    write(f"Tuning {method_name} on {len(prepared.val)} images.")
    tags = {"method": method_name, TAG_COMMAND: "baseline", "arch": f"baseline:{method_name}"}
    with runs.tracked_run(experiment, run_name or f"baseline-{method_name}", tags) as active:
        start = time.perf_counter()
        best = tune(method, prepared.val, write)
        model = MethodModel(method, best)
        test, noisy = scores(method, prepared.test, best)
        options = {f"data.{k}": v for k, v in vars(data).items() if k != "noise_params"}
        params = {
            "method": method_name,
            "arch": f"baseline:{method_name}",
            "library": method.library,
            "seed": seed,
            **{f"tuned.{k}": v for k, v in best.items()},
            **options,
            **logged_noise_params(data.noise_params),
            **prepared.params,
        }
        logs.log_params(params)
        logs.set_tags({TAG_COMMAND_LINE: run_report.command_line()})
        digest = log_inputs(prepared)
        metrics = summary(test, noisy)
        results = Path(tempfile.mkdtemp(prefix="daeflow-baseline-"))
        percentiles, worst = write_test_report(results, model, prepared.test, test, noisy)
        metrics.update(percentiles)
        metrics.update(
            train_seconds=time.perf_counter() - start,
            trainable_params=0.0,
            inference_ms=inference_ms(
                model.predict_on_batch,
                prepared.source.image_shape[-1],
                COST_SIZE,
                repeats=1,
                warm_up=False,
            ),
            inference_size=float(COST_SIZE),
        )
        probes = probe_renderer(prepared.val)(model)
        logs.log_image(probes, key="probe", step=1)
        others = queries.baselines_for(scored_on(prepared, params, digest))
        facts = [
            ("method", f"{method_name} ({method.library})"),
            ("tuned on validation", " ".join(f"{k}={v}" for k, v in best.items())),
            ("data", f"{prepared.pairs[0][3]}, {prepared.params['data.shape']}"),
            ("data digest (SHA-256)", digest),
        ]
        page = run_report.run_page(
            f"daeflow baseline: {method_name}", facts, metrics, others, [], probes, worst
        )
        (results / "report.html").write_text(page)
        headline = view.headline(metrics, f"baseline:{method_name}")
        logs.log_results(results, names.tracked(metrics), headline, tables=(TABLE,))
        shutil.rmtree(results, ignore_errors=True)
    return active.info.run_id, metrics, best
