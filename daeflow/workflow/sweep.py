"""`daeflow sweep`: a grid of architectures and parameters, repeated over seeds, as nested runs."""

import copy
import itertools
from dataclasses import asdict, dataclass

import numpy as np

from daeflow.config import OBJECTIVE_PREFIX, TRAIN_PARAM_NAMES, RunConfig, TrainOptions
from daeflow.errors import DaeflowError, UsageError
from daeflow.track.names import TAG_COMMAND, TAG_RANKED_BY


@dataclass
class Child:
    """One configuration and seed of the sweep, and how it ended."""

    label: str
    seed: int
    run_id: str | None = None
    status: str = "PENDING"
    metrics: dict | None = None


def parse_grid(params: list[str]) -> dict[str, list[str]]:
    """['learning_rate=1e-3,3e-4', 'arch.filters=16,32', 'objective.alpha=0.5,1'] ->
    {name: [values]}."""
    grid = {}
    for item in params:
        key, sep, values = item.partition("=")
        key = key.strip()
        listed = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not listed:
            raise UsageError(f"--param expects NAME=V1,V2,... Received: {item!r}")
        if not key.startswith(("arch.", OBJECTIVE_PREFIX)) and key not in TRAIN_PARAM_NAMES:
            raise UsageError(
                f"--param {key!r} is neither a training option ({', '.join(TRAIN_PARAM_NAMES)}) "
                f"nor arch.<hyperparameter> nor {OBJECTIVE_PREFIX}<parameter>."
            )
        if key in grid:
            raise UsageError(f"--param {key} is given twice; list all its values in one.")
        grid[key] = listed
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
    """A copy of the base config with this grid point and seed applied, every value checked."""
    config = copy.deepcopy(base)
    config.arch = arch
    config.arch_params = {k[5:]: v for k, v in point.items() if k.startswith("arch.")}
    objective = {
        k[len(OBJECTIVE_PREFIX) :]: v for k, v in point.items() if k.startswith(OBJECTIVE_PREFIX)
    }
    train = {k: v for k, v in point.items() if not k.startswith(("arch.", OBJECTIVE_PREFIX))}
    values = {**asdict(config.train), **train}
    values.pop("seed")
    given = {**values.pop("objective_params"), **objective}
    config.train = TrainOptions.from_strings(values, seed, given)
    return config


def check_grid(base: RunConfig, archs: list[str], grid: dict, seeds: list[int]):
    """Every grid point's config, checked before the first run starts: ({label: (arch,
    point)}, how the children are ranked)."""
    from daeflow.train.objectives import ranking
    from daeflow.workflow.run import resolve_arch, resolve_objective

    points, objectives = {}, []
    for label, arch, point in configurations(archs, grid):
        try:
            config = child_config(base, arch, point, seeds[0])
            resolve_arch(arch, config.arch_params)
            objectives.append(resolve_objective(config.train))
        except DaeflowError as exc:
            raise UsageError(f"Sweep point {label!r}: {exc}") from None
        points[label] = (arch, point)
    return points, ranking(objectives)


SCORES = ("test_psnr", "test_ssim", "psnr_gain")
LOSSES = ("best_val_loss", "test_objective_loss")  # summarized when runs are ranked by loss


def summarize(children: list[Child], by_loss: bool = False) -> dict[str, dict]:
    """Per configuration: mean and std of the test metrics over finished seeds (and of the
    validation and test losses, `by_loss`)."""
    summary = {}
    for label in dict.fromkeys(c.label for c in children):
        done = [c.metrics for c in children if c.label == label and c.metrics]
        entry = {
            "finished": len(done),
            "failed": sum(c.label == label and not c.metrics for c in children),
        }
        for metric in SCORES + (LOSSES if by_loss else ()):
            values = [m[metric] for m in done if metric in m]
            if values:
                entry[f"{metric}_mean"] = float(np.mean(values))
                entry[f"{metric}_std"] = float(np.std(values))
        summary[label] = entry
    return summary


def metric_key(label: str) -> str:
    """A configuration label as part of an MLflow metric name (letters, digits, _-. only)."""
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in label)


def run_sweep(base: RunConfig, archs: list[str], grid: dict, seeds: list[int], write=print):
    """Train every configuration for every seed under one parent run; failures are recorded."""
    from daeflow.track import logs, runs, store
    from daeflow.workflow import run_report

    points, ranked_by = check_grid(base, archs, grid, seeds)
    store.use_tracking_uri(base.tracking_uri)
    children = [Child(label, seed) for label in points for seed in seeds]
    tags = {TAG_COMMAND: "sweep", TAG_RANKED_BY: ranked_by.describe()}
    write(f"Runs are ranked by {ranked_by.run_metric}: {ranked_by.why}.")
    by_loss = not ranked_by.higher_is_better
    with runs.tracked_run(base.experiment, base.run_name or "sweep", tags) as parent:
        logs.log_params(
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
        summary = summarize(children, by_loss)
        _log_summary(summary, by_loss)
        facts = [
            ("architectures", ", ".join(archs)),
            ("grid", " ".join(f"{k}={','.join(v)}" for k, v in grid.items())),
            ("seeds", ", ".join(map(str, seeds))),
            ("data", base.data.data or base.data.clean or base.data.noisy or "demo photographs"),
            ("runs ranked by", ranked_by.describe()),
        ]
        logs.log_text(
            run_report.sweep_page("daeflow sweep", facts, children, summary, by_loss),
            "report.html",
        )
    return parent.info.run_id, children, summary, ranked_by


def _run_child(base, arch, point, child: Child, write) -> None:
    from daeflow.errors import Interrupted
    from daeflow.track import logs, runs
    from daeflow.workflow import run as workflow

    name = f"{child.label} seed={child.seed}"
    try:
        with runs.tracked_run(
            base.experiment, name, {"sweep.config": child.label}, nested=True
        ) as run:
            child.run_id = run.info.run_id
            prepared = workflow.prepare(child_config(base, arch, point, child.seed), write)
            logs.set_tags(
                {
                    "arch": arch,
                    "plugin": prepared.provided.plugin.distribution,
                    TAG_COMMAND: "run",
                }
            )
            child.metrics = workflow.train_in_active_run(prepared, write).metrics
        child.status = "FINISHED"
    except Interrupted:
        raise
    except Exception as exc:  # a failed child is recorded as FAILED and the sweep goes on
        child.status = "FAILED"
        if child.run_id:
            runs.set_tag_of(child.run_id, "error", str(exc)[:500])
        write(f"  failed: {exc}")


def _log_summary(summary: dict, by_loss: bool = False) -> None:
    from daeflow.track import logs

    # One chart section per statistic (sweep/test_psnr_mean, ...), one bar per configuration.
    metrics = {
        f"sweep/{statistic}/{metric_key(label)}": value
        for label, entry in summary.items()
        for statistic, value in entry.items()
        if statistic.endswith(("_mean", "_std"))
    }
    logs.log_metrics(metrics)
    logs.log_json(summary, "sweep_summary.json")
    if by_loss:  # without clean validation images: the lowest mean validation loss
        losses = [
            (e["best_val_loss_mean"], label)
            for label, e in summary.items()
            if "best_val_loss_mean" in e
        ]
        if losses:
            best_loss, best = min(losses)
            logs.set_tags({"best_config": best})
            logs.log_metrics({"sweep/best_val_loss_mean": best_loss})
        return
    ranked = [(e["test_psnr_mean"], label) for label, e in summary.items() if "test_psnr_mean" in e]
    if ranked:
        best_psnr, best = max(ranked)
        logs.set_tags({"best_config": best})
        logs.log_metrics({"sweep/best_test_psnr_mean": best_psnr})
