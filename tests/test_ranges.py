"""The data range rule (data alone and with a model) and the warning about noisy clean targets."""

import numpy as np
import pytest
from conftest import make_pairs
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.config import DataOptions
from daeflow.data import profile
from daeflow.data.arrays import ImageArray
from daeflow.data.pairs import PairSource
from daeflow.data.ranges import choose_range
from daeflow.errors import DataError
from daeflow.infer.tiling import restore

runner = CliRunner()

ISSUE_LINE = (
    "uint16 data never exceed 4095: using the 12-bit range 4095; pass --data-range 65535 to "
    "score on the full uint16 scale."
)


def images(top, dtype=np.uint16, name="clean"):
    """Three 4x4 images whose largest value is `top`."""
    array = np.zeros((3, 4, 4, 1), dtype)
    array[1, 2, 3, 0] = top
    return ImageArray(array, name)


def test_uint16_data_that_never_exceed_4095_are_scored_on_4095():
    chosen = choose_range([images(4095), images(4000, name="noisy")])
    assert (chosen.value, chosen.rule, chosen.line) == (4095.0, "observed 12-bit", ISSUE_LINE)


@pytest.mark.parametrize(
    "dtype, clean_top, noisy_top, value, rule",
    [
        (np.uint16, 700, 1023, 1023.0, "observed 10-bit"),
        (np.uint16, 700, 1024, 4095.0, "observed 12-bit"),  # the maximum over both arrays
        (np.uint16, 4096, 100, 16383.0, "observed 14-bit"),
        (np.uint16, 16384, 100, 65535.0, "dtype"),
        (np.uint8, 200, 180, 255.0, "dtype"),  # uint8 is always 8-bit
        (np.float32, 0.8, 1.3, 1.0, "unit"),  # floats: the clean array's maximum (as before)
        (np.float64, 200.0, 300.0, 200.0, "observed"),
    ],
)
def test_the_rule_for_data_alone(dtype, clean_top, noisy_top, value, rule):
    chosen = choose_range([images(clean_top, dtype), images(noisy_top, dtype, "noisy")])
    assert (chosen.value, chosen.rule, chosen.model_differs) == (value, rule, False)


def test_data_range_wins_over_the_rule_and_the_model():
    chosen = choose_range([images(4095)], 65535, stored=255.0, stored_dtype="uint8")
    assert (chosen.value, chosen.rule) == (65535.0, "given")


@pytest.mark.parametrize(
    "top, dtype, stored, stored_dtype, value, differs, fragment",
    [
        # A uint8 model on 12-bit input: the input's own 12-bit scale, said.
        (4095, np.uint16, 255.0, "uint8", 4095.0, True, "trained on uint8 data (range 255)"),
        # Input like the training data: the stored range, nothing to say.
        (3000, np.uint16, 4095.0, "uint16", 4095.0, False, "(stored with the model)."),
        # Beyond the stored range: scaled by it, its highlights would be clipped.
        (9000, np.uint16, 4095.0, "uint16", 16383.0, True, "maximum is 9000: using its 14-bit"),
        # Below the stored range: the stored range, and how to use the input's own.
        (4095, np.uint16, 65535.0, "uint16", 65535.0, True, "pass --data-range 4095"),
        (200, np.uint8, 4095.0, "uint16", 255.0, True, "this input is uint8"),
        (0.9, np.float32, 255.0, "uint8", 1.0, True, "this float32 input's maximum is 0.9"),
        (0.9, np.float32, 255.0, "float64", 255.0, True, "pass --data-range 1 if"),
        (0.9, np.float32, 1.0, "float64", 1.0, False, "(stored with the model)."),
        (4095, np.uint16, 255.0, None, 4095.0, False, ISSUE_LINE),  # no dtype stored
    ],
)
def test_the_rule_with_a_model(top, dtype, stored, stored_dtype, value, differs, fragment):
    chosen = choose_range([images(top, dtype)], None, stored, stored_dtype)
    assert (chosen.value, chosen.model_differs) == (value, differs)
    assert fragment in chosen.line and "\n" not in chosen.line


def test_the_output_never_leaves_the_input_dtype():
    ones = np.ones((2, 2, 1), np.float32)
    assert restore(ones, 1000.0, np.uint8).max() == 255  # not 1000 wrapped around to 232
    assert restore(ones, 4095.0, np.uint16).max() == 4095


def doubling_model():
    """A real Keras model whose output is twice its input: it would push values past the
    input's range if anything let them through."""
    import keras

    inputs = keras.Input((None, None, 1))
    return keras.Model(inputs, keras.layers.Rescaling(2.0)(inputs), name="doubling")


def test_a_uint8_model_on_12_bit_input_scales_by_4095_and_says_so(tmp_path):
    from daeflow.track.flavor import save_local

    metadata = {"data_range": 255.0, "data_dtype": "uint8", "size_multiple": 1}
    save_local(doubling_model(), tmp_path / "model", metadata, "daeflow")
    image = np.random.default_rng(0).integers(0, 4096, (40, 48), dtype=np.uint16)
    image[0, 0] = 4095
    np.save(tmp_path / "in.npy", image)
    args = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]
    result = runner.invoke(app, [*args, "--model", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    assert (
        "The model was trained on uint8 data (range 255); this uint16 input's maximum is 4095: "
        "using its 12-bit range 4095; pass --data-range to change."
    ) in result.stdout.splitlines()
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.uint16 and out.max() == 4095  # doubled, clipped to the 12-bit scale
    np.testing.assert_array_equal(out, np.minimum(image.astype(np.int64) * 2, 4095))


def test_the_pyfunc_uses_the_same_rule(tmp_path, caplog):
    import mlflow

    from daeflow.track.flavor import save_local

    metadata = {"data_range": 255.0, "data_dtype": "uint8", "size_multiple": 1}
    save_local(doubling_model(), tmp_path / "model", metadata, "daeflow")
    image = np.full((16, 16, 1), 3000, np.uint16)
    image[0, 0] = 4000
    out = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(image)
    assert out.dtype == np.uint16 and out.max() == 4095
    assert "using its 12-bit range 4095" in caplog.text  # the server's log says why


# Noisy "clean" targets


def second_realisation(clean, sigma=20.0, seed=9):
    """Another noisy capture of the same clean images (what Noise2Noise trains on)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def own_ratio(clean, noisy) -> float:
    found = profile.noise_profile(PairSource(ImageArray(clean, "c"), ImageArray(noisy, "n"), 255.0))
    return found["clean_own_noise_c0"] / found["noisy_own_noise_c0"]


@pytest.mark.parametrize("sigma", [2.0, 5.0, 20.0, 40.0])
def test_each_arrays_own_noise_is_measured_apart_from_the_texture(sigma):
    clean, noisy = make_pairs(n=24, size=32, sigma=sigma)
    assert own_ratio(clean, noisy) < 0.25  # clean targets
    assert own_ratio(second_realisation(clean, sigma), noisy) == pytest.approx(1.0, abs=0.15)
    found = profile.noise_profile(PairSource(ImageArray(clean, "c"), ImageArray(noisy, "n"), 255.0))
    assert found["noisy_own_noise_c0"] == pytest.approx(sigma, rel=0.15)


def test_the_texture_of_photographs_is_not_read_as_noise():
    from daeflow.data.demo import demo_arrays

    clean, noisy = demo_arrays(0)  # photographs with Gaussian noise of sigma 25, clipped
    found = profile.noise_profile(PairSource(ImageArray(clean, "c"), ImageArray(noisy, "n"), 255.0))
    for channel in range(3):
        noisy_sigma = found[f"noisy_own_noise_c{channel}"]
        assert 20 < noisy_sigma < 26  # clipping at 0 and 255 takes a little off
        assert found[f"clean_own_noise_c{channel}"] < 0.1 * noisy_sigma
    assert profile.noisy_targets(found) is None


def prepared(tmp_path, clean, noisy, **options):
    from daeflow.data.prepare import prepare_data
    from daeflow.plugin.registry import get_architecture

    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "noisy.npy", noisy)
    data = DataOptions(clean=str(tmp_path / "clean.npy"), noisy=str(tmp_path / "noisy.npy"))
    for name, value in options.items():
        setattr(data, name, value)
    return prepare_data(data, get_architecture("conv_baseline").spec, 0)


def test_a_clean_array_as_noisy_as_the_noisy_one_gets_the_warning(tmp_path):
    clean, noisy = make_pairs(n=24)
    as_noisy = prepared(tmp_path, second_realisation(clean), noisy)
    (warning,) = as_noisy.lines[1:]
    assert warning.startswith("The clean targets look noisy")
    assert "not a PSNR against the truth" in warning and "--test-data" in warning
    assert "self-supervised" in warning and "\n" not in warning
    assert as_noisy.noise_profile["clean_own_noise_c0"] > 0.6 * 20  # logged with the profile

    really_clean = prepared(tmp_path, clean, noisy)
    assert really_clean.targets_note is None and len(really_clean.lines) == 1


def test_noisy_training_targets_with_a_clean_test_set_get_no_warning(tmp_path):
    clean, noisy = make_pairs(n=24)
    np.savez(tmp_path / "held_out.npz", clean=clean[:8], noisy=noisy[:8])
    held_out = str(tmp_path / "held_out.npz")
    data = prepared(
        tmp_path, second_realisation(clean), noisy, val_data=held_out, test_data=held_out
    )
    assert data.targets_note is None  # the scores are against really clean images


def test_evaluate_warns_about_noisy_targets(fresh_model, tmp_path):
    from daeflow.track.flavor import save_local

    metadata = {"data_range": 255.0, "data_dtype": "uint8", "size_multiple": 4}
    save_local(fresh_model("conv_baseline", 1), tmp_path / "model", metadata, "daeflow")
    clean, noisy = make_pairs(n=6, size=32)
    np.save(tmp_path / "clean.npy", second_realisation(clean))
    np.save(tmp_path / "noisy.npy", noisy)
    args = ["--clean", str(tmp_path / "clean.npy"), "--noisy", str(tmp_path / "noisy.npy")]
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "model"), *args])
    assert result.exit_code == 0, result.output
    assert "The clean targets look noisy" in result.stdout


def test_a_resumed_run_keeps_the_range_it_was_started_with(tmp_path):
    from daeflow.data.prepare import prepare_data
    from daeflow.plugin.registry import get_architecture

    clean, noisy = make_pairs(n=24, dtype=np.uint16, data_range=4095)
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "noisy.npy", noisy)
    options = DataOptions(clean=str(tmp_path / "clean.npy"), noisy=str(tmp_path / "noisy.npy"))
    arch = get_architecture("conv_baseline").spec
    assert prepare_data(options, arch, 0).data_range == 4095
    with pytest.raises(DataError, match="outside"):  # values are checked against it
        prepare_data(options, arch, 0, logged_range=1000.0)
    kept = prepare_data(options, arch, 0, logged_range=65535.0)
    assert (kept.data_range, kept.params["data.range_rule"]) == (65535.0, "logged")
    assert kept.range_note == "Using data range 65535 (the run's own, as logged when it started)."


@pytest.mark.slow
def test_a_run_on_noisy_targets_says_so_before_and_after_training(tracking_uri, tmp_path):
    import mlflow

    clean, noisy = make_pairs(n=24)
    np.save(tmp_path / "clean.npy", second_realisation(clean))
    np.save(tmp_path / "noisy.npy", noisy)
    args = ["--clean", str(tmp_path / "clean.npy"), "--noisy", str(tmp_path / "noisy.npy")]
    result = runner.invoke(
        app, ["run", *args, "--epochs", "1", "--batch-size", "8", "--tracking-uri", tracking_uri]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    said = [line for line in lines if "The clean targets look noisy" in line]
    assert len(said) == 2 and said[1].startswith("Note: ")  # before training; by the numbers
    assert lines.index(said[0]) < lines.index(next(x for x in lines if x.startswith("Training")))
    run_id = result.stdout.split("MLflow run ")[1].split()[0]
    params = mlflow.MlflowClient(tracking_uri).get_run(run_id).data.params
    clean_sigma, noisy_sigma = (float(params[f"data.{a}_own_noise_c0"]) for a in ("clean", "noisy"))
    assert clean_sigma > 0.6 * noisy_sigma and noisy_sigma == pytest.approx(20, rel=0.15)
