"""Every way `daeflow run` refuses data or options: one "Error:" line, no traceback, no run.

Each test writes real files into tmp_path and invokes the CLI as a user would.
"""

import os

import numpy as np
import pytest
from conftest import make_pairs
from typer.testing import CliRunner

from daeflow.cli import app

runner = CliRunner()


def invoke(tracking_uri, *args):
    """`daeflow run ARGS --epochs 1 --batch-size 8 --tracking-uri URI`."""
    return runner.invoke(
        app,
        ["run", *map(str, args), "--epochs", "1", "--batch-size", "8"]
        + ["--tracking-uri", tracking_uri],
    )


def all_runs(tracking_uri):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments)


def assert_refused(result, tracking_uri, *fragments) -> str:
    """Exit != 0, stderr is exactly one "Error:" line holding `fragments`, and no run exists."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    # Refusals happen before a run starts, so nothing can be left RUNNING (or FAILED).
    assert all_runs(tracking_uri) == []
    return lines[0]


@pytest.fixture
def pair(tmp_path):
    """Write clean/noisy arrays to clean.npy/noisy.npy in tmp_path; return the two paths."""

    def write(clean, noisy):
        paths = tmp_path / "clean.npy", tmp_path / "noisy.npy"
        np.save(paths[0], clean)
        np.save(paths[1], noisy)
        return paths

    return write


@pytest.fixture
def good(pair):
    """A valid 24-image uint8 pair."""
    return pair(*make_pairs())


# Files that cannot be read


def test_missing_file(tracking_uri, good, tmp_path):
    _, noisy = good
    missing = tmp_path / "nowhere" / "clean.npy"
    result = invoke(tracking_uri, "--clean", missing, "--noisy", noisy)
    assert_refused(result, tracking_uri, "clean file not found", str(missing))


def test_a_folder_without_images(tracking_uri, good, tmp_path):
    clean, _ = good
    folder = tmp_path / "noisy.npy.d"
    folder.mkdir()
    result = invoke(tracking_uri, "--clean", clean, "--noisy", folder)
    assert_refused(result, tracking_uri, str(folder), "holds no .png, .tif, .tiff images")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read a chmod 000 file"
)
def test_unreadable_file(tracking_uri, good):
    clean, noisy = good
    clean.chmod(0)
    try:
        result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    finally:
        clean.chmod(0o644)
    assert_refused(result, tracking_uri, "Cannot read clean file", "permission")


# Files that are not a valid .npy


def test_truncated_npy_data(tracking_uri, good):
    clean, noisy = good
    content = clean.read_bytes()
    clean.write_bytes(content[: len(content) // 2])
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, f"clean file {clean} is truncated or corrupt")


def test_truncated_npy_header(tracking_uri, good):
    clean, noisy = good
    clean.write_bytes(clean.read_bytes()[:20])
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, f"clean file {clean} has a corrupt .npy header")


@pytest.mark.parametrize(
    "content",
    [np.random.default_rng(0).bytes(4096), b"id,value\n1,2\n3,4\n", b""],
    ids=["random-bytes", "text", "empty-file"],
)
def test_wrong_magic(tracking_uri, good, content):
    clean, noisy = good
    noisy.write_bytes(content)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, f"noisy file {noisy} is not a .npy, .npz or TIFF file")


def test_npy_of_python_objects(tracking_uri, good):
    clean, noisy = good
    objects = np.empty(24, dtype=object)
    objects[:] = [np.zeros((16, 16)) for _ in range(24)]
    np.save(clean, objects, allow_pickle=True)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "holds Python objects", "pickle")


def test_npz_of_python_objects(tracking_uri, tmp_path):
    clean, noisy = make_pairs()
    objects = np.empty(24, dtype=object)
    objects[:] = list(clean)
    path = tmp_path / "pairs.npz"
    np.savez(path, clean=objects, noisy=noisy)
    result = invoke(tracking_uri, "--data", path)
    assert_refused(result, tracking_uri, "array 'clean'", "holds Python objects", "pickle")


def test_npz_key_missing_lists_keys(tracking_uri, tmp_path):
    path = tmp_path / "pairs.npz"
    clean, noisy = make_pairs()
    np.savez(path, images=clean, noisy=noisy)
    result = invoke(tracking_uri, "--data", path, "--clean-key", "nope")
    assert_refused(result, tracking_uri, "key 'nope' not found", "it has: images, noisy")


def test_npy_passed_as_npz(tracking_uri, good):
    # A .npy has no keys; reading it for both --clean-key and --noisy-key would train
    # on noisy == clean.
    clean, _ = good
    result = invoke(tracking_uri, "--data", clean)
    assert_refused(result, tracking_uri, "single .npy array", "--clean/--noisy")


# Arrays of the wrong kind


def test_non_numeric_dtype(tracking_uri, pair):
    _, noisy = make_pairs()
    clean, noisy = pair(np.full((24, 16, 16, 1), "abcde"), noisy)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "dtype <U5", "not numeric")


# 5-D arrays are volumes (N, Z, Y, X, C); 6-D is nothing daeflow knows.
@pytest.mark.parametrize("shape", [(24, 256), (24, 1, 1, 16, 16, 1)], ids=["2-D", "6-D"])
def test_wrong_number_of_dimensions(tracking_uri, pair, shape):
    clean, noisy = (a.reshape(shape) for a in make_pairs())
    clean, noisy = pair(clean, noisy)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, f"{len(shape)} dimensions", str(shape), "(N, H, W, C)")


def test_shapes_differ(tracking_uri, pair):
    clean, noisy = make_pairs()
    clean, noisy = pair(clean, noisy[:, :8])
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "shapes differ", "(24, 16, 16, 1) vs (24, 8, 16, 1)")


def test_empty_array(tracking_uri, pair):
    empty = np.zeros((0, 16, 16, 1), dtype=np.float32)
    clean, noisy = pair(empty, empty)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "empty", "(0, 16, 16, 1)")


def test_too_few_images_for_the_split(tracking_uri, pair):
    clean, noisy = pair(*make_pairs(n=2))
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "2 images are too few", "--val-data")


# Values


def test_nan_says_how_many_and_where(tracking_uri, pair):
    clean, noisy = (a.astype(np.float32) for a in make_pairs())
    clean[3, 4, 5, 0] = clean[7, 1, 1, 0] = clean[20, 0, 0, 0] = np.nan
    clean, noisy = pair(clean, noisy)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "clean array has 3 NaN", "index (3, 4, 5, 0)")


def test_inf_in_noisy(tracking_uri, pair):
    clean, noisy = (a.astype(np.float32) for a in make_pairs())
    noisy[5, 2, 3, 0] = -np.inf
    clean, noisy = pair(clean, noisy)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "noisy array has 1 Inf", "index (5, 2, 3, 0)")


def test_values_above_the_data_range(tracking_uri, pair):
    clean, noisy = (a.astype(np.float32) / 255 for a in make_pairs())
    clean[2, 3, 4, 0] = 300
    clean, noisy = pair(clean, noisy)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy, "--data-range", "1")
    assert_refused(
        result,
        tracking_uri,
        "1 value(s) outside [0, 1]",
        "300 at index (2, 3, 4, 0)",
        "--data-range",
    )


def test_negative_values(tracking_uri, pair):
    clean, noisy = (a.astype(np.float32) / 255 for a in make_pairs())
    clean[6, 0, 1, 0] = -0.5
    clean, noisy = pair(clean, noisy)
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "outside [0, 1]", "-0.5 at index (6, 0, 1, 0)")


# Sizes and options


@pytest.mark.slow
def test_size_not_a_multiple_is_refused(tracking_uri, pair):
    clean, noisy = pair(*make_pairs(size=18))
    result = invoke(tracking_uri, "--arch", "conv_baseline", "--clean", clean, "--noisy", noisy)
    assert_refused(result, tracking_uri, "'conv_baseline'", "multiples of 4", "18x18", "--pad")


@pytest.mark.slow
def test_size_not_a_multiple_trains_with_pad(tracking_uri, pair):
    clean, noisy = pair(*make_pairs(size=18))
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy, "--pad")
    assert result.exit_code == 0, result.output
    (run,) = all_runs(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.data.params["data.pad"] == "True"
    assert run.data.params["data.shape"] == "(24, 18, 18, 1)"
    assert np.isfinite(run.data.metrics["test/psnr"])


@pytest.mark.parametrize(
    ("fractions", "fragments"),
    [
        (["--val-fraction", "1.5"], ["--val-fraction", "between 0 and 1", "1.5"]),
        (
            ["--val-fraction", "0.6", "--test-fraction", "0.5"],
            ["below 1", "0.6 + 0.5"],
        ),
    ],
    ids=["val-1.5", "sum-1.1"],
)
def test_fractions_out_of_range(tracking_uri, good, fractions, fragments):
    clean, noisy = good
    result = invoke(tracking_uri, "--clean", clean, "--noisy", noisy, *fractions)
    assert_refused(result, tracking_uri, *fragments)


def test_noisy_without_clean(tracking_uri, good):
    _, noisy = good
    result = invoke(tracking_uri, "--noisy", noisy)
    assert_refused(result, tracking_uri, "--noisy needs --clean")


def test_clean_without_noisy_or_noise(tracking_uri, good):
    clean, _ = good
    result = invoke(tracking_uri, "--clean", clean)
    assert_refused(result, tracking_uri, "--clean needs --noisy", "--noise")
