"""Training on volumes (N, Z, Y, X, C): windows read from disk, 3D patches and their
symmetries, noise and objectives in 3D, --patch-size ZxYxX, --slices, 3D models."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.config import TrainOptions, parse_patch_size, patch_shape
from daeflow.data.arrays import ImageArray, as_images, load_array
from daeflow.data.pairs import PairSource
from daeflow.data.planes import PlaneView, as_planes
from daeflow.errors import DataError, UsageError

runner = CliRunner()


class Lazy:
    """A lazy array as readers hand them over: shape, dtype, ndim and __getitem__ only."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
        self.reads = []

    def __getitem__(self, key):
        self.reads.append(key)
        return np.array(self.array[key])


def volumes(n=3, depth=8, size=16, channels=2, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 65535, (n, depth, size, size + 4, channels)).astype(np.uint16)


def read_bytes() -> int:
    """Bytes this process has read through read(2)/pread(2) so far (Linux)."""
    text = Path("/proc/self/io").read_text()
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("rchar")))


# -- reading windows --------------------------------------------------------------------


def test_read_crops_of_volumes_on_disk_in_memory_and_lazy_are_the_windows(tmp_path):
    data = volumes()
    np.save(tmp_path / "v.npy", data)
    disk = load_array(tmp_path / "v.npy", "clean")
    starts = np.array([[0, 3, 1], [4, 0, 12], [2, 8, 0]])
    expected = np.stack(
        [
            data[i, z : z + 4, y : y + 8, x : x + 8]
            for i, (z, y, x) in zip([2, 0, 1], starts, strict=True)
        ]
    )
    lazy = Lazy(data)
    for images in (disk, ImageArray(data, "clean"), ImageArray(lazy, "clean")):
        np.testing.assert_array_equal(images.read_crops([2, 0, 1], starts, (4, 8, 8)), expected)
    assert all(isinstance(key[0], int) for key in lazy.reads)  # a window each, not the array
    with pytest.raises(IndexError, match="does not fit"):
        disk.read_crops([0], [[5, 0, 0]], (4, 8, 8))


def test_read_crops_keeps_its_2d_form():
    images = np.random.default_rng(1).integers(0, 255, (4, 12, 14, 1)).astype(np.uint8)
    array = ImageArray(images, "clean")
    np.testing.assert_array_equal(
        array.read_crops([3, 1], [2, 0], [5, 1], 6, 7),
        array.read_crops([3, 1], [[2, 5], [0, 1]], (6, 7)),
    )
    np.testing.assert_array_equal(array.read_crops([3], [2], [5], 6, 7)[0], images[3, 2:8, 5:12])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io")
def test_read_crops_of_a_memory_mapped_volume_reads_only_the_window(tmp_path):
    data = np.zeros((2, 32, 64, 64, 1), np.float32)  # 512 KiB a volume
    data[1, 10:18, 20:36, 30:46] = 7
    np.save(tmp_path / "v.npy", data)
    disk = load_array(tmp_path / "v.npy", "clean")
    before = read_bytes()
    window = disk.read_crops([1], [[10, 20, 30]], (8, 16, 16))
    read = read_bytes() - before
    assert (window == 7).all()
    window_bytes = 8 * 16 * 16 * 4
    assert window_bytes <= read < 2 * window_bytes  # rows of the window, not the volume


def test_blocks_read_a_large_volume_as_bands_of_planes(tmp_path):
    data = volumes(n=2, depth=6)
    np.save(tmp_path / "v.npy", data)
    disk = load_array(tmp_path / "v.npy", "clean")
    plane = data[0, 0].nbytes
    images, rows, parts = zip(*disk.blocks(2 * plane), strict=True)
    assert images == (0, 0, 0, 1, 1, 1) and rows == (0, 2, 4) * 2
    assert all(p.shape == (1, 2, *data.shape[2:]) for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts).reshape(data.shape), data)


def test_volumes_pass_the_layout_checks_and_the_profile(tmp_path):
    data = (volumes(n=4, depth=4, channels=1) // 257).astype(np.uint8)
    np.save(tmp_path / "v.npy", data)
    images = as_images(load_array(tmp_path / "v.npy", "clean"))
    assert images.shape == data.shape and images.spatial_dims == 3
    with pytest.raises(DataError, match="6 dimensions"):
        as_images(ImageArray(data[..., None], "clean"))
    from daeflow.data.profile import noise_profile

    source = PairSource(images, images, 255.0)
    assert noise_profile(source)["noise_sigma_c0"] == 0


# -- training batches -------------------------------------------------------------------


def batches(source, patch_size, augment=False, first_epoch=0, epochs=2, **kwargs):
    from daeflow.train.pipeline import training_dataset

    dataset = training_dataset(
        source, np.arange(len(source)), 4, 0, patch_size, augment, 2, first_epoch, epochs, **kwargs
    )
    return list(dataset.as_numpy_iterator())


def synthetic(data, sigma=0.05):
    from daeflow.plugin.registry import get_noise_model

    return PairSource(
        ImageArray(data, "clean"), None, 1.0, get_noise_model("gaussian").spec, {"sigma": sigma}
    )


def test_3d_patch_batches_are_the_same_when_a_run_is_resumed():
    data = np.random.default_rng(0).random((4, 8, 16, 16, 1), dtype=np.float32)
    source = synthetic(data)
    both = batches(source, "4x8x8", augment=True)
    assert [b[0].shape for b in both] == [(4, 4, 8, 8, 1)] * 4
    resumed = batches(source, "4x8x8", augment=True, first_epoch=1)
    for got, expected in zip(resumed, both[2:], strict=True):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    assert not np.array_equal(both[0][0], both[2][0])  # epochs differ


def test_augmented_3d_patches_flip_each_axis_and_never_mix_z_with_y_or_x():
    z, y, x = np.meshgrid(np.arange(8), np.arange(16), np.arange(16), indexing="ij")
    data = (100 * z + 10 * y + x)[None, ..., None].astype(np.float32)  # Z steps by 100
    images = ImageArray(np.repeat(data, 2, axis=0), "clean")
    source = PairSource(images, images, 1000.0)
    seen = set()
    for _, clean in batches(source, "4x8x8", augment=True, epochs=40):
        for patch in np.rint(clean[..., 0] * 1000).astype(int):
            steps = [np.unique(np.diff(patch, axis=a)) for a in range(3)]
            assert [len(s) for s in steps] == [1, 1, 1]
            assert abs(steps[0][0]) == 100  # Z stays Z
            assert {abs(steps[1][0]), abs(steps[2][0])} == {10, 1}  # Y and X, maybe swapped
            seen.add((steps[0][0] < 0, steps[1][0] < 0, steps[2][0] < 0, abs(steps[1][0]) == 1))
    assert len(seen) == 16  # every flip of Z, Y and X, with and without the transposition
    # A patch whose Y and X differ in size is never transposed.
    for _, clean in batches(source, "4x8x4", augment=True, epochs=10):
        for patch in np.rint(clean[..., 0] * 1000).astype(int):
            assert abs(np.diff(patch, axis=1)[0, 0, 0]) == 10


def test_whole_volumes_train_turned_and_padded():
    data = np.random.default_rng(2).random((3, 6, 10, 10, 1), dtype=np.float32)
    source = PairSource(ImageArray(data, "clean"), ImageArray(data.copy(), "noisy"), 1.0)
    source.pad_multiple = 4
    got = batches(source, None, augment=True, epochs=3)
    assert {b[1].shape[1:] for b in got} == {(8, 12, 12, 1)}
    clean = np.concatenate([b[1] for b in got])
    np.testing.assert_array_equal(clean[:, 6:], clean[:, 3:5][:, ::-1])  # reflected in Z
    inner = clean[:, :6, :10, :10, 0]
    for volume in inner:
        assert any(
            np.allclose(volume, np.flip(v, axes) if not t else np.flip(v, axes).swapaxes(1, 2))
            for v in data[..., 0]
            for axes in [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
            for t in (0, 1)
        )


@pytest.mark.parametrize(
    ("noise", "params"),
    [
        ("gaussian", {"sigma": (0.01, 0.2)}),
        ("poisson", {"peak": (5, 50)}),
        ("poisson_gaussian", {"peak": 30.0, "read_sigma": (0.0, 0.05)}),
        ("salt_pepper", {"amount": (0.0, 0.2)}),
        ("speckle", {"sigma": (0.0, 0.3)}),
    ],
)
def test_every_noise_model_draws_on_3d_patches_with_a_value_per_piece(noise, params):
    from daeflow.plugin.registry import get_noise_model
    from daeflow.plugin.specs import Range

    model = get_noise_model(noise).spec
    given = {k: Range(*v) if isinstance(v, tuple) else v for k, v in params.items()}
    data = np.full((4, 8, 16, 16, 1), 0.5, np.float32)
    source = PairSource(ImageArray(data, "clean"), None, 1.0, model, {**model.defaults, **given})
    # 8 pieces a chunk, 4 planes a patch: a value per piece cannot pass for one per plane.
    noisy, clean = batches(source, "4x8x8", epochs=1)[0]
    assert noisy.shape == clean.shape == (4, 4, 8, 8, 1)
    spreads = np.std(noisy - clean, axis=(1, 2, 3, 4))
    assert len(np.unique(np.round(spreads, 6))) == 4  # each piece its own value


def test_noise2void_hides_a_fraction_of_voxels_and_fills_them_from_3d_neighbours():
    import tensorflow as tf

    from daeflow.objectives.noise2void import blind_spots

    shape = (2, 16, 16, 16, 1)
    noisy = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # every value unique
    radius = 2
    inputs, mask = blind_spots(tf.constant(noisy), tf.constant([3, 4], tf.int64), 1.0, 5, "uniform")
    inputs, mask = inputs.numpy(), mask.numpy()
    assert mask.shape == shape
    masked = np.argwhere(mask[..., 0] > 0)
    assert 0.005 < len(masked) / mask[..., 0].size < 0.02  # about 1 %
    np.testing.assert_array_equal(inputs[mask == 0], noisy[mask == 0])
    through_z = 0
    for piece, *at in masked:
        source = np.argwhere(noisy[piece, ..., 0] == inputs[(piece, *at, 0)])[0]
        offset = source - np.array(at)
        assert np.abs(offset).max() <= radius and np.abs(offset).sum() > 0
        through_z += offset[0] != 0
    assert through_z > len(masked) / 2  # neighbours come from other planes too
    median, _ = blind_spots(tf.constant(noisy), tf.constant([3, 4], tf.int64), 1.0, 3, "median")
    assert median.shape == shape


def test_noise2noise_and_r2r_take_batches_of_volumes():
    import tensorflow as tf

    from daeflow.objectives.noise2noise import batch as noise2noise
    from daeflow.objectives.r2r import batch as r2r

    first = tf.zeros((6, 4, 8, 8, 1))
    second = tf.ones((6, 4, 8, 8, 1))
    inputs, targets = noise2noise((first, second), tf.constant([1, 2], tf.int64), {}, None)
    assert inputs.shape == first.shape
    per_piece = inputs.numpy().reshape(6, -1)
    assert (per_piece.min(1) == per_piece.max(1)).all()  # a whole volume swapped, or not
    np.testing.assert_array_equal(inputs.numpy() + targets.numpy(), np.ones(first.shape))
    variance = lambda x: tf.fill(tf.shape(x), 0.01)  # noqa: E731
    inputs, targets = r2r((second,), tf.constant([1, 2], tf.int64), {"alpha": 0.5}, variance)
    assert inputs.shape == targets.shape == second.shape


# -- --patch-size and --slices --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept", "dims", "shape"),
    [
        ("64", 64, 2, (64, 64)),
        (32, 32, 3, (32, 32, 32)),
        ("16x64x64", "16x64x64", 3, (16, 64, 64)),
        ("16X32x48", "16x32x48", 3, (16, 32, 48)),
        (None, None, 3, None),
        ("none", None, 2, None),
    ],
)
def test_patch_size_takes_one_number_or_one_per_axis(given, kept, dims, shape):
    options = TrainOptions(patch_size=given)
    assert options.patch_size == kept
    assert patch_shape(options.patch_size, dims) == shape


@pytest.mark.parametrize("given", ["0", "16x64", "8x8x8x8", "ax3x3", "-4", "16x0x8"])
def test_patch_size_refuses_what_is_not_a_size(given):
    with pytest.raises(UsageError, match="one positive number .* or ZxYxX"):
        parse_patch_size(given)


def run(tmp_path, tracking_uri, data, *args):
    np.save(tmp_path / "clean.npy", data)
    return runner.invoke(
        app,
        ["run", "--clean", str(tmp_path / "clean.npy"), "--noise", "gaussian"]
        + ["--epochs", "1", "--tracking-uri", tracking_uri, *map(str, args)],
    )


@pytest.mark.parametrize(
    ("shape", "patch", "fragments"),
    [
        ((4, 16, 16, 1), "4x8x8", ("one size per axis of a volume", "2D images")),
        ((4, 8, 16, 16, 1), "16x8x8", ("at most the data's size (8x16x16)", "16x8x8")),
        ((4, 8, 16, 16, 1), "8x6x8", ("multiple of 4", "8x6x8")),
        ((4, 16, 16, 1), "--slices", ("--slices", "2D images", "Drop --slices")),
    ],
    ids=["zyx-for-2d", "larger", "not-a-multiple", "slices-of-2d"],
)
def test_sizes_and_slices_that_do_not_fit_the_data_are_refused_in_one_line(
    tmp_path, tracking_uri, shape, patch, fragments
):
    from conftest import one_error_line

    data = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    args = ["--slices"] if patch == "--slices" else ["--patch-size", patch]
    result = run(tmp_path, tracking_uri, data, "--arch", "conv_baseline", *args)
    one_error_line(result, 2, *fragments)


def test_slices_view_volumes_as_their_planes_without_reading(tmp_path):
    data = volumes(n=3, depth=5)
    np.save(tmp_path / "v.npy", data)
    disk = load_array(tmp_path / "v.npy", "clean")
    planes = as_planes(disk)
    assert planes.shape == (15, *data.shape[2:])
    assert isinstance(planes.array, np.memmap)  # a view of the map: nothing read
    np.testing.assert_array_equal(planes.read([7, 14]), data[[1, 2], [2, 4]])
    np.testing.assert_array_equal(planes.read_crops([6], [[3, 2]], (4, 5))[0], data[1, 1, 3:7, 2:7])
    lazy = Lazy(data)
    view = as_planes(ImageArray(lazy, "clean"))
    assert isinstance(view.array, PlaneView) and view.shape == planes.shape
    np.testing.assert_array_equal(view.read([7, 14]), data[[1, 2], [2, 4]])
    np.testing.assert_array_equal(view.read_crops([6], [[3, 2]], (4, 5))[0], data[1, 1, 3:7, 2:7])
    assert lazy.reads and all(np.ndim(key[0]) == 0 for key in lazy.reads)  # plane by plane


def test_slices_split_by_volume():
    from daeflow.config import DataOptions
    from daeflow.data.prepare import _split

    split = _split(DataOptions(val_fraction=0.2, test_fraction=0.2), 40, 0, depth=4)
    for part in (split.train, split.val, split.test):
        volumes_of = set(np.asarray(part) // 4)
        assert len(part) == 4 * len(volumes_of)  # whole volumes only
    assert not set(split.train // 4) & set(split.test // 4)


# -- 3D models ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_3d_model_fits_3d_batches():
    import keras

    from daeflow.train.pipeline import training_dataset

    data = np.random.default_rng(4).random((4, 8, 16, 16, 1), dtype=np.float32)
    dataset = training_dataset(synthetic(data), np.arange(4), 4, 0, "8x8x8", True, 2, 0, 2)
    inputs = keras.Input((None, None, None, 1))
    hidden = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv3D(1, 3, padding="same")(hidden))
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(dataset, epochs=2, steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    noisy, _ = next(iter(dataset))
    assert model(noisy).shape == (4, 8, 8, 8, 1)


@pytest.mark.slow
def test_slices_train_a_2d_model_on_the_planes_of_volumes(tmp_path, tracking_uri):
    import mlflow

    data = (np.random.default_rng(5).random((4, 6, 16, 16, 1)) * 255).astype(np.uint8)
    result = run(
        tmp_path, tracking_uri, data, "--arch", "conv_baseline", "--slices",
        "--arch-param", "filters=4", "--batch-size", "8", "--no-alignment-check",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("daeflow").experiment_id])
    params = found.data.params
    assert params["data.slices"] == "True" and params["data.spatial_dims"] == "2"
    assert params["data.shape"] == "(24, 16, 16, 1)"
    assert int(params["split.train"]) % 6 == 0  # whole volumes


@pytest.mark.slow
def test_run_trains_a_3d_model_end_to_end_on_volumes(tmp_path, tracking_uri):
    import mlflow

    data = (np.random.default_rng(6).random((4, 8, 16, 16, 1)) * 255).astype(np.uint8)
    result = run(
        tmp_path, tracking_uri, data, "--arch", "conv_baseline", "--patch-size", "8x8x8",
        "--arch-param", "filters=4", "--batch-size", "4", "--augment",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("daeflow").experiment_id])
    assert found.data.params["data.spatial_dims"] == "3"
    assert found.data.params["patch_size"] == "8x8x8"
