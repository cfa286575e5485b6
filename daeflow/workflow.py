"""The one place where registry, data, trainer and tracking meet for a run."""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from daeflow import __version__, building, hyperparams, inputs
from daeflow.config import RunConfig
from daeflow.registry import get_architecture


@dataclass
class RunOutcome:
    """What a finished run reports."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_uri: str
    metrics: dict = field(default_factory=dict)
    stop_reason: str = "epochs"
    best_epoch: int = -1


@dataclass
class PreparedRun:
    """Everything validated and built before an MLflow run starts."""

    config: RunConfig
    provided: object
    data: inputs.PreparedData
    model: object


def resolve_arch(name: str, given: dict):
    """The provided architecture and its validated hyperparameters."""
    provided = get_architecture(name)
    params = hyperparams.resolve(provided.spec.hyperparams, given, f"Architecture {name!r}")
    return provided, params


def prepare(config: RunConfig, write=print) -> PreparedRun:
    """Validate the architecture, its parameters and the data; build the model. Logs nothing."""
    provided, params = resolve_arch(config.arch, config.arch_params)
    config.arch_params = params
    arch = provided.spec
    data = inputs.prepare(config.data, arch, config.train.seed, config.train.patch_size)
    write(f"Using {data.range_note}.")
    probe = building.probe_size(
        data.source.image_shape, arch.size_multiple, config.train.patch_size
    )
    model = building.build_checked(provided, params, data.source.image_shape[-1], probe)
    return PreparedRun(config, provided, data, model)


def _versions(provided) -> dict:
    import importlib.metadata as md

    return {
        "version.daeflow": __version__,
        "version.tensorflow": md.version("tensorflow"),
        "version.keras": md.version("keras"),
        "version.mlflow": md.version("mlflow"),
        "plugin.name": provided.plugin.name,
        "plugin.distribution": provided.plugin.distribution,
        "plugin.version": provided.plugin.version,
    }


def log_inputs(data: inputs.PreparedData) -> None:
    """Dataset inputs with content digests, the split indices and the noise profile."""
    import mlflow

    from daeflow import profile, tracking

    for role, clean, noisy, source in data.pairs:
        digest = tracking.sha256_digest(clean, *([noisy] if noisy is not None else []))
        mlflow.set_tag(f"data.{role}.sha256", digest)
        context = "training" if role == "train" else role
        name = f"{role}:{Path(str(source)).name}"
        tracking.log_dataset(clean, noisy, digest, name, str(source), context)
    if data.split is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "split_indices.json"
            path.write_text(json.dumps(data.split.as_dict()))
            mlflow.log_artifact(str(path))
    mlflow.log_metrics(profile.noise_profile(data.source))


def test_metrics(model, data: inputs.PreparedData, batch_size: int) -> dict:
    """Test and noisy-input scores, their gain, percentiles; logs the per-image report."""
    from daeflow.artifacts import log_test_report
    from daeflow.evaluation import evaluate

    test, noisy = evaluate(model, data.test.source, data.test.indices, batch_size, with_noisy=True)
    metrics = {**test.means("test_"), **noisy.means("noisy_")}
    metrics["psnr_gain"] = metrics["test_psnr"] - metrics["noisy_psnr"]
    metrics["ssim_gain"] = metrics["test_ssim"] - metrics["noisy_ssim"]
    metrics.update(log_test_report(model, data.test, test, noisy))
    return metrics


def train_in_active_run(prepared: PreparedRun, write=print):
    """Log params and inputs, train, evaluate on the test set once, log the model."""
    import mlflow

    from daeflow import artifacts, tracking, trainer

    config, data, arch = prepared.config, prepared.data, prepared.provided.spec
    mlflow.log_params({**config.params(), **data.params, **_versions(prepared.provided)})
    log_inputs(data)
    write(
        f"Training {arch.name} on {len(data.train)} images "
        f"(validation {len(data.val)}, test {len(data.test)})."
    )
    callbacks = [artifacts.EpochLogger(), artifacts.ProbeLogger(data.val, data.source.pad_multiple)]
    result = trainer.fit(prepared.model, data.train, data.val, config.train, callbacks, write)
    metrics = test_metrics(result.model, data, config.train.batch_size)
    metrics.update(
        best_epoch=result.best_epoch,
        best_val_psnr=result.best_val_psnr,
        train_seconds=result.train_seconds,
        train_images_per_second=result.images_per_second,
        **artifacts.cost_metrics(result.model, data.source.image_shape[-1], arch.size_multiple),
    )
    mlflow.log_metrics(metrics)
    mlflow.set_tag("stop_reason", result.stop_reason)
    info = tracking.log_model(
        result.model,
        {
            "data_range": data.data_range,
            "arch": arch.name,
            "size_multiple": arch.size_multiple,
            "output_range": arch.output_range,
        },
        prepared.provided.plugin.distribution,
        prepared.provided.plugin.version,
    )
    return result, metrics, info.model_uri


def run(config: RunConfig, write=print) -> RunOutcome:
    """Validate everything, then train and evaluate one model inside one MLflow run."""
    prepared = prepare(config, write)

    from daeflow import tracking

    tracking_uri = tracking.use_tracking_uri(config.tracking_uri)
    arch = prepared.provided.spec
    tags = {
        "arch": arch.name,
        "plugin": prepared.provided.plugin.distribution,
        "daeflow.command": "run",
    }
    with tracking.tracked_run(config.experiment, config.run_name, tags) as active:
        result, metrics, model_uri = train_in_active_run(prepared, write)
    return RunOutcome(
        run_id=active.info.run_id,
        experiment_id=active.info.experiment_id,
        tracking_uri=tracking_uri,
        model_uri=model_uri,
        metrics=metrics,
        stop_reason=result.stop_reason,
        best_epoch=result.best_epoch,
    )
