"""`daeflow register`, `run --register`, `--register-best`: a run's model into the registry.

Each version carries a model card (Markdown, shown by the MLflow UI as its description)
written from what the run logged, and tags for searching the registry.
"""

from daeflow.config import described_noise
from daeflow.data.prepare import CLEAN_TARGETS, CLEAN_USE
from daeflow.data.ranges import RANGE_PARAM
from daeflow.errors import UsageError
from daeflow.track.names import TAG_EPOCHS_DONE, TAG_MODEL_CHECK, TAG_TRAIN_DIGEST
from daeflow.train.objectives import SUPERVISED, described_run

USE = (
    "    daeflow denoise in.npy -o out.npy --model {uri}\n"
    '    mlflow.pyfunc.load_model("{uri}").predict(image)  # uint8, uint16 or float images\n'
    "    daeflow serve {uri}  # MLflow's scoring server on 127.0.0.1:5001"
)
MODEL_CHECK_PASSED = "passed"


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _epochs(params: dict, tags: dict) -> str:
    """The epochs a run was asked for; with a time budget and no --epochs, those it trained."""
    if params.get("epochs") == "None":
        return f"{tags.get(TAG_EPOCHS_DONE, '?')} (until the time budget)"
    return params.get("epochs", "?")


def model_card(run, baselines: list[dict], name: str, uri: str) -> str:
    """The Markdown description of a registered version: what it is, how good, how made."""
    from daeflow.track.names import value

    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    arch = params.get("arch", tags.get("arch", "?"))
    hyper = " ".join(f"{k[5:]}={v}" for k, v in sorted(params.items()) if k.startswith("arch."))
    rows = [
        ("this model", value(metrics, "test_psnr"), value(metrics, "test_ssim")),
        ("noisy input", value(metrics, "noisy_psnr"), value(metrics, "noisy_ssim")),
    ] + [(f"baseline {b['method']}", b["test_psnr"], b["test_ssim"]) for b in baselines]
    table = ["| test set | PSNR dB | SSIM |", "|---|---:|---:|"] + [
        f"| {label} | {_number(psnr, 2)} | {_number(ssim, 4)} |" for label, psnr, ssim in rows
    ]
    seconds, epochs = value(metrics, "train_seconds"), value(metrics, "best_epoch")
    facts = [
        f"architecture: `{arch}` from plugin `{params.get('plugin.distribution', '?')}` "
        f"{params.get('plugin.version', '')}" + (f" ({hyper})" if hyper else ""),
        f"objective: {described_run(params)}; clean images used: "
        f"{params.get(CLEAN_USE, CLEAN_TARGETS)}",
        *([f"noise: {noise}"] if (noise := described_noise(params)) else []),
        f"data: {params.get('data.shape', '?')} {params.get('data.dtype', '?')}, data range "
        f"{params.get(RANGE_PARAM, '?')}, SHA-256 `{tags.get(TAG_TRAIN_DIGEST, '?')}`",
        f"split: train {params.get('split.train', '?')}, validation "
        f"{params.get('split.val', '?')}, test {params.get('split.test', '?')}; "
        f"seed {params.get('seed', '?')}",
        f"training: {_number(seconds, 1)} s, best epoch {_number(epochs, 0)} of "
        f"{_epochs(params, tags)}, precision {params.get('precision.policy', 'float32')}",
        "scores: per test image, then averaged, on the data range above; SSIM with "
        "scikit-image's 7x7 uniform window",
        f"run: `{run.info.run_id}` (experiment {run.info.experiment_id})",
    ]
    return "\n".join(
        [
            f"# {name}: `{arch}` denoiser",
            "",
            *table,
            "",
            *(f"- {fact}" for fact in facts),
            "",
            "Use it:",
            "",
            USE.format(uri=uri),
            "",
        ]
    )


def card_tags(run) -> dict:
    """Tags of the version: what to search the registry by."""
    from daeflow.track.names import value

    params, metrics = run.data.params, run.data.metrics
    found = {
        "arch": params.get("arch"),
        "objective": params.get("objective", SUPERVISED),
        "plugin": params.get("plugin.distribution"),
        "data.sha256": run.data.tags.get(TAG_TRAIN_DIGEST),
        "data.dtype": params.get("data.dtype"),
        RANGE_PARAM: params.get(RANGE_PARAM),
        "precision": params.get("precision.policy"),
        "test_psnr": value(metrics, "test_psnr"),
        "test_ssim": value(metrics, "test_ssim"),
    }
    return {k: v for k, v in found.items() if v is not None}


def register_run(run_ref: str, name: str, alias: str | None = None):
    """Register the model of a finished run (id, id prefix or name); a Registered."""
    from daeflow.track import comparable, queries, registry

    run = queries.find_run(run_ref)
    if run.info.status != "FINISHED":
        raise UsageError(
            f"Run {run.info.run_id[:8]} is {run.info.status}, not FINISHED; register a "
            "finished run (resume it with 'daeflow run --resume')."
        )
    baselines = queries.baselines_for(comparable.of_run(run))

    def describe(registered) -> str:
        return model_card(run, baselines, name, registered.uri)

    registry.check_name(name)
    model_id = registry.run_model_id(run)
    check_logged_model(run, model_id)
    tags = {**card_tags(run), TAG_MODEL_CHECK: MODEL_CHECK_PASSED}
    return registry.register(run, name, describe, tags, alias, model_id)


def check_logged_model(run, model_id: str) -> None:
    """Refuse, before a version exists, a logged model that `daeflow check-model` refuses."""
    import tempfile
    from pathlib import Path

    from daeflow.track.model_check import checked_model

    where = f"of run {run.info.run_id[:8]} (models:/{model_id})"
    with tempfile.TemporaryDirectory(prefix="daeflow-register-") as tmp:
        checked_model(f"models:/{model_id}", Path(tmp) / "model", where=where)


def best_child(
    parent_run_id: str, metric: str = "best_val_psnr", higher_is_better: bool = True
) -> str:
    """The finished child run of a sweep or study with the best validation `metric` (the
    highest, or the lowest for a loss).

    Chosen on validation scores, never on the test set (which each run uses once).
    """
    from daeflow.track import queries
    from daeflow.track.names import value

    children = [
        run
        for run in queries.child_runs(parent_run_id)
        if run.info.status == "FINISHED" and value(run.data.metrics, metric) is not None
    ]
    if not children:
        raise UsageError(
            f"Run {parent_run_id[:8]} has no finished child run with {metric}; nothing to register."
        )
    best = max if higher_is_better else min
    return best(children, key=lambda run: value(run.data.metrics, metric)).info.run_id
