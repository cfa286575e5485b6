"""The data path: loading, ranges, value checks, splits, alignment, and what a run logs about it."""

import json

import numpy as np
import pytest
from conftest import make_pairs
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.data import arrays
from daeflow.data.arrays import ImageArray, as_images, load_array
from daeflow.data.checks import check_values
from daeflow.data.pairs import PairSource
from daeflow.data.profile import check_alignment
from daeflow.data.ranges import choose_range
from daeflow.data.splits import split_indices
from daeflow.errors import DataError

runner = CliRunner()
# A non-default strength for each noise model, and an independent simulation of it on
# clean images `c` scaled to [0, 1].
NOISE_SETTINGS = {
    "gaussian": ("sigma", 10.0, lambda c, v, rng: c + rng.normal(0, v / 255, c.shape)),
    "poisson": ("peak", 100.0, lambda c, v, rng: rng.poisson(c * v) / v),
    "salt_pepper": (
        "amount",
        0.1,
        lambda c, v, rng: np.where(rng.random(c.shape) < v, rng.random(c.shape) < 0.5, c),
    ),
    "speckle": ("sigma", 0.2, lambda c, v, rng: c * (1 + rng.normal(0, v, c.shape))),
}


def expected_noisy_psnr(clean, simulate, value, draws=50) -> float:
    """Mean per-image PSNR of simulated noisy images, clipped to [0, 1] as evaluation does."""
    rng = np.random.default_rng(123)
    psnrs = []
    for _ in range(draws):
        noisy = np.clip(simulate(clean, value, rng), 0, 1)
        psnrs.append(-10 * np.log10(np.mean((noisy - clean) ** 2, axis=(1, 2, 3))))
    return float(np.mean(psnrs))


def invoke(tracking_uri, *args):
    """`daeflow run ARGS --epochs 1 --batch-size 8 --tracking-uri URI`."""
    return runner.invoke(
        app,
        ["run", *map(str, args), "--epochs", "1", "--batch-size", "8"]
        + ["--tracking-uri", tracking_uri],
    )


def trained(tracking_uri, *args):
    """Run the CLI, expect success, and return the run it logged."""
    import mlflow

    result = invoke(tracking_uri, *args)
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri)
    run_id = result.stdout.split("MLflow run ")[1].split()[0]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    return run, result


def runs(tracking_uri):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def logged_split(tracking_uri, run_id, tmp_path) -> dict:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    path = client.download_artifacts(run_id, "split_indices.json", str(tmp_path))
    with open(path) as f:
        return json.load(f)


def stored_metadata(tracking_uri, result) -> dict:
    """The metadata of the model a `daeflow run` logged (as `denoise` and the pyfunc read it)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    uri = result.stdout.split("model: ")[1].split()[0]
    return mlflow.models.get_model_info(uri).metadata


def dataset_inputs(run) -> dict:
    """{context: dataset} of a run's logged dataset inputs."""
    found = {}
    for item in run.inputs.dataset_inputs:
        tags = {t.key: t.value for t in item.tags}
        found[tags["mlflow.data.context"]] = item.dataset
    return found


# Loading


def test_memory_mapped_reads_equal_in_memory_reads(tmp_path):
    clean, noisy = make_pairs(n=24, channels=3, dtype=np.uint16, data_range=4095)
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "noisy.npy", noisy)
    disk = load_array(tmp_path / "clean.npy", "clean")
    memory = ImageArray(np.load(tmp_path / "clean.npy"), "clean")
    assert disk._on_disk and not memory._on_disk

    indices = [5, 0, 23, 5, 11, -1]
    from_disk, from_memory = disk.read(indices), memory.read(indices)
    assert from_disk.dtype == from_memory.dtype == np.uint16
    np.testing.assert_array_equal(from_disk, from_memory)
    np.testing.assert_array_equal(from_disk, clean[indices])
    for images in (disk, memory):
        with pytest.raises(IndexError):
            images.read([24])

    # Blocks cover the array in memory order whatever their size: whole images...
    images, rows, parts = zip(*disk.blocks(5 * 16 * 16 * 3 * 2), strict=True)
    assert images == (0, 5, 10, 15, 20) and set(rows) == {0}
    np.testing.assert_array_equal(np.concatenate(parts), clean)
    # ... or bands of rows of one image, when an image is larger than a block.
    images, rows, parts = zip(*disk.blocks(6 * 16 * 3 * 2), strict=True)
    assert images[:4] == (0, 0, 0, 1) and rows[:4] == (0, 6, 12, 0)
    assert b"".join(p.tobytes() for p in parts) == clean.tobytes()

    # Crops read from disk equal crops of the array, row by row.
    tops, lefts = [0, 3, 9], [2, 0, 5]
    for images in (disk, memory):
        crops = images.read_crops([4, 0, 23], tops, lefts, 7, 11)
        for k, (i, top, left) in enumerate(zip([4, 0, 23], tops, lefts, strict=True)):
            np.testing.assert_array_equal(crops[k], clean[i, top : top + 7, left : left + 11])

    on_disk = PairSource(disk, load_array(tmp_path / "noisy.npy", "noisy"), 4095.0)
    in_memory = PairSource(memory, ImageArray(noisy, "noisy"), 4095.0)
    for got, expected in zip(on_disk.batch(indices), in_memory.batch(indices), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(on_disk.batch([3])[1], clean[[3]] / 4095, rtol=1e-6)


def test_three_dimensional_input_gets_a_channel_axis(tmp_path):
    clean, _ = make_pairs(n=6, size=8)
    np.save(tmp_path / "gray.npy", clean[..., 0])
    images = as_images(load_array(tmp_path / "gray.npy", "clean"))
    assert images.shape == (6, 8, 8, 1)
    assert images._on_disk  # still read from the file, not loaded whole
    np.testing.assert_array_equal(images.read([4, 1]), clean[[4, 1]])


def test_single_array_npz_is_read_without_a_key(tmp_path):
    np.savez(tmp_path / "groups.npz", np.arange(5))
    np.testing.assert_array_equal(load_array(tmp_path / "groups.npz", "groups").array, range(5))
    np.savez(tmp_path / "two.npz", a=np.arange(5), b=np.arange(5))
    with pytest.raises(DataError, match=r"holds 2 arrays \(a, b\)"):
        load_array(tmp_path / "two.npz", "groups")


# Data range and values


def test_uint16_range_is_never_255_and_data_range_wins():
    low = ImageArray(np.full((3, 4, 4, 1), 200, dtype=np.uint16), "clean")
    chosen = choose_range([low])
    assert (chosen.value, chosen.rule) == (1023.0, "observed 10-bit")
    assert "uint16" in chosen.line and "--data-range 65535" in chosen.line
    assert choose_range([ImageArray(np.zeros((3, 4, 4, 1), np.uint8), "c")]).value == 255
    given = choose_range([low], 4095)
    assert (given.value, given.rule, given.line) == (
        4095.0,
        "given",
        "Using data range 4095 (from --data-range).",
    )


def test_float_range_is_inferred_with_a_notice():
    unit = ImageArray(np.full((3, 4, 4, 1), 0.9, dtype=np.float32), "clean")
    chosen = choose_range([unit])
    assert (chosen.value, chosen.rule) == (1.0, "unit")
    assert chosen.line.startswith("Using data range 1 (floats with maximum 0.9")
    assert "--data-range" in chosen.line

    wide = ImageArray(np.linspace(0, 200, 48, dtype=np.float64).reshape(3, 4, 4, 1), "clean")
    chosen = choose_range([wide])
    assert (chosen.value, chosen.rule) == (200.0, "observed")
    assert "observed maximum" in chosen.line

    with pytest.raises(DataError, match="no positive values.*--data-range"):
        choose_range([ImageArray(np.zeros((3, 4, 4, 1), np.float32), "clean")])


@pytest.mark.parametrize("block", [4 * 4 * 4, 4 * 4])  # one image, one row per block
def test_value_checks_count_and_locate_across_blocks(monkeypatch, block):
    monkeypatch.setattr(arrays, "BLOCK_BYTES", block)
    array = np.full((16, 4, 4, 1), 0.5, dtype=np.float32)
    array[7, 2, 1, 0] = array[12, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"2 NaN value\(s\); the first is at index \(7, 2, 1, 0\)"):
        check_values(ImageArray(array, "clean"), 1.0)

    array[7, 2, 1, 0] = array[12, 0, 0, 0] = 0.5
    array[9, 3, 3, 0], array[10, 0, 0, 0] = 1.5, -2.5
    with pytest.raises(DataError, match=r"2 value\(s\) outside \[0, 1\].*1\.5 at index \(9, 3"):
        check_values(ImageArray(array, "clean"), 1.0)
    # Noisy data may overshoot by one data range either way.
    check_values(ImageArray(np.clip(array, -1, 2), "noisy"), 1.0, slack=1.0)
    with pytest.raises(DataError, match=r"outside \[-1, 2\].*-2\.5 at index \(10, 0, 0, 0\)"):
        check_values(ImageArray(array, "noisy"), 1.0, slack=1.0)


# Splits


def test_group_splits_never_share_a_group():
    rng = np.random.default_rng(0)
    groups = rng.permutation(np.repeat(np.arange(10), rng.integers(1, 6, 10)))
    for seed in range(10):
        split = split_indices(len(groups), 0.2, 0.2, seed, groups)
        members = [set(groups[getattr(split, name)]) for name in ("train", "val", "test")]
        assert all(members), (seed, members)
        assert not (members[0] & members[1] or members[0] & members[2] or members[1] & members[2])
        everything = np.sort(np.concatenate([split.train, split.val, split.test]))
        np.testing.assert_array_equal(everything, np.arange(len(groups)))


def test_splits_are_reproducible_per_seed():
    first, again = split_indices(100, 0.1, 0.2, 7), split_indices(100, 0.1, 0.2, 7)
    assert first.as_dict() == again.as_dict()
    assert first.sizes == {"train": 70, "val": 10, "test": 20}
    other = split_indices(100, 0.1, 0.2, 8)
    assert other.sizes == first.sizes
    assert not np.array_equal(other.test, first.test)


@pytest.mark.parametrize(
    ("n", "val", "test", "sizes"),
    [
        (24, 0.1, 0.1, (18, 3, 3)),  # fractions of an image round up
        (100, 0.07, 0.07, (86, 7, 7)),  # 0.07 * 100 is 7.000000000000001 in floating point
        (100, 0.14, 0.1, (76, 14, 10)),
        (3, 0.1, 0.1, (1, 1, 1)),
    ],
)
def test_split_sizes(n, val, test, sizes):
    split = split_indices(n, val, test, 0)
    assert (len(split.train), len(split.val), len(split.test)) == sizes


def test_split_needs_three_groups():
    with pytest.raises(DataError, match="10 images in 2 groups are too few"):
        split_indices(10, 0.1, 0.1, 0, groups=[0] * 5 + [1] * 5)


# Alignment


def test_alignment_check_passes_a_real_pair_and_refuses_a_shifted_one():
    pair = make_pairs()
    clean, noisy = ImageArray(pair[0], "clean"), ImageArray(pair[1], "noisy")
    assert check_alignment(clean, noisy) == 1.0
    shifted = ImageArray(np.roll(noisy.array, 1, axis=0), "noisy")
    with pytest.raises(DataError, match="do not look aligned.*--no-alignment-check"):
        check_alignment(clean, shifted)


def test_alignment_check_passes_repeated_captures_of_one_scene():
    # Identical clean images cannot be told apart, and any pairing of them is right.
    rng = np.random.default_rng(0)
    clean = np.repeat(rng.uniform(50, 200, (1, 16, 16, 1)), 24, axis=0)
    clean = clean + rng.normal(0, 1, (24, 1, 1, 1))  # a little flicker between captures
    noisy = clean + rng.normal(0, 20, clean.shape)
    assert check_alignment(ImageArray(clean, "clean"), ImageArray(noisy, "noisy")) == 1.0
    assert check_alignment(ImageArray(noisy, "clean"), ImageArray(noisy, "noisy")) == 1.0


# Through the CLI, with real training


@pytest.mark.slow
def test_uint16_npy_and_npz_train_with_the_same_digest_and_split(tracking_uri, tmp_path):
    from daeflow.data.digest import sha256_digest

    clean, noisy = make_pairs(n=24, dtype=np.uint16, data_range=4095)
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "noisy.npy", noisy)
    np.savez(tmp_path / "pairs.npz", clean=clean, noisy=noisy)

    from_npy, result = trained(
        tracking_uri, "--clean", tmp_path / "clean.npy", "--noisy", tmp_path / "noisy.npy"
    )
    # 12-bit data in uint16 are scored on their own scale, said in one line and logged.
    line = (
        "uint16 data never exceed 4095: using the 12-bit range 4095; pass --data-range 65535 "
        "to score on the full uint16 scale."
    )
    assert line in result.stdout.splitlines()
    params, metrics = from_npy.data.params, from_npy.data.metrics
    assert float(params["data.range"]) == 4095
    assert params["data.range_rule"] == "observed 12-bit"
    assert stored_metadata(tracking_uri, result)["data_range"] == 4095
    assert params["data.dtype"] == "uint16" and params["data.shape"] == "(24, 16, 16, 1)"
    for name in ("psnr", "ssim", "noisy_psnr", "noisy_ssim", "psnr_gain"):
        assert np.isfinite(metrics[f"test/{name}"]), name
    # The noise profile is on the data's own scale: sigma 20/255 of 4095, rounded; a param.
    assert float(params["data.noise_sigma_c0"]) == pytest.approx(20 * 4095 / 255, rel=0.05)
    assert not [name for name in metrics if "noise" in name]

    from_npz, _ = trained(tracking_uri, "--data", tmp_path / "pairs.npz")
    assert float(from_npz.data.params["data.range"]) == 4095

    digest = from_npy.data.tags["data.train.sha256"]
    assert digest == from_npz.data.tags["data.train.sha256"]
    assert digest == sha256_digest(ImageArray(clean, "clean"), ImageArray(noisy, "noisy"))
    assert digest != sha256_digest(ImageArray(clean, "clean"), ImageArray(noisy + 1, "noisy"))
    for run in (from_npy, from_npz):
        dataset = dataset_inputs(run)["training"]
        assert dataset.digest == digest[:32]

    expected = split_indices(24, 0.1, 0.1, 0).as_dict()
    assert logged_split(tracking_uri, from_npy.info.run_id, tmp_path / "a") == expected
    assert logged_split(tracking_uri, from_npz.info.run_id, tmp_path / "b") == expected


@pytest.mark.slow
def test_groups_stay_in_one_split_through_the_cli(tracking_uri, pair_files, tmp_path):
    clean, noisy = pair_files(n=24)
    groups = np.random.default_rng(1).permutation(np.repeat(np.arange(8), 3))
    np.save(tmp_path / "groups.npy", groups)
    run, _ = trained(
        tracking_uri, "--clean", clean, "--noisy", noisy, "--groups", tmp_path / "groups.npy"
    )
    split = logged_split(tracking_uri, run.info.run_id, tmp_path / "split")
    members = {name: set(groups[split[name]]) for name in ("train", "val", "test")}
    assert members["val"] and members["test"]
    assert not members["train"] & members["val"]
    assert not members["train"] & members["test"]
    assert not members["val"] & members["test"]
    assert sorted(sum(split.values(), [])) == list(range(24))
    assert all(len(indices) % 3 == 0 for indices in split.values())
    assert split == split_indices(24, 0.1, 0.1, 0, groups).as_dict()
    assert run.data.params["data.groups"] == str(tmp_path / "groups.npy")


@pytest.mark.slow
def test_shuffled_noisy_is_refused_unless_the_check_is_off(tracking_uri, tmp_path):
    clean, noisy = make_pairs(dtype=np.float32, data_range=1.0)
    np.save(tmp_path / "clean.npy", clean)
    np.save(tmp_path / "noisy.npy", np.roll(noisy, 1, axis=0))
    args = ["--clean", tmp_path / "clean.npy", "--noisy", tmp_path / "noisy.npy"]

    refused = invoke(tracking_uri, *args)
    assert refused.exit_code == 2
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("Error: Clean and noisy images do not look aligned")
    assert "--no-alignment-check" in line and "Traceback" not in refused.output
    assert runs(tracking_uri) == []

    run, result = trained(tracking_uri, *args, "--no-alignment-check")
    assert "Using data range 1 (floats with maximum 0.9" in result.stdout
    assert run.data.params["data.alignment_check"] == "False"
    assert float(run.data.params["data.range"]) == 1.0


@pytest.mark.slow
def test_separate_validation_and_test_files(tracking_uri, tmp_path):
    clean, noisy = make_pairs(n=24)
    for name, part in (("train", slice(0, 16)), ("val", slice(16, 20)), ("test", slice(20, 24))):
        np.savez(tmp_path / f"{name}.npz", clean=clean[part], noisy=noisy[part])
    run, result = trained(
        tracking_uri,
        *["--data", tmp_path / "train.npz", "--val-data", tmp_path / "val.npz"],
        *["--test-data", tmp_path / "test.npz"],
    )
    assert "Training conv_baseline on 16 images (validation 4, test 4)" in result.stdout
    params = run.data.params
    assert (params["split.train"], params["split.val"], params["split.test"]) == ("16", "4", "4")
    tags = run.data.tags
    digests = {tags[f"data.{role}.sha256"] for role in ("train", "validation", "test")}
    assert len(digests) == 3
    assert set(dataset_inputs(run)) == {"training", "validation", "test"}
    assert dataset_inputs(run)["test"].digest == tags["data.test.sha256"][:32]
    import mlflow

    artifacts = [a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(run.info.run_id)]
    assert "split_indices.json" not in artifacts


@pytest.mark.slow
@pytest.mark.parametrize("noise", tuple(NOISE_SETTINGS))
def test_clean_only_data_trains_with_each_noise_model(tracking_uri, tmp_path, noise):
    clean, _ = make_pairs(n=24)
    np.save(tmp_path / "clean.npy", clean)
    key, value, simulate = NOISE_SETTINGS[noise]
    run, _ = trained(
        tracking_uri,
        *["--clean", tmp_path / "clean.npy", "--noise", noise, "--noise-param", f"{key}={value}"],
    )
    params, metrics = run.data.params, run.data.metrics
    assert params["data.noise"] == noise
    assert float(params[f"noise.{key}"]) == value
    # The evaluation noise has the requested strength: the noisy input's PSNR is what an
    # independent simulation of the model gives on the same test images.
    test_images = clean[split_indices(24, 0.1, 0.1, 0).test] / 255
    expected = expected_noisy_psnr(test_images, simulate, value)
    # 3 images of 16x16 pixels: one draw of salt and pepper noise varies by about 0.5 dB.
    assert metrics["test/noisy_psnr"] == pytest.approx(expected, abs=1.5)
    assert np.isfinite(metrics["test/psnr"])
    if noise == "gaussian":
        assert float(params["data.noise_sigma_c0"]) == pytest.approx(value, rel=0.05)


def test_reads_come_from_the_file_that_was_opened_even_if_it_is_replaced(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 4, 4, 1), np.uint8))
    images = load_array(tmp_path / "a.npy", "clean")
    np.save(tmp_path / "b.npy", np.full((2, 4, 4, 1), 7, np.uint8))
    (tmp_path / "b.npy").replace(tmp_path / "a.npy")
    assert images.read([1]).max() == 0
    assert images.read_crops([0], [1], [1], 2, 2).max() == 0


def test_crops_that_do_not_fit_are_refused_not_read_from_the_next_image(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 4, 4, 1), np.uint8))
    for images in (load_array(tmp_path / "a.npy", "c"), ImageArray(np.zeros((2, 4, 4, 1)), "c")):
        with pytest.raises(IndexError, match="does not fit"):
            images.read_crops([0], [2], [0], 3, 4)
        assert images.read([]).shape == (0, 4, 4, 1)
