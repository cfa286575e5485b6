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


def _fit_small(options, extra=(), images=6, checkpointing=None):
    """fit() a one-conv model on six tiny pairs (four to train, two to validate)."""
    import keras
    from conftest import make_pairs

    from daeflow.data.arrays import ImageArray
    from daeflow.data.pairs import PairSource
    from daeflow.data.prepare import Subset
    from daeflow.train.callbacks import TrainingState
    from daeflow.train.trainer import fit

    clean, noisy = make_pairs(n=images, size=8)
    source = PairSource(ImageArray(clean, "clean"), ImageArray(noisy, "noisy"), 255.0)
    images = keras.Input((None, None, 1))
    model = keras.Model(images, keras.layers.Conv2D(1, 3, padding="same")(images))
    lines = []
    result = fit(
        model, Subset(source, np.arange(4)), Subset(source, np.arange(4, 6)), options,
        list(extra), lines.append, state=TrainingState(), checkpointing=checkpointing,
    )  # fmt: skip
    return model, result, lines


def test_val_every_validates_every_nth_epoch_and_the_last():
    from daeflow.config import TrainOptions

    options = TrainOptions(epochs=7, val_every=3, batch_size=4, jit_compile=False)
    _, result, lines = _fit_small(options)
    validated = [e for e, logs in enumerate(result.history, 1) if "val_psnr" in logs]
    assert validated == [3, 6, 7] and result.best_epoch in validated
    assert [("val_psnr" in line) for line in lines] == [e in validated for e in range(1, 8)]


def test_the_epoch_that_ends_a_time_budget_is_validated():
    from daeflow.config import TrainOptions

    options = TrainOptions(time_budget="1s", val_every=10**6, batch_size=4, jit_compile=False)
    _, result, _ = _fit_small(options)
    validated = [e for e, logs in enumerate(result.history, 1) if "val_psnr" in logs]
    assert result.stop_reason == "time_budget" and len(result.history) > 1
    assert validated == [len(result.history)] == [result.best_epoch]


def test_averaging_adam_copies_the_first_step_then_warms_its_momentum_up():
    import keras

    from daeflow.train.averaging import AveragingAdam

    variable = keras.Variable(np.zeros(3, "float32"))
    optimizer = AveragingAdam(0.5, learning_rate=0.1)
    expected, trained = None, []
    for step in range(40):
        optimizer.apply([keras.ops.ones(3) * (step % 5 - 2)], [variable])
        value = variable.numpy().copy()
        momentum = min(0.5, step / (step + 10))
        expected = value if expected is None else momentum * expected + (1 - momentum) * value
        trained.append(value)
    average = optimizer._model_variables_moving_average[0].numpy()
    np.testing.assert_allclose(average, expected, rtol=1e-5)
    assert not np.allclose(average, trained[-1])  # an average, not the last weights


def test_with_ema_each_epoch_ends_on_the_averages_and_training_goes_on_from_the_weights():
    import keras

    from daeflow.config import TrainOptions

    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            optimizer = self.model.optimizer
            trained = [v.numpy() for v in optimizer._model_variables_moving_average]
            seen.append(("end", [w.copy() for w in self.model.get_weights()], trained))

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0 and seen:
                seen.append(("begin", [w.copy() for w in self.model.get_weights()], None))

    options = TrainOptions(epochs=3, ema_momentum=0.9, batch_size=2, jit_compile=False)
    model, result, _ = _fit_small(options, [Spy()])
    ends = [s for s in seen if s[0] == "end"]
    begins = [s for s in seen if s[0] == "begin"]
    for (_, averaged, trained), (_, resumed, _) in zip(ends, begins, strict=False):
        assert not all(np.allclose(a, t) for a, t in zip(averaged, trained, strict=True))
        for a, b in zip(trained, resumed, strict=True):
            np.testing.assert_array_equal(a, b)  # the next epoch starts from the weights
    best = ends[result.best_epoch - 1][1]
    for a, b in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(a, b)  # the kept model is the averaged one


def test_the_schedule_keeps_the_rate_within_a_step_of_its_curve_with_few_assigns():
    import keras

    from daeflow.train.callbacks import Schedule

    images = keras.Input((None, None, 1))
    model = keras.Model(images, keras.layers.Conv2D(1, 3, padding="same")(images))
    model.compile(optimizer=keras.optimizers.Adam(1.0), loss="mse")
    steps = 2000  # per epoch: 20,000 in all, as a 10-minute run of the quality recipe
    schedule = Schedule("cosine", 2e-3, epochs=10, steps_per_epoch=steps, warmup=0.1)
    schedule.set_model(model)
    assigns, worst = 0, 0.0
    for epoch in range(10):
        schedule.on_epoch_begin(epoch)
        for batch in range(steps):
            before = schedule.assigned
            schedule.on_train_batch_begin(batch)
            assigns += schedule.assigned is not before
            exact = schedule.rate((epoch * steps + batch) / (10 * steps))
            given = float(model.optimizer.learning_rate.numpy())
            worst = max(worst, abs(given - exact) / exact if exact else given)
    assert worst <= Schedule.STEP * 1.01 and assigns < 10 * steps / 3  # 26 % of the steps


def test_a_checkpoint_holds_the_best_weights_when_the_best_epoch_has_none(tmp_path):
    """Checkpoints every 2 epochs, validation every 3: the checkpoint of epoch 4 has best
    epoch 3, which has no checkpoint; reading it back gives epoch 3's weights."""
    import keras

    from daeflow.config import TrainOptions
    from daeflow.train.checkpoints import BEST_WEIGHTS, read_one
    from daeflow.train.trainer import Checkpointing

    weights = {}

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights[epoch + 1] = [w.copy() for w in self.model.get_weights()]

    folder = tmp_path / "checkpoints"
    options = TrainOptions(epochs=5, val_every=3, batch_size=4, jit_compile=False)
    _fit_small(options, [Keep()], checkpointing=Checkpointing(folder, every_epochs=2, keep=5))
    fourth = folder / "epoch-0004"
    assert (fourth / BEST_WEIGHTS).is_file() and not (folder / "epoch-0003").exists()
    restored = read_one(folder, fourth)
    assert restored.state.best_epoch == 3
    for a, b in zip(restored.state.best_weights, weights[3], strict=True):
        np.testing.assert_array_equal(a, b)
