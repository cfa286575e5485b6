"""`daeflow tune`: a hyperparameter search on Optuna, every trial an MLflow child run.

Optuna does the searching, pruning and sharing: one study per name in a storage (sqlite
beside the MLflow store by default, PostgreSQL for several machines). daeflow adds the
MLflow side: one parent run per study, a child run per trial carrying the trial's number,
parameters and state, and a summary with Optuna's plots on the parent.
"""

import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from daeflow.config import OBJECTIVE_PREFIX, DataOptions, RunConfig, TrainOptions
from daeflow.errors import DaeflowError, MissingDependency, UsageError, one_line
from daeflow.track.names import TAG_COMMAND, TAG_RANKED_BY
from daeflow.workflow.space import Dimension, check_space, parse_space

METRICS = ("val_psnr", "val_ssim", "val_loss")  # val_loss is minimised, the others maximised
SCORED_ON = "daeflow.scored_on"  # trial attribute: the data, split and range it was scored on
SAMPLERS = ("tpe", "random", "grid")
DEFAULT_TRIALS = 10


@dataclass
class StudyOptions:
    """What is searched, how, and for how long."""

    name: str
    storage: str | None = None  # default: beside the MLflow store
    space: list[str] = field(default_factory=list)  # NAME=SPEC, as given
    archs: list[str] = field(default_factory=list)
    trials: int | None = None
    budget: float | None = None  # seconds for the whole study
    metric: str | None = None  # None: val_psnr, or val_loss without clean validation images
    sampler: str = "tpe"
    pruner: str = "median"
    workers: int = 1


@dataclass
class Plan:
    """What every worker needs: the base run config, the study and the parent run."""

    base: RunConfig
    study: StudyOptions
    parent_run_id: str = ""
    started: float = 0.0  # time.time() when the study began here (the study budget)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        values = json.loads(text)
        base = values["base"]
        base["data"] = DataOptions(**base["data"])
        base["train"] = TrainOptions(**base["train"])
        return cls(RunConfig(**base), StudyOptions(**values["study"]), values["parent_run_id"],
                   values["started"])  # fmt: skip


def load_optuna():
    """Optuna, or one line saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise MissingDependency(
            'daeflow tune needs Optuna, an optional dependency: pip install "daeflow[tune]"'
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def default_storage(tracking_uri: str) -> str:
    """An sqlite file beside an sqlite MLflow store, else optuna.db in this folder."""
    from daeflow.track.store import sqlite_path

    path = sqlite_path(tracking_uri)
    folder = path.parent if path is not None else Path.cwd()
    return f"sqlite:///{(folder / 'optuna.db').resolve()}"


def open_storage(url: str):
    """Optuna's RDB storage with heartbeats, so that a dead worker's trial ends up FAIL."""
    optuna = load_optuna()
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with _quiet_experimental(optuna):
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=30, grace_period=120
            )
    except Exception as exc:  # a bad URL, an unreachable database, a missing driver
        raise UsageError(f"--storage {url!r} cannot be used: {one_line(exc, 200)}") from None


def make_sampler(options: StudyOptions, space: dict[str, Dimension], seed: int):
    """The Optuna sampler named by --sampler, seeded."""
    optuna = load_optuna()
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if options.sampler == "grid":
        grid = {name: dim.grid() for name, dim in space.items()}
        if len(options.archs) > 1:
            grid["arch"] = list(options.archs)
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def direction(metric: str) -> str:
    """Whether Optuna maximises or minimises the metric."""
    return "minimize" if metric == "val_loss" else "maximize"


def make_pruner(spec: str, epochs: int | None, metric: str = "val_psnr"):
    """median, hyperband, none, or threshold:V (prune below V of the metric, or above V of a
    loss)."""
    optuna = load_optuna()
    kind, _, value = spec.partition(":")
    if kind == "median" and not value:
        return optuna.pruners.MedianPruner()
    if kind == "hyperband" and not value:
        # With no epoch limit (a time budget alone), Optuna finds the trials' length itself.
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto")
    if kind == "none" and not value:
        return optuna.pruners.NopPruner()
    if kind == "threshold":
        try:
            if direction(metric) == "minimize":
                return optuna.pruners.ThresholdPruner(upper=float(value))
            return optuna.pruners.ThresholdPruner(lower=float(value))
        except ValueError:
            pass
    raise UsageError(
        f"--pruner must be median, hyperband, none or threshold:VALUE. Received: {spec!r}"
    )


def check(plan: Plan) -> dict[str, Dimension]:
    """Everything a trial could refuse, refused now: space, sampler, pruner, architectures,
    and the metric (set when not given: see `ranked_by`)."""
    from daeflow.workflow.run import resolve_arch

    options, base = plan.study, plan.base
    if options.metric is not None and options.metric not in METRICS:
        raise UsageError(
            f"--metric must be one of {', '.join(METRICS)}. Received: {options.metric!r}"
        )
    if options.sampler not in SAMPLERS:
        raise UsageError(
            f"--sampler must be one of {', '.join(SAMPLERS)}. Received: {options.sampler!r}"
        )
    space = parse_space(options.space)
    archs = {name: resolve_arch(name, {})[0].spec for name in options.archs}
    objectives = _objectives(plan, space)
    ranked = ranked_by(plan, space)
    options.metric = options.metric or ranked.metric
    if not ranked.higher_is_better and options.metric != ranked.metric:
        raise UsageError(
            f"--metric {options.metric} needs clean validation images; objective "
            f"{objectives[0].name} trains without them. Use --metric val_loss (its default)."
        )
    objective = objectives[0] if "objective" not in space else None
    check_space(space, archs, objective)
    make_sampler(options, space, 0)
    make_pruner(options.pruner, base.train.epochs, options.metric)
    for arch in options.archs:  # each architecture at the space's lower ends builds its config
        point = {n: d.choices[0] if d.kind == "choice" else d.low for n, d in space.items()}
        _trial_config(base, arch, {n: v for n, v in point.items() if applies(n, arch, archs)})
    return space


def _objectives(plan: Plan, space: dict[str, Dimension]) -> list:
    """The objective specs trials may train with: --objective's, or those searched."""
    from daeflow.plugin.registry import get_objective

    searched = space.get("objective")
    if searched is None:
        return [get_objective(plan.base.train.objective).spec]
    if any(name.startswith(OBJECTIVE_PREFIX) for name in space):
        raise UsageError(
            "--space objective.<parameter> needs one --objective: search an objective's "
            "parameters or the objective, not both."
        )
    return [get_objective(name).spec for name in searched.choices]


def ranked_by(plan: Plan, space: dict[str, Dimension]):
    """How trials are compared (a train.objectives.Ranking): --metric if given, else
    validation PSNR, or the objective's validation loss without clean validation images."""
    from daeflow.train.objectives import Ranking, ranking

    ranked = ranking(_objectives(plan, space))
    metric = plan.study.metric
    if metric is None or metric == ranked.metric or not ranked.higher_is_better:
        return ranked
    return Ranking(metric, direction(metric) == "maximize", f"--metric {metric}")


def applies(name: str, arch: str, archs: dict) -> bool:
    """Whether a searched name is drawn for this architecture."""
    if not name.startswith("arch."):
        return True
    return any(p.name == name[5:] for p in archs[arch].hyperparams)


def _trial_config(base: RunConfig, arch: str, point: dict) -> RunConfig:
    from daeflow.workflow.sweep import child_config

    return child_config(base, arch, point, base.train.seed)


def run_tune(plan: Plan, write=print):
    """Check, open the study and its parent run, run the workers, log the summary."""
    from daeflow.track import runs, store

    check(plan)
    optuna = load_optuna()
    options = plan.study
    plan.base.tracking_uri = store.use_tracking_uri(plan.base.tracking_uri)
    options.storage = options.storage or default_storage(plan.base.tracking_uri)
    storage = open_storage(options.storage)
    ranked = ranked_by(plan, parse_space(options.space))
    wanted = direction(options.metric)
    study = optuna.create_study(
        study_name=options.name, storage=storage, direction=wanted, load_if_exists=True
    )
    if study.direction.name.lower() != wanted:
        raise UsageError(
            f"Study {options.name!r} {study.direction.name.lower()}s its metric; "
            f"{options.metric} is to {wanted}. Use another --study name for this metric."
        )
    parent_id = study.user_attrs.get("mlflow_parent_run_id")
    if parent_id and not _run_exists(parent_id):
        parent_id = None
    tags = {
        TAG_COMMAND: "tune",
        "optuna.study": options.name,
        "optuna.storage": store.without_credentials(options.storage),
        TAG_RANKED_BY: ranked.describe(),
    }
    write(f"Study {options.name!r} in {store.without_credentials(options.storage)}.")
    write(f"Trials are compared on {options.metric}: {ranked.why}.")
    plan.started = time.time()
    with runs.tracked_run(
        plan.base.experiment, plan.base.run_name or f"tune {options.name}", tags, run_id=parent_id
    ) as parent:
        plan.parent_run_id = parent.info.run_id
        if not parent_id:
            study.set_user_attr("mlflow_parent_run_id", plan.parent_run_id)
            _log_settings(plan)
        if options.workers == 1:
            work(plan, 0, write)
        else:
            _run_workers(plan, study, write)
        summary = summarize(study)
        log_summary(study, summary, options.metric)
    return parent.info.run_id, summary


def _run_exists(run_id: str) -> bool:
    from daeflow.track import queries

    try:
        queries.get_run(run_id)
    except DaeflowError:
        return False
    return True


def _log_settings(plan: Plan) -> None:
    from daeflow.track import logs

    options = plan.study
    logs.log_params(
        {
            "tune.archs": ",".join(options.archs),
            "tune.metric": options.metric,
            "tune.sampler": options.sampler,
            "tune.pruner": options.pruner,
            "tune.trials": options.trials,
            "tune.workers": options.workers,
            "tune.seed": plan.base.train.seed,
            **{f"tune.space.{s.partition('=')[0]}": s.partition("=")[2] for s in options.space},
        }
    )


def trial_quota(options: StudyOptions, index: int) -> int | None:
    """How many trials worker `index` runs: --trials shared out over --workers."""
    total = options.trials
    if total is None:
        return None
    return total // options.workers + (index < total % options.workers)


def work(plan: Plan, index: int, write=print) -> None:
    """One worker: run trials of the study until its share, the study or the budget is done."""
    from daeflow.track import store

    optuna = load_optuna()
    options = plan.study
    store.use_tracking_uri(plan.base.tracking_uri)
    study = optuna.load_study(
        study_name=options.name,
        storage=open_storage(options.storage),
        sampler=make_sampler(options, parse_space(options.space), plan.base.train.seed + index),
        pruner=make_pruner(options.pruner, plan.base.train.epochs, options.metric),
    )
    space = check(plan)
    objective = Objective(plan, space, write)
    remaining = None
    if options.budget:
        remaining = max(0.0, options.budget - (time.time() - plan.started))
    callbacks = []
    if options.trials is not None:  # the study's total, over every worker and machine
        callbacks.append(optuna.study.MaxTrialsCallback(options.trials, states=None))
    with _quiet_experimental(optuna):
        study.optimize(
            objective,
            n_trials=trial_quota(options, index),
            timeout=remaining,
            catch=(Exception,),  # a failed trial is recorded (FAIL, FAILED) and the study goes on
            callbacks=callbacks,
        )


class _quiet_experimental:
    """Optuna's 'experimental feature' warnings, which say nothing a user can act on."""

    def __init__(self, optuna):
        import warnings

        self.catcher = warnings.catch_warnings()
        self.optuna = optuna

    def __enter__(self):
        import warnings

        self.catcher.__enter__()
        warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)

    def __exit__(self, *exc):
        return self.catcher.__exit__(*exc)


class Objective:
    """One trial: draw a point, train it as an MLflow child run, report each epoch to Optuna."""

    def __init__(self, plan: Plan, space: dict[str, Dimension], write=print):
        from daeflow.workflow.run import resolve_arch

        self.plan, self.space, self.write = plan, space, write
        self.archs = {name: resolve_arch(name, {})[0].spec for name in plan.study.archs}
        self.prepared_data = {}  # (size multiple, patch size) -> PreparedData: once per worker

    def __call__(self, trial):
        optuna = load_optuna()
        plan, options = self.plan, self.plan.study
        arch = (
            trial.suggest_categorical("arch", options.archs)
            if len(options.archs) > 1
            else options.archs[0]
        )
        point = {
            name: dim.suggest(trial)
            for name, dim in self.space.items()
            if applies(name, arch, self.archs)
        }
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        drawn = " ".join(f"{k}={_shown(v)}" for k, v in point.items())
        self.write(f"[trial {trial.number}] {arch} {drawn}")
        config = _trial_config(plan.base, arch, point)
        config.run_name = f"trial {trial.number}"
        outcome = self._train(trial, config, arch, point)
        if outcome.stop_reason == "pruned":
            self.write(f"[trial {trial.number}] pruned after epoch {len(outcome.values)}")
            raise optuna.TrialPruned()
        self.write(f"[trial {trial.number}] {options.metric} {outcome.value:.4f}")
        return outcome.value

    def _train(self, trial, config: RunConfig, arch: str, point: dict):
        from daeflow.track import runs
        from daeflow.train.callbacks import StopWhen
        from daeflow.workflow import run as workflow

        plan, metric = self.plan, self.plan.study.metric
        provided, config.arch_params = workflow.resolve_arch(arch, config.arch_params)
        key = (provided.spec.size_multiple, config.train.patch_size)
        prepared = workflow.prepare(config, self.write, provided, self.prepared_data.get(key))
        self.prepared_data[key] = prepared.data
        values = []

        def judge(epoch: int, logs: dict) -> bool:
            if metric not in logs:
                return False  # not a validated epoch (--val-every)
            values.append(float(logs[metric]))
            trial.report(values[-1], epoch)
            return trial.should_prune()

        tags = {
            "mlflow.parentRunId": plan.parent_run_id,
            TAG_COMMAND: "run",
            "arch": arch,
            "plugin": provided.plugin.distribution,
            "optuna.study": plan.study.name,
            "optuna.trial": str(trial.number),
            "optuna.params": json.dumps({k: _shown(v) for k, v in trial.params.items()}),
        }
        in_parent = plan.study.workers == 1  # the parent run is active in this process
        with runs.tracked_run(config.experiment, config.run_name, tags, in_parent) as child:
            trial.set_user_attr("mlflow_run_id", child.info.run_id)
            try:
                trained = workflow.train_in_active_run(
                    prepared, self.write, also=[lambda state: StopWhen(judge, state, "pruned")]
                )
            except Exception as exc:
                self.write(f"[trial {trial.number}] failed: {exc}")
                runs.set_tag_of(child.info.run_id, "optuna.state", "FAIL")
                raise
        # What the trial was scored on: a study continued on other data or at another data
        # range is not ranked across them (see summarize).
        scored = workflow.scored_on(prepared.data, config.params(), prepared.data.digests["train"])
        trial.set_user_attr(SCORED_ON, asdict(scored))
        workflow.forget_local(trained)
        result = trained.result
        state = "PRUNED" if result.stop_reason == "pruned" else "COMPLETE"
        runs.set_tag_of(child.info.run_id, "optuna.state", state)
        best = result.history[result.best_epoch - 1] if result.best_epoch else {}
        _clear_keras()
        return TrialOutcome(result.stop_reason, float(best.get(metric, "nan")), values)


@dataclass
class TrialOutcome:
    stop_reason: str
    value: float  # the metric at the kept epoch (best val_psnr, or val_loss without clean)
    values: list  # the metric after each epoch, as reported to Optuna


def _shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _clear_keras() -> None:
    """Free the finished trial's graphs: a worker builds many models in one process."""
    from daeflow.runtime.backend import load_keras

    load_keras().backend.clear_session()


def _run_workers(plan: Plan, study, write) -> None:
    """--workers N processes on this machine (TensorFlow does not survive fork)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="daeflow-tune-") as tmp:
        path = Path(tmp) / "plan.json"
        path.write_text(plan.to_json())
        command = [sys.executable, "-m", "daeflow", "tune-worker", str(path)]
        workers = [subprocess.Popen([*command, str(i)]) for i in range(plan.study.workers)]
        try:
            for worker in workers:
                worker.wait()
        except BaseException:  # Ctrl-C or SIGTERM: stop the workers, whose runs end KILLED
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait()
            raise
    for index, worker in enumerate(workers):
        if worker.returncode:
            write(f"Worker {index} ended with exit code {worker.returncode}.")
            reap(study, worker.pid)


def reap(study, pid: int) -> None:
    """Trials a dead worker of this machine left RUNNING: FAIL in Optuna, FAILED in MLflow."""
    from optuna.trial import TrialState

    from daeflow.track import runs

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("pid") != pid or attrs.get("host") != host:
            continue
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        if attrs.get("mlflow_run_id"):
            runs.mark_failed_if_running(attrs["mlflow_run_id"], "worker_died")


def summarize(study) -> dict:
    """Counts of trials by state, and the best trial's number, value, params and run.

    The best is chosen among the trials scored on what the newest complete trial was
    (data, validation split, data range): a study continued on other data is not ranked
    across them; `apart` counts the complete trials left out.
    """
    from collections import Counter

    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name for t in trials)
    summary = {"trials": len(trials), **{s.lower(): n for s, n in sorted(counts.items())}}
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        newest = max(complete, key=lambda t: t.number).user_attrs.get(SCORED_ON)
        ranked = [  # trials from before daeflow recorded it are not known to differ
            t for t in complete if t.user_attrs.get(SCORED_ON) in (None, newest) or not newest
        ]
        best = (min if study.direction.name == "MINIMIZE" else max)(ranked, key=lambda t: t.value)
        if len(ranked) < len(complete):
            summary["apart"] = len(complete) - len(ranked)
        summary.update(
            best_trial=best.number,
            best_value=best.value,
            best_params={k: _shown(v) for k, v in best.params.items()},
            best_run_id=best.user_attrs.get("mlflow_run_id", ""),
        )
    return summary


def log_summary(study, summary: dict, metric: str) -> None:
    """The best trial as tags and metrics on the parent run, and Optuna's plots as images."""
    from daeflow.track import logs

    logs.log_metrics(
        {
            f"tune/{k}": v
            for k, v in summary.items()
            if k in ("trials", "complete", "pruned", "fail")
        }
    )
    logs.log_json(summary, "tune_summary.json")
    if "best_trial" not in summary:
        return
    logs.log_metrics({f"tune/best_{metric}": summary["best_value"]})
    logs.set_tags(
        {
            "best_trial": str(summary["best_trial"]),
            "best_run_id": summary["best_run_id"],
            **{f"best.{k}": v for k, v in summary["best_params"].items()},
        }
    )
    for name, figure in plots(study):
        logs.log_figure(figure, name)


def plots(study):
    """(file name, matplotlib figure): optimisation history and parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as views

    with _quiet_experimental(load_optuna()):
        drawn = [("optimization_history.png", views.plot_optimization_history)]
        if len(study.trials) > 2 and study.best_trial.params:
            drawn.append(("param_importances.png", views.plot_param_importances))
        for name, draw in drawn:
            try:
                axes = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances of parameters that never varied
            figure = axes.figure
            figure.set_size_inches(9, 5.5)
            figure.tight_layout()
            yield name, figure
            plt.close(figure)
