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


def resolve_arch(name: str, given: dict):
    """The provided architecture and its validated hyperparameters."""
    provided = get_architecture(name)
    params = hyperparams.resolve(provided.spec.hyperparams, given, f"Architecture {name!r}")
    return provided, params


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


def _log_inputs(prepared, run_dir: Path) -> None:
    import mlflow

    from daeflow import profile, tracking

    for role, clean, noisy, source in prepared.pairs:
        digest = tracking.sha256_digest(clean, *([noisy] if noisy is not None else []))
        mlflow.set_tag(f"data.{role}.sha256", digest)
        context = "training" if role == "train" else role
        tracking.log_dataset(
            clean, noisy, digest, f"{role}:{Path(str(source)).name}", str(source), context
        )
    if prepared.split is not None:
        path = run_dir / "split_indices.json"
        path.write_text(json.dumps(prepared.split.as_dict()))
        mlflow.log_artifact(str(path))
    mlflow.log_metrics(profile.noise_profile(prepared.source))


def _final_metrics(model, prepared, batch_size) -> dict:
    from daeflow.evaluation import evaluate

    test, noisy = evaluate(
        model, prepared.test.source, prepared.test.indices, batch_size, with_noisy=True
    )
    metrics = {**test.means("test_"), **noisy.means("noisy_")}
    metrics["psnr_gain"] = metrics["test_psnr"] - metrics["noisy_psnr"]
    metrics["ssim_gain"] = metrics["test_ssim"] - metrics["noisy_ssim"]
    return metrics


def run(config: RunConfig, write=print) -> RunOutcome:
    """Validate everything, then train and evaluate one model inside one MLflow run."""
    provided, params = resolve_arch(config.arch, config.arch_params)
    config.arch_params = params
    arch = provided.spec
    prepared = inputs.prepare(config.data, arch, config.train.seed, config.train.patch_size)
    write(f"Using {prepared.range_note}.")
    probe = building.probe_size(
        prepared.source.image_shape, arch.size_multiple, config.train.patch_size
    )
    model = building.build_checked(provided, params, prepared.source.image_shape[-1], probe)

    import mlflow

    from daeflow import tracking, trainer

    tracking_uri = tracking.use_tracking_uri(config.tracking_uri)
    tags = {"arch": arch.name, "plugin": provided.plugin.distribution, "daeflow.command": "run"}
    nested = config.parent_run_id is not None
    with (
        tracking.tracked_run(config.experiment, config.run_name, tags, nested) as active,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params({**config.params(), **prepared.params, **_versions(provided)})
        _log_inputs(prepared, Path(tmp))
        write(
            f"Training {arch.name} on {len(prepared.train)} images "
            f"(validation {len(prepared.val)}, test {len(prepared.test)})."
        )
        result = trainer.fit(
            model, prepared.train, prepared.val, config.train, [tracking.EpochLogger()], write
        )
        metrics = _final_metrics(result.model, prepared, config.train.batch_size)
        metrics.update(
            best_epoch=result.best_epoch,
            best_val_psnr=result.best_val_psnr,
            train_seconds=result.train_seconds,
            train_images_per_second=result.images_per_second,
            trainable_params=sum(int(w.numpy().size) for w in model.trainable_weights),
        )
        mlflow.log_metrics(metrics)
        mlflow.set_tag("stop_reason", result.stop_reason)
        info = tracking.log_model(
            result.model,
            {
                "data_range": prepared.data_range,
                "arch": arch.name,
                "size_multiple": arch.size_multiple,
                "output_range": arch.output_range,
            },
            provided.plugin.distribution,
            provided.plugin.version,
        )
    return RunOutcome(
        run_id=active.info.run_id,
        experiment_id=active.info.experiment_id,
        tracking_uri=tracking_uri,
        model_uri=info.model_uri,
        metrics=metrics,
        stop_reason=result.stop_reason,
        best_epoch=result.best_epoch,
    )
