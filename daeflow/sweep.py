"""`daeflow sweep`: a grid of architectures and parameters, repeated over seeds, as nested runs."""

import copy
import itertools
from dataclasses import dataclass, fields

import numpy as np

from daeflow.config import RunConfig, TrainOptions
from daeflow.errors import UsageError

TRAIN_FIELDS = {f.name: f.type for f in fields(TrainOptions)}


@dataclass
class Child:
    """One configuration and seed of the sweep, and how it ended."""

    label: str
    seed: int
    run_id: str | None = None
    status: str = "PENDING"
    metrics: dict | None = None


def parse_grid(params: list[str]) -> dict[str, list[str]]:
    """['learning_rate=1e-3,3e-4', 'arch.filters=16,32'] -> {name: [values]}."""
    grid = {}
    for item in params:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise UsageError(f"--param expects NAME=V1,V2,... Received: {item!r}")
        if not key.startswith("arch.") and key not in TRAIN_FIELDS:
            allowed = ", ".join(sorted(TRAIN_FIELDS))
            raise UsageError(
                f"--param {key!r} is neither a training option ({allowed}) nor arch.<name>."
            )
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def configurations(archs: list[str], grid: dict[str, list[str]]):
    """(label, arch, {name: value}) for every point of the grid."""
    names = list(grid)
    for arch in archs:
        for values in itertools.product(*(grid[n] for n in names)):
            point = dict(zip(names, values, strict=True))
            label = " ".join([arch, *(f"{k}={v}" for k, v in point.items())])
            yield label, arch, point


def child_config(base: RunConfig, arch: str, point: dict, seed: int) -> RunConfig:
    """A copy of the base config with this grid point and seed applied."""
    config = copy.deepcopy(base)
    config.arch = arch
    config.arch_params = {k[5:]: v for k, v in point.items() if k.startswith("arch.")}
    train = {k: v for k, v in point.items() if not k.startswith("arch.")}
    values = vars(config.train) | {k: _convert(k, v) for k, v in train.items()} | {"seed": seed}
    config.train = TrainOptions(**values)
    return config


def _convert(name: str, value: str):
    kind = TRAIN_FIELDS[name]
    try:
        if "float" in str(kind):
            return float(value)
        if "int" in str(kind):
            return int(float(value))
        if "bool" in str(kind):
            return value.lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise UsageError(f"--param {name} takes numbers. Received: {value!r}") from None
    return value


def summarize(children: list[Child]) -> dict[str, dict]:
    """Per configuration: mean and std of the test metrics over finished seeds."""
    summary = {}
    for label in dict.fromkeys(c.label for c in children):
        done = [c.metrics for c in children if c.label == label and c.metrics]
        entry = {
            "finished": len(done),
            "failed": sum(c.label == label and not c.metrics for c in children),
        }
        for metric in ("test_psnr", "test_ssim", "psnr_gain"):
            values = [m[metric] for m in done]
            if values:
                entry[f"{metric}_mean"] = float(np.mean(values))
                entry[f"{metric}_std"] = float(np.std(values))
        summary[label] = entry
    return summary


def metric_key(label: str) -> str:
    """A configuration label as an MLflow metric-name prefix (letters, digits, _-./ only)."""
    return "".join(ch if ch.isalnum() or ch in "_-./" else "_" for ch in label.replace(" ", "/"))


def run_sweep(base: RunConfig, archs: list[str], grid: dict, seeds: list[int], write=print):
    """Train every configuration for every seed under one parent run; failures are recorded."""
    import mlflow

    from daeflow import tracking

    tracking.use_tracking_uri(base.tracking_uri)
    children = [Child(label, seed) for label, _, _ in configurations(archs, grid) for seed in seeds]
    points = {label: (arch, point) for label, arch, point in configurations(archs, grid)}
    tags = {"daeflow.command": "sweep"}
    with tracking.tracked_run(base.experiment, base.run_name or "sweep", tags) as parent:
        mlflow.log_params(
            {
                "sweep.archs": ",".join(archs),
                "sweep.seeds": ",".join(map(str, seeds)),
                **{f"sweep.{k}": ",".join(v) for k, v in grid.items()},
            }
        )
        for number, child in enumerate(children, 1):
            write(f"[{number}/{len(children)}] {child.label} seed={child.seed}")
            arch, point = points[child.label]
            _run_child(base, arch, point, child, write)
        summary = summarize(children)
        _log_summary(summary)
    return parent.info.run_id, children, summary


def _run_child(base, arch, point, child: Child, write) -> None:
    import mlflow

    from daeflow import tracking, workflow
    from daeflow.errors import Interrupted

    name = f"{child.label} seed={child.seed}"
    try:
        with tracking.tracked_run(
            base.experiment, name, {"sweep.config": child.label}, nested=True
        ) as run:
            child.run_id = run.info.run_id
            prepared = workflow.prepare(child_config(base, arch, point, child.seed), write)
            mlflow.set_tags(
                {
                    "arch": arch,
                    "plugin": prepared.provided.plugin.distribution,
                    "daeflow.command": "run",
                }
            )
            _, child.metrics, _ = workflow.train_in_active_run(prepared, write)
        child.status = "FINISHED"
    except Interrupted:
        raise
    except Exception as exc:  # a failed child is recorded as FAILED and the sweep goes on
        child.status = "FAILED"
        if child.run_id:
            mlflow.MlflowClient().set_tag(child.run_id, "error", str(exc)[:500])
        write(f"  failed: {exc}")


def _log_summary(summary: dict) -> None:
    import mlflow

    metrics = {}
    for label, entry in summary.items():
        prefix = metric_key(label)
        metrics.update(
            {f"{prefix}.{k}": v for k, v in entry.items() if k.endswith(("_mean", "_std"))}
        )
    mlflow.log_metrics(metrics)
    mlflow.log_dict(summary, "sweep_summary.json")
    ranked = [(e["test_psnr_mean"], label) for label, e in summary.items() if "test_psnr_mean" in e]
    if ranked:
        best_psnr, best = max(ranked)
        mlflow.set_tag("best_config", best)
        mlflow.log_metric("best_test_psnr_mean", best_psnr)
