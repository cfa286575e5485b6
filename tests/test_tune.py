"""`daeflow tune`: Optuna studies over worker processes, every trial an MLflow child run."""

import mlflow
import pytest
from conftest import cli, one_error_line

optuna = pytest.importorskip("optuna")

from daeflow.workflow.space import parse_space  # noqa: E402


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        ("arch.filters=int:64:16", "LOW must be below HIGH"),
        ("nope=int:1:3", "neither a training option"),
        ("arch.filters=int:0:16", "(conv_baseline) must be >= 4. Received: 0"),
        ("arch.depth=int:1:3", "has a hyperparameter 'depth'"),
        ("learning_rate=int:1:3", "is float: use uniform"),
        ("lr_schedule=choice:constant,sawtooth", "constant, cosine"),
        ("learning_rate=normal:0:1", "--space expects NAME=SPEC"),
        ("precision=choice:float32", "neither a training option that can be searched"),
    ],
)
def test_a_bad_space_is_refused_in_one_line_before_any_trial(space, fragment, tmp_path):
    store = tmp_path / "mlflow.db"
    args = ["tune", "--arch", "conv_baseline", "--space", space, "--tracking-uri"]
    result = cli(*args, f"sqlite:///{store}", code=2)
    one_error_line(result, 2, fragment)
    assert not store.exists() and not (tmp_path / "optuna.db").exists()


def test_grid_needs_listed_values_and_pruner_specs_are_checked(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    base = ["tune", "--arch", "conv_baseline", "--tracking-uri", uri]
    grid = cli(*base, "--space", "learning_rate=loguniform:1e-4:1e-2", "--sampler", "grid", code=2)
    one_error_line(grid, 2, "--sampler grid needs listed values")
    pruner = cli(*base, "--space", "arch.filters=int:8:16", "--pruner", "threshold:x", code=2)
    one_error_line(pruner, 2, "--pruner must be median, hyperband, none or threshold:VALUE")


def test_space_specs_become_optuna_distributions():
    space = parse_space(["a=loguniform:1e-4:1e-2", "b=int:16:64:16", "c=choice:3,5"])
    assert space["b"].grid() == [16, 32, 48, 64]
    assert space["c"].grid() == ["3", "5"]
    trial = optuna.trial.FixedTrial({"a": 1e-3, "b": 32, "c": "5"})
    assert [d.suggest(trial) for d in space.values()] == [1e-3, 32, "5"]


# Two architectures drawn at random (seeded): conv_baseline starts near 11 dB on these
# images, residual_fast near the noisy input's 22 dB, so a threshold pruner at 16 dB
# prunes every conv_baseline trial after its first epoch and never a residual_fast one.
STUDY = [
    "--arch", "conv_baseline", "--arch", "residual_fast",
    "--space", "learning_rate=choice:0.001,0.002",
    "--space", "batch_size=choice:4,8",
    "--sampler", "random", "--pruner", "threshold:16",
    "--trials", "6", "--workers", "2", "--epochs", "2", "--seed", "1",
]  # fmt: skip


def data_args(pair_files) -> list[str]:
    clean, noisy = pair_files(n=24, size=16)
    return ["--clean", str(clean), "--noisy", str(noisy)]


def check_study(storage: str, uri: str, name: str) -> None:
    """Optuna's trials and MLflow's child runs agree; the parent names the best trial."""
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials()
    states = sorted(t.state.name for t in trials)
    assert len(trials) == 6 and set(states) == {"COMPLETE", "PRUNED"}, states
    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    (parent,) = [r for r in runs if r.data.tags.get("daeflow.command") == "tune"]
    children = {
        int(r.data.tags["optuna.trial"]): r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert sorted(children) == [t.number for t in trials]
    assert {r.info.status for r in runs} == {"FINISHED"}
    for trial in trials:
        run = children[trial.number]
        assert run.data.tags["optuna.state"] == trial.state.name
        assert run.data.params["arch"] == trial.params["arch"]
        assert float(run.data.params["learning_rate"]) == float(trial.params["learning_rate"])
        assert run.data.params["batch_size"] == trial.params["batch_size"]
        curve = client.get_metric_history(run.info.run_id, "epoch/val_psnr")
        reported = {m.step: m.value for m in curve}
        assert reported == pytest.approx(trial.intermediate_values, abs=1e-6)
        if trial.state.name == "PRUNED":
            assert run.data.tags["stop_reason"] == "pruned" and len(reported) == 1
        else:
            assert run.data.metrics["train/best_val_psnr"] == pytest.approx(trial.value)
        scored = trial.user_attrs["daeflow.scored_on"]  # what summarize ranks trials by
        assert (scored["data"], scored["data_range"]) == (run.data.tags["data.train.sha256"], "255")
    best = study.best_trial
    assert parent.data.tags["best_trial"] == str(best.number)
    assert parent.data.tags["best_run_id"] == children[best.number].info.run_id
    assert parent.data.metrics["tune/best_val_psnr"] == pytest.approx(best.value)
    shown = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "optimization_history.png" in shown


def test_a_study_continued_at_another_data_range_ranks_only_the_newest_range():
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from daeflow.workflow.tune import SCORED_ON, summarize

    study = optuna.create_study(direction="maximize")
    at = {r: {"data": "d" * 64, "noise": "", "split": "seed 0", "data_range": r} for r in "12"}
    for value, scored in ((44.0, at["1"]), (30.0, at["2"]), (31.0, at["2"])):
        study.add_trial(
            create_trial(
                params={"learning_rate": 1e-3},
                distributions={"learning_rate": FloatDistribution(1e-4, 1e-2)},
                value=value,
                user_attrs={SCORED_ON: scored},
            )
        )
    summary = summarize(study)
    assert (summary["best_trial"], summary["best_value"], summary["apart"]) == (2, 31.0, 1)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--space", "objective.nope=choice:1"], "objective noise2void has no parameter 'nope'"),
        (["--space", "objective.roi_size=int:1:5"], "(objective noise2void) must be 3 to 21"),
        (["--space", "objective.roi_size=int:3:5", "--metric", "val_psnr"], "--metric val_loss"),
        (["--space", "objective=choice:supervised,noise2void"], "cannot be ranked together"),
    ],
)
def test_an_objective_space_is_checked_before_any_trial(extra, fragment, tmp_path):
    store = tmp_path / "mlflow.db"
    args = ["tune", "--arch", "conv_baseline", "--objective", "noise2void", *extra]
    result = cli(*args, "--tracking-uri", f"sqlite:///{store}", code=2)
    one_error_line(result, 2, fragment)
    assert not store.exists() and not (tmp_path / "optuna.db").exists()


def test_a_study_of_a_loss_ranks_the_lowest_best():
    from optuna.distributions import IntDistribution
    from optuna.trial import create_trial

    from daeflow.workflow.tune import summarize

    study = optuna.create_study(direction="minimize")
    for value in (0.03, 0.01, 0.02):
        study.add_trial(
            create_trial(
                params={"objective.roi_size": 3},
                distributions={"objective.roi_size": IntDistribution(3, 5)},
                value=value,
            )
        )
    summary = summarize(study)
    assert (summary["best_trial"], summary["best_value"]) == (1, 0.01)


@pytest.mark.slow
def test_a_study_without_clean_images_compares_trials_on_validation_loss(tracking_uri, pair_files):
    _, noisy = pair_files(n=12, size=16)
    result = cli(
        "tune", "--arch", "conv_baseline", "--objective", "noise2void", "--noisy", noisy,
        "--space", "objective.masked_pixel_percentage=choice:0.5,20", "--sampler", "grid",
        "--trials", "2",
        "--epochs", "1", "--batch-size", "4", "--study", "n2v", "--register-best", "tuned",
    )  # fmt: skip
    assert "Trials are compared on val_loss: the noise2void objective's validation loss" in (
        result.output
    )
    storage = tracking_uri.rsplit("/", 1)[0] + "/optuna.db"
    study = optuna.load_study(study_name="n2v", storage=storage)
    assert study.direction.name == "MINIMIZE" and len(study.trials) == 2
    assert len({t.value for t in study.trials}) == 2
    best = min(study.trials, key=lambda t: t.value)
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("daeflow.command") == "tune"]
    assert parent.data.params["tune.metric"] == "val_loss"
    assert parent.data.tags["daeflow.ranked_by"] == "best_val_loss (lower is better)"
    assert parent.data.tags["best_trial"] == str(best.number)
    children = {r.data.tags.get("optuna.trial"): r for r in runs}
    chosen = children[str(best.number)]
    drawn = float(best.params["objective.masked_pixel_percentage"])
    assert float(chosen.data.params["objective.masked_pixel_percentage"]) == drawn
    assert chosen.data.metrics["train/best_val_loss"] == pytest.approx(best.value)
    assert client.get_model_version("tuned", "1").run_id == chosen.info.run_id


@pytest.mark.slow
def test_six_trials_over_two_workers_share_a_study_and_a_store(tracking_uri, pair_files):
    result = cli("tune", *data_args(pair_files), *STUDY, "--study", "s", "--register-best", "tuned")
    assert "Study 's': 6 trials" in result.output
    storage = tracking_uri.rsplit("/", 1)[0] + "/optuna.db"  # beside the MLflow store
    check_study(storage, tracking_uri, "s")
    # The best trial's model (by the study's metric, validation PSNR) is version 1 of 'tuned'.
    best = optuna.load_study(study_name="s", storage=storage).best_trial
    version = mlflow.MlflowClient(tracking_uri).get_model_version("tuned", "1")
    assert mlflow.get_run(version.run_id).data.tags["optuna.trial"] == str(best.number)
    assert "Registered run " in result.output


@pytest.mark.slow
def test_six_trials_against_postgresql_and_a_team_server(team_server, pair_files):
    from daeflow.track.server import PostgresCluster

    storage = PostgresCluster(team_server.folder).ensure_database("optuna")
    args = ["--storage", storage, "--tracking-uri", team_server.url, "--study", "team"]
    cli("tune", *data_args(pair_files), *STUDY, *args)
    check_study(storage, team_server.url, "team")


def test_a_dead_workers_trial_ends_fail_in_optuna_and_failed_in_mlflow(tracking_uri, tmp_path):
    import socket

    from daeflow.workflow.tune import reap

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db", study_name="s")
    mine, other = study.ask(), study.ask()
    run = mlflow.MlflowClient().create_run("0")
    for trial, pid in ((mine, 4242), (other, 4343)):
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", pid)
    mine.set_user_attr("mlflow_run_id", run.info.run_id)

    reap(study, 4242)  # what `daeflow tune` does when worker 4242 exits with an error

    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {mine.number: "FAIL", other.number: "RUNNING"}
    ended = mlflow.get_run(run.info.run_id)
    assert ended.info.status == "FAILED" and ended.data.tags["stop_reason"] == "worker_died"


def test_tune_without_optuna_says_what_to_install_and_exits_1(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # as on a plain `pip install daeflow`
    store = tmp_path / "mlflow.db"
    space = ["--space", "learning_rate=loguniform:1e-4:1e-2"]
    args = ["tune", "--arch", "conv_baseline", *space, "--tracking-uri", f"sqlite:///{store}"]
    result = cli(*args, code=1)
    one_error_line(result, 1, 'pip install "daeflow[tune]"')  # the environment, not the input
    assert not store.exists()
