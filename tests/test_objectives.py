"""Training objectives without clean targets (noise2void, r2r, noise2noise, a plugin's), end
to end: noisy arrays in, a FINISHED run and a model that reloads in a new process out; what
each objective makes of a batch; the refusals; a killed run resumed to the same numbers.

The built-in objectives' runs are trained once for the module, into one store, and checked
by several tests; each of them trains from noisy arrays alone (a clean array exists only in
the --test-data pairs file that scores the noise2void run).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import Process, cli, make_pairs, one_error_line

from daeflow import Objective, hookimpl
from daeflow.data.arrays import ImageArray
from daeflow.data.pairs import PairSource
from daeflow.objectives import noise2noise, noise2void, r2r
from daeflow.plugin.manager import get_plugins, reset_plugins
from daeflow.plugin.registry import all_objectives, get_noise_model
from daeflow.plugin.specs import OBJECTIVE_DATA
from daeflow.train.objectives import unit_variance

BUILTINS = ("noise2noise", "noise2void", "r2r", "supervised")
COMMON = ("--batch-size", "8", "--seed", "3")
N2V_EPOCHS = 3
# Everything but the files: the module's noise2void run and the killed-and-resumed one.
N2V_ARGS = (
    "--objective", "noise2void", "--objective-param", "strategy=median",
    "--epochs", str(N2V_EPOCHS), *COMMON,
)  # fmt: skip


def write_noisy_data(folder) -> dict:
    """Noisy arrays only (two independent noisy shots of 32 scenes, 16x16 uint8), and a
    small clean/noisy pairs file for test scores; {role: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    clean, noisy = make_pairs(n=32, size=16, seed=0)
    second = clean + np.random.default_rng(99).normal(0, 20.0, clean.shape)
    noisy2 = np.clip(np.rint(second), 0, 255).astype(np.uint8)
    test_clean, test_noisy = make_pairs(n=6, size=16, seed=5)
    paths = {
        "noisy": folder / "noisy.npy",
        "npz": folder / "shots.npz",
        "pairs": folder / "pairs.npz",
    }
    np.save(paths["noisy"], noisy)
    np.savez(paths["npz"], noisy=noisy, noisy2=noisy2)
    np.savez(paths["pairs"], clean=test_clean, noisy=test_noisy)
    return paths


def runs_of(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments)


def run_id_in(result) -> str:
    return re.search(r"MLflow run ([0-9a-f]{32}) ", result.stdout).group(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, migrated_store):
    """The three built-in objectives without clean targets, each trained once through the
    CLI into one store: {"uri", "paths", "noise2void" | "r2r" | "noise2noise": Run}."""
    folder = tmp_path_factory.mktemp("objectives")
    shutil.copy(migrated_store, folder / "mlflow.db")
    uri = f"sqlite:///{folder}/mlflow.db"
    paths = write_noisy_data(folder / "data")
    commands = {
        "noise2void": ["--noisy", paths["noisy"], "--test-data", paths["pairs"], *N2V_ARGS],
        "r2r": ["--objective", "r2r", "--noisy", paths["noisy"], "--noise", "gaussian"]
        + ["--noise-param", "sigma=20", "--objective-param", "alpha=0.7", "--epochs", "1"],
        "noise2noise": ["--objective", "noise2noise", "--data", paths["npz"], "--epochs", "1"],
    }
    before = mlflow.get_tracking_uri()
    out = {"uri": uri, "paths": paths, "outputs": {}}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("DAEFLOW_HOME", str(folder / "daeflow-home"))
        patch.setenv("DAEFLOW_LOAD_PLUGINS", "")
        reset_plugins()
        try:
            for name, args in commands.items():
                extra = [] if name == "noise2void" else list(COMMON)
                result = cli("run", *args, *extra, "--run-name", name)
                out["outputs"][name] = result.stdout
                out[name] = mlflow.MlflowClient(uri).get_run(run_id_in(result))
        finally:
            mlflow.set_tracking_uri(before)
            reset_plugins()
    return out


# 1. Each objective trains from noisy arrays alone, through the CLI


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, own_params, clean_use",
    [
        (
            "noise2void",
            {"strategy": "median", "masked_pixel_percentage": "0.2"},
            "test scores only",
        ),
        ("r2r", {"alpha": "0.7"}, "none"),
        ("noise2noise", {}, "none"),
    ],
)
def test_each_objective_trains_from_noisy_arrays_alone(trained, name, own_params, clean_use):
    run = trained[name]
    params, metrics = run.data.params, run.data.metrics
    assert run.info.status == "FINISHED"
    assert params["objective"] == name
    logged_own = {
        k[len("objective.") :]: v for k, v in params.items() if k.startswith("objective.")
    }
    assert own_params.items() <= logged_own.items()
    assert set(logged_own) == {p.name for p in all_objectives()[name][0].spec.params}
    assert params["data.clean_use"] == clean_use
    assert params["data.clean"] == "None"  # no clean training file
    assert np.isfinite(metrics["train/best_val_loss"])
    assert metrics["train/best_epoch"] >= 1
    client = mlflow.MlflowClient(trained["uri"])
    history = client.get_metric_history(run.info.run_id, "epoch/val_loss")
    assert len(history) == int(params["epochs"])
    report = Path(client.download_artifacts(run.info.run_id, "report.html")).read_text()
    assert "trained without clean images: " + name in report
    if clean_use == "test scores only":
        # Scored against the clean images of --test-data; no objective loss stands in.
        assert np.isfinite(metrics["test/psnr"]) and np.isfinite(metrics["test/ssim"])
        assert "test/objective_loss" not in metrics
        assert "test PSNR" in trained["outputs"][name]
    else:
        # No clean image anywhere: the test split is noisy, scored by the objective's loss.
        assert np.isfinite(metrics["test/objective_loss"])
        assert not any(k.startswith("test/") and "psnr" in k for k in metrics)
        assert "no clean test images, so no PSNR" in trained["outputs"][name]
        assert "No clean test images: PSNR and SSIM were not measured" in report
    if name == "noise2noise":
        assert params["data.data"].endswith("shots.npz")
    else:
        assert params["data.noisy"].endswith("noisy.npy")
    if name == "r2r":
        assert params["data.noise"] == "gaussian" and params["noise.sigma"] == "20.0"


RELOAD = """
import sys, numpy as np, mlflow.pyfunc
from daeflow.cli import main
uri, folder = sys.argv[1:]
sys.argv = ["daeflow", "denoise", f"{folder}/image.npy", "-o", f"{folder}/denoised.npy",
            "--model", uri]
try:
    main()
except SystemExit as stop:
    assert stop.code in (0, None), stop.code
x = np.load(f"{folder}/x.npy")
np.save(f"{folder}/pyfunc.npy", np.asarray(mlflow.pyfunc.load_model(uri).predict(x)))
"""


@pytest.mark.slow
def test_a_noise2void_model_denoises_in_a_new_process(trained, tmp_path):
    run = trained["noise2void"]
    uri = f"runs:/{run.info.run_id}/model"
    noisy = np.load(trained["paths"]["noisy"])
    np.save(tmp_path / "image.npy", noisy[0, ..., 0])  # one 16x16 uint8 image
    x = noisy[:3].astype(np.float32) / 255
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, uri, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": trained["uri"]},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    denoised = np.load(tmp_path / "denoised.npy")
    assert denoised.shape == (16, 16) and denoised.dtype == np.uint8
    served = np.load(tmp_path / "pyfunc.npy")
    assert served.shape == x.shape and np.isfinite(served).all()
    # The same model both ways: the pyfunc's first image, on the uint8 scale, is what
    # `daeflow denoise` wrote (rounded).
    assert np.abs(served[0, ..., 0] * 255 - denoised.astype(np.float32)).max() <= 1.0
    # Not the identity: the model was trained, and the blind spots kept it from copying.
    assert np.abs(served - x).mean() > 1e-3


@pytest.mark.slow
def test_an_r2r_model_averages_re_noised_inputs_and_others_refuse(trained, tmp_path, monkeypatch):
    """`denoise --recorrupted-average K` reads the noise model from the r2r model's metadata;
    the output is another than the plain one, the same on every call; other models refuse."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["uri"])
    noisy = np.load(trained["paths"]["noisy"])
    np.save(tmp_path / "image.npy", noisy[0, ..., 0])
    r2r_uri = f"runs:/{trained['r2r'].info.run_id}/model"
    outputs = {}
    for name, extra in (("plain", []), ("averaged", ["--recorrupted-average", "4"]),
                        ("again", ["--recorrupted-average", "4"])):  # fmt: skip
        result = cli("denoise", str(tmp_path / "image.npy"), "-o", str(tmp_path / f"{name}.npy"),
                     "--model", r2r_uri, *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[name] = np.load(tmp_path / f"{name}.npy").astype(np.int16)
    assert np.abs(outputs["averaged"] - outputs["plain"]).max() > 0
    assert np.array_equal(outputs["averaged"], outputs["again"])
    n2v_uri = f"runs:/{trained['noise2void'].info.run_id}/model"
    refused = cli("denoise", str(tmp_path / "image.npy"), "-o", str(tmp_path / "x.npy"),
                  "--model", n2v_uri, "--recorrupted-average", "4", code=2)  # fmt: skip
    one_error_line(refused, 2, "--recorrupted-average applies to models trained with")
    assert not (tmp_path / "x.npy").exists()


# 2. What each objective makes of a batch (no training)


def test_the_registry_lists_the_builtin_objectives():
    assert tuple(sorted(all_objectives())) == BUILTINS
    for name in BUILTINS:
        (provided,) = all_objectives()[name]
        assert provided.plugin.builtin and provided.plugin.distribution == "daeflow"
        assert provided.spec.name == name and provided.spec.data in OBJECTIVE_DATA
    needs_clean = {n: all_objectives()[n][0].spec.needs_clean for n in BUILTINS}
    assert needs_clean == {"noise2noise": False, "noise2void": False, "r2r": False,
                           "supervised": True}  # fmt: skip


def noisy_batch(pieces=4, size=44, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0, 1, (pieces, size, size, 1)).astype(np.float32))


def seed_of(*numbers):
    import tensorflow as tf

    return tf.constant(numbers, tf.int64)


@pytest.mark.parametrize("percentage, size", [(0.2, 44), (1.0, 40), (4.0, 40), (25.0, 40)])
def test_noise2void_masks_that_share_of_pixels_and_changes_only_them(percentage, size):
    noisy = noisy_batch(size=size)
    inputs, mask = noise2void.blind_spots(noisy, seed_of(1, 2), percentage, 11, "uniform")
    inputs, mask, noisy = np.asarray(inputs), np.asarray(mask)[..., 0], np.asarray(noisy)[..., 0]
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert mask.mean() == pytest.approx(percentage / 100, rel=0.05)
    changed = inputs[..., 0] != noisy
    assert not (changed & (mask == 0)).any()  # only masked pixels change
    assert changed[mask == 1].mean() > 0.95  # and masked ones do (noise: no equal neighbour)
    # Stratified: one masked pixel per box, in every box.
    side = round((100 / percentage) ** 0.5)
    per_box = mask.reshape(4, size // side, side, size // side, side).sum(axis=(2, 4))
    assert (per_box == 1).all()


def test_noise2void_replacements_come_from_the_neighbourhood():
    noisy = noisy_batch(pieces=2, size=40)
    roi = 5
    image = np.pad(np.asarray(noisy)[..., 0], ((0, 0), (2, 2), (2, 2)), mode="reflect")
    results = {}
    for strategy in ("uniform", "median"):
        inputs, mask = noise2void.blind_spots(noisy, seed_of(7, 8), 4.0, roi, strategy)
        results[strategy] = np.asarray(inputs)[..., 0], np.asarray(mask)[..., 0]
    (uniform, mask), (median, median_mask) = results["uniform"], results["median"]
    np.testing.assert_array_equal(mask, median_mask)  # the same pixels, by the same seed
    pieces, ys, xs = np.nonzero(mask)
    assert len(ys) == 2 * 64
    for p, y, x in zip(pieces, ys, xs, strict=True):
        window = image[p, y : y + roi, x : x + roi].ravel()
        around = np.delete(window, roi * roi // 2)  # the centre excluded
        assert uniform[p, y, x] in around
        assert median[p, y, x] == pytest.approx(np.median(around), abs=1e-6)
    assert not np.allclose(uniform[mask == 1], median[mask == 1])


def test_noise2void_masks_follow_the_seed_alone():
    noisy = noisy_batch()

    def masks(*seed):
        return np.asarray(noise2void.blind_spots(noisy, seed_of(*seed), 1.0, 11, "uniform")[1])

    np.testing.assert_array_equal(masks(3, 4), masks(3, 4))
    assert not np.array_equal(masks(3, 4), masks(3, 5))


def test_noise2void_batch_and_loss_see_the_masked_pixels_only():
    import tensorflow as tf

    noisy = noisy_batch()
    params = {"masked_pixel_percentage": 4.0, "roi_size": 11, "strategy": "uniform"}
    inputs, targets = noise2void.batch((noisy,), seed_of(1, 1), params, None)
    targets = np.asarray(targets)
    np.testing.assert_array_equal(targets[..., :1], np.asarray(noisy))
    mask = targets[..., 1:]
    # Right on the masked pixels, wrong everywhere else: no loss.
    guess = np.where(mask == 1, np.asarray(noisy), 0.5)
    assert float(noise2void.loss(tf.constant(targets), tf.constant(guess), params)) == 0.0
    off = np.where(mask == 1, np.asarray(noisy) + 0.1, np.asarray(noisy))
    loss = float(noise2void.loss(tf.constant(targets), tf.constant(off), params))
    assert loss == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_r2r_renoises_with_alpha_and_the_noise_models_sigma(alpha):
    sigma, data_range = 25.0, 255.0
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 1)).astype(np.uint8)
    source = PairSource(
        None, ImageArray(images, "noisy"), data_range, get_noise_model("gaussian").spec,
        {"sigma": sigma},
    )  # fmt: skip
    noisy = noisy_batch(pieces=16, size=32)
    inputs, targets = r2r.batch((noisy,), seed_of(5, 6), {"alpha": alpha}, unit_variance(source))
    up, down = np.asarray(inputs) - np.asarray(noisy), np.asarray(targets) - np.asarray(noisy)
    z = sigma / data_range
    assert up.std() == pytest.approx(alpha * z, rel=0.03)
    assert down.std() == pytest.approx(z / alpha, rel=0.03)
    assert abs(up.mean()) < 0.05 * up.std()
    np.testing.assert_allclose(up, -(alpha**2) * down, atol=1e-5)  # the same draw z


def test_noise2noise_swaps_input_and_target_per_piece():
    import tensorflow as tf

    first = tf.zeros([64, 8, 8, 1])
    second = tf.ones([64, 8, 8, 1])
    inputs, targets = noise2noise.batch((first, second), seed_of(2, 3), {}, None)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    np.testing.assert_array_equal(inputs + targets, 1.0)  # each piece: one shot, then the other
    piece_in = inputs.reshape(64, -1)
    assert (piece_in == piece_in[:, :1]).all()  # whole pieces, never pixels
    swapped = piece_in[:, 0] == 1.0
    assert 10 < swapped.sum() < 54  # both directions
    again = np.asarray(noise2noise.batch((first, second), seed_of(2, 3), {}, None)[0])
    np.testing.assert_array_equal(again, inputs)


# 3. A third-party objective, and a broken one


@hookimpl
def register_objectives():
    """noise2void again under another name, with its blind spots and its loss."""
    spec = noise2void.NOISE2VOID
    return [
        Objective(
            "noise2void_same", "noise2void, from a plugin.", spec.data, spec.batch,
            spec.params, spec.loss,
        )
    ]  # fmt: skip


class ObjectivePlugin:
    register_objectives = staticmethod(register_objectives)


@pytest.mark.slow
def test_a_plugins_objective_trains_and_logs_its_params(tracking_uri, tmp_path):
    get_plugins().register(ObjectivePlugin(), name="objectives", dist="daeflow-objectives")
    assert all_objectives()["noise2void_same"][0].plugin.distribution == "daeflow-objectives"
    paths = write_noisy_data(tmp_path / "data")
    result = cli(
        "run", "--objective", "noise2void_same", "--noisy", paths["noisy"],
        "--objective-param", "masked_pixel_percentage=4", "--epochs", "1", *COMMON,
    )  # fmt: skip
    run = mlflow.MlflowClient().get_run(run_id_in(result))
    params = run.data.params
    assert run.info.status == "FINISHED"
    assert params["objective"] == "noise2void_same"
    assert params["objective.masked_pixel_percentage"] == "4.0"
    assert params["objective.strategy"] == "uniform" and params["objective.roi_size"] == "11"
    assert params["data.clean_use"] == "none"
    assert np.isfinite(run.data.metrics["test/objective_loss"])


BAD_OBJECTIVE = """
from daeflow import Objective, hookimpl

@hookimpl
def register_objectives():
    return [Objective("clean_only", "d", "clean_images", lambda *a: a)]
"""


def test_an_objective_with_an_unknown_data_kind_is_refused_naming_the_field(site):
    with pytest.raises(ValueError) as info:
        Objective("clean_only", "d", "clean_images", lambda *a: a)
    message = str(info.value)
    assert message == (
        "Objective 'clean_only': data must be one of pairs, noisy_pairs, noisy, "
        "noisy_and_model. Received: data='clean_images'"
    )
    # From a plugin: that plugin's failure, saying the same; the built-ins go on.
    name = site("daeflow-bad-objective", BAD_OBJECTIVE)
    rows = {r["name"]: r for r in json.loads(cli("plugins", "--json").stdout)}
    assert rows[name]["status"].startswith("failed: ") and message in rows[name]["status"]
    assert "clean_only" not in all_objectives() and set(BUILTINS) <= set(all_objectives())


# 4. Refusals: one line, exit 2, no run


@pytest.fixture
def files(tmp_path):
    paths = write_noisy_data(tmp_path / "data")
    clean, _ = make_pairs(n=32, size=16, seed=0)
    np.save(tmp_path / "data" / "clean.npy", clean)
    np.save(tmp_path / "data" / "small.npy", np.load(paths["noisy"])[:, :8, :8])
    return {
        **paths,
        "clean": tmp_path / "data" / "clean.npy",
        "small": tmp_path / "data" / "small.npy",
    }


REFUSALS = {
    "n2v with --clean": (
        ["--objective", "noise2void", "--noisy", "noisy", "--clean", "clean"],
        ["--objective noise2void learns from noisy images alone and takes no --clean"],
    ),
    "n2n without --noisy2": (
        ["--objective", "noise2noise", "--noisy", "noisy"],
        ["--objective noise2noise needs a second noisy shot", "--noisy2 NOISY2.npy"],
    ),
    "r2r without --noise": (
        ["--objective", "r2r", "--noisy", "noisy"],
        ["--objective r2r needs the noise model of the data", "--noise gaussian"],
    ),
    "r2r with speckle": (
        ["--objective", "r2r", "--noisy", "noisy", "--noise", "speckle"],
        ["Noise model 'speckle' does not say its variance", "--objective r2r needs"],
    ),
    "r2r with a noise range": (
        ["--objective", "r2r", "--noisy", "noisy", "--noise", "gaussian"]
        + ["--noise-param", "sigma=5:30"],
        ["--objective r2r needs the noise of the data known per image", "sigma=5:30"],
    ),
    "n2v with --noise": (
        ["--objective", "noise2void", "--noisy", "noisy", "--noise", "gaussian"],
        ["--objective noise2void uses no noise model; drop --noise"],
    ),
    "--noisy2 when supervised": (
        ["--clean", "clean", "--noisy", "noisy", "--noisy2", "noisy"],
        ["--noisy2 is a second noisy shot for --objective noise2noise"],
    ),
    "unknown objective": (
        ["--objective", "noise3void", "--noisy", "noisy"],
        ["Unknown objective 'noise3void'. Choose one of: " + ", ".join(BUILTINS)],
    ),
    "unknown objective param": (
        ["--objective", "noise2void", "--noisy", "noisy", "--objective-param", "alpha=1"],
        ["Objective 'noise2void' has no parameter 'alpha'", "roi_size, strategy"],
    ),
    "n2n shapes differ": (
        ["--objective", "noise2noise", "--noisy", "noisy", "--noisy2", "small"],
        ["shapes differ: (32, 16, 16, 1) vs (32, 8, 8, 1)"],
    ),
    "--val-data when self-supervised": (
        ["--objective", "noise2void", "--noisy", "noisy", "--val-data", "pairs"]
        + ["--test-data", "pairs"],
        ["--objective noise2void validates on noisy images", "drop --val-data"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_mismatched_data_and_objective_are_refused_in_one_line(case, files, tracking_uri):
    args, fragments = REFUSALS[case]
    args = [files.get(a, a) for a in args]
    result = cli("run", *args, "--epochs", "1", code=2)
    one_error_line(result, 2, *fragments)
    assert result.stdout == ""
    assert runs_of(tracking_uri) == []  # refused before a run starts: none left RUNNING


# 5. A killed noise2void run, resumed, ends where an uninterrupted one does


@pytest.mark.slow
def test_a_killed_noise2void_run_resumes_to_the_uninterrupted_result(trained, tracking_uri):
    paths = trained["paths"]
    args = ["run", "--noisy", paths["noisy"], "--test-data", paths["pairs"], *N2V_ARGS]
    killed = Process(*args)
    killed.wait_for("epoch   1/")
    killed.process.send_signal(signal.SIGKILL)
    killed.finish()
    (run,) = runs_of(tracking_uri)
    assert run.info.status == "RUNNING"  # as a killed process leaves it

    resumed = cli("run", "--resume", run.info.run_id[:8])
    run = mlflow.MlflowClient().get_run(run.info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["daeflow.resumed"] == "1"
    steps = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch/val_loss")
    assert sorted(m.step for m in steps) == list(range(1, N2V_EPOCHS + 1))
    straight = trained["noise2void"].data.metrics
    for name in ("test/psnr", "test/ssim", "train/best_val_loss"):
        assert run.data.metrics[name] == pytest.approx(straight[name], abs=1e-6), name
    assert run.data.metrics["train/best_epoch"] == straight["train/best_epoch"]
    assert "test PSNR" in resumed.stdout
    # From the checkpoint of an epoch after the first (each is written before it is printed).
    assert "epoch   1/" not in resumed.stdout
