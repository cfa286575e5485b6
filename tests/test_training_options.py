"""Time budget, learning-rate schedule, early stopping, patches, and using the logged model."""

import re

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.config import DEFAULT_EPOCHS


def invoke(*args):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def runs():
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


@pytest.mark.parametrize(
    ("kind", "after_warmup"),
    [("cosine", [2e-3, 2e-3 * (0.01 + 0.99 * 0.5), 2e-5]), ("constant", [2e-3] * 3)],
)
def test_warmup_raises_the_rate_from_zero_then_the_schedule_spans_the_rest(kind, after_warmup):
    from daeflow.train.callbacks import Schedule

    schedule = Schedule(kind, 2e-3, epochs=10, steps_per_epoch=5, warmup=0.2)
    assert [schedule.rate(p) for p in (0.0, 0.1)] == pytest.approx([0.0, 1e-3])
    assert [schedule.rate(p) for p in (0.2, 0.6, 1.0)] == pytest.approx(after_warmup)


def test_a_time_budget_alone_sets_no_epoch_limit_and_says_so():
    from daeflow.config import TrainOptions

    plain = TrainOptions()
    assert (plain.epochs, plain.epoch_limit, plain.epochs_asked()) == (DEFAULT_EPOCHS, 20, "20")
    budget = TrainOptions(time_budget="30s")
    assert budget.epochs is None and budget.epoch_limit > 1000 * DEFAULT_EPOCHS
    assert budget.epochs_asked() == "until 30s"
    both = TrainOptions(epochs=5, time_budget="30s")  # a limit the user gave is kept
    assert (both.epoch_limit, both.epochs_asked()) == (5, "5")


@pytest.mark.slow
def test_time_budget_schedule_and_logged_model_in_use(tracking_uri, pair_files, tmp_path):
    clean, _ = pair_files(n=24, size=16)
    invoke(
        "run",
        "--arch",
        "residual",
        "--clean",
        str(clean),
        "--noise",
        "gaussian",
        "--noise-param",
        "sigma=20",
        "--batch-size",
        "8",
        "--time-budget",
        "4s",
        "--checkpoint-every",
        "1m",
        "--lr-schedule",
        "cosine",
        "--patch-size",
        "8",
        "--augment",
        "--arch-param",
        "depth=3",
        "--arch-param",
        "width=8",
    )
    (run,) = runs()
    client = mlflow.MlflowClient()
    assert run.data.tags["stop_reason"] == "time_budget"
    epochs_run = len(client.get_metric_history(run.info.run_id, "epoch/val_psnr"))
    # No --epochs: the budget alone ends training (past 20 epochs where the machine is fast
    # enough, see above); the params say so rather than claim a limit that did not apply.
    assert run.data.params["epochs"] == "None" and run.data.tags["daeflow.epochs"] == "until 4s"
    assert run.data.params["lr_schedule"] == "cosine" and run.data.params["time_budget"] == "4.0"
    # Probe grids, with no epoch count known in advance: epochs 1, 2, 4, 8, ... and the last.
    names = [f.path for f in client.list_artifacts(run.info.run_id, "images")]
    steps = sorted({int(re.search(r"\+step\+(\d+)\+", n).group(1)) for n in names})
    powers = [2**k for k in range(epochs_run.bit_length()) if 2**k < epochs_run]
    assert steps == [*powers, epochs_run]
    rates = [m.value for m in client.get_metric_history(run.info.run_id, "schedule/learning_rate")]
    assert rates[0] < 1e-3 and all(b <= a for a, b in zip(rates, rates[1:], strict=False))
    assert run.data.params["noise.sigma"] == "20.0"

    uri = f"runs:/{run.info.run_id}/model"
    image = (np.random.default_rng(0).uniform(0, 1, (50, 70)) * 65535).astype(np.uint16)
    np.save(tmp_path / "big.npy", image)
    out = invoke(
        "denoise", str(tmp_path / "big.npy"), "-o", str(tmp_path / "o.npy"), "--model", uri
    )
    assert "megapixels/s" in out.stdout
    assert np.load(tmp_path / "o.npy").dtype == np.uint16

    clean_eval, noisy_eval = pair_files(n=4, size=24)
    result = invoke(
        "evaluate", "--model", uri, "--clean", str(clean_eval), "--noisy", str(noisy_eval), "--log"
    )
    assert "PSNR" in result.stdout and "Logged as MLflow run" in result.stdout
    evaluation = [r for r in runs() if r.data.tags.get("daeflow.command") == "evaluate"]
    assert len(evaluation) == 1 and np.isfinite(evaluation[0].data.metrics["test/psnr"])
    assert evaluation[0].data.params["arch"] == "residual"
    assert evaluation[0].info.status == "FINISHED"
    headline = evaluation[0].data.tags["mlflow.note.content"]  # the top of the run's page
    assert headline.startswith("**test PSNR ") and headline.endswith(" · evaluate:residual")


@pytest.mark.slow
def test_training_with_a_time_budget_alone_goes_past_the_default_epochs():
    """Deterministic: a long budget, and a callback that stops at DEFAULT_EPOCHS + 3."""
    import keras
    from conftest import make_pairs

    from daeflow.config import TrainOptions
    from daeflow.data.arrays import ImageArray
    from daeflow.data.pairs import PairSource
    from daeflow.data.prepare import Subset
    from daeflow.train.callbacks import StopWhen, TrainingState
    from daeflow.train.trainer import fit

    clean, noisy = make_pairs(n=6, size=8)
    source = PairSource(ImageArray(clean, "clean"), ImageArray(noisy, "noisy"), 255.0)
    images = keras.Input((None, None, 1))
    model = keras.Model(images, keras.layers.Conv2D(1, 3, padding="same")(images))
    options = TrainOptions(time_budget="10m", batch_size=4, jit_compile=False)
    state = TrainingState()
    enough = StopWhen(lambda epoch, logs: epoch == DEFAULT_EPOCHS + 3, state, "enough")
    result = fit(
        model, Subset(source, np.arange(4)), Subset(source, np.arange(4, 6)), options,
        [enough], None, state=state,
    )  # fmt: skip
    assert (len(result.history), result.stop_reason) == (DEFAULT_EPOCHS + 3, "enough")


@pytest.mark.slow
def test_early_stopping_stops_and_keeps_the_best_epoch(tracking_uri, pair_files):
    clean, noisy = pair_files(n=24, size=16)
    invoke(
        "run",
        "--clean",
        str(clean),
        "--noisy",
        str(noisy),
        "--epochs",
        "60",
        "--learning-rate",
        "0.05",
        "--early-stopping",
        "2",
        "--batch-size",
        "8",
    )
    (run,) = runs()
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch/val_psnr")
    assert run.data.tags["stop_reason"] == "early_stopping" and len(history) < 60
    best = max(history, key=lambda m: m.value)
    assert run.data.metrics["train/best_epoch"] == best.step
    assert run.data.metrics["train/best_val_psnr"] == pytest.approx(best.value)
