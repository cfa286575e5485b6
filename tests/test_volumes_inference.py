"""3D inference: volumes tiled without seams, read window by window, through the pyfunc,
scored per volume, shown by their middle plane and maximum projection, refused in one line
where a model cannot read them. Tiny Conv3D models with random weights."""

import math

import numpy as np
import pytest

from daeflow.data.arrays import ImageArray
from daeflow.data.pairs import PairSource
from daeflow.errors import DataError
from daeflow.infer import evaluation
from daeflow.infer.ensemble import self_ensemble
from daeflow.infer.images import check_model_axes, denoise_images, images_shape
from daeflow.infer.loading import Denoiser
from daeflow.infer.tiling import denoise_array, denoise_image, predict, tiles
from daeflow.quality import metrics
from daeflow.quality.images import volume_grid, volume_views


def conv3d_model(channels=1, pool=False, seed=0):
    """Two 3x3x3 convolutions (radius 2), or with a 2x pooling and upsampling (multiple 2)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, None, channels))
    x = layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    if pool:
        x = layers.AveragePooling3D(2)(x)
        x = layers.UpSampling3D(2)(x)
    outputs = layers.Conv3D(channels, 3, padding="same")(x)
    return keras.Model(inputs, outputs, name="tiny3d")


@pytest.fixture(scope="module")
def model3d():
    return conv3d_model()


@pytest.fixture(scope="module")
def pooled3d():
    return conv3d_model(pool=True)


def volume(shape=(1, 16, 48, 48, 1), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, shape).astype(np.float32)


class CountingArray:
    """A lazy array (NumPy-style indexing only) that records how much each read returns."""

    def __init__(self, array):
        self.array, self.reads = array, []

    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    ndim = property(lambda self: self.array.ndim)

    def __getitem__(self, key):
        out = np.array(self.array[key])
        self.reads.append(out.size)
        return out


def test_tiles_cover_every_axis_once():
    shape = (10, 37, 41)
    seen = np.zeros(shape, int)
    for t in tiles(shape, tile=16, margin=4, multiple=2):
        seen[t.core] += 1
        assert all(s % 2 == 0 for s in t.start)
        assert all(s - lo >= min(4, s) for s, lo in zip(t.start, t.low, strict=True))
    assert (seen == 1).all()


@pytest.mark.parametrize("pool, multiple", [(False, 1), (True, 2)])
def test_tiled_volume_equals_untiled(model3d, pooled3d, pool, multiple):
    model = pooled3d if pool else model3d
    noisy = volume((1, 14, 40, 44, 1))
    untiled = predict(model, noisy, multiple)[0]
    tiled = denoise_image(model, noisy[0], tile=8, margin=4, multiple=multiple)
    assert tiled.shape == noisy[0].shape
    np.testing.assert_allclose(tiled, untiled, atol=1e-5)


def test_volumes_are_read_window_by_window(model3d):
    data = (volume((2, 16, 48, 48, 1)) * 4095).astype(np.uint16)
    source = CountingArray(data)
    denoiser = Denoiser(model3d, 4095.0, margin=4)
    out = denoise_array(denoiser, source, 4095.0, tile=16)
    whole = denoise_array(denoiser, data, 4095.0, tile=64)
    assert out.shape == data.shape and out.dtype == np.uint16
    np.testing.assert_array_equal(out, whole)
    window = (16 + 2 * 4) ** 3
    assert max(source.reads) <= window < data[0].size
    assert len(source.reads) == 2 * 3 * 3  # every window of both volumes, read once


def test_a_volumes_core_is_capped_so_windows_stay_small():
    edges = {t.size[0] for t in tiles((512, 512, 512), tile=1024, margin=32)}
    assert max(edges) == 64
    assert max(t.size[0] for t in tiles((2048, 2048), tile=1024, margin=32)) == 1024
    # A thin stack is not cut along Z; Y and X share the voxels Z leaves.
    thin = list(tiles((32, 512, 512), tile=1024, margin=32))
    assert {t.size[0] for t in thin} == {32} and max(t.size[1] for t in thin) == 192
    assert max(math.prod(t.window_shape) for t in thin) <= 128**3
    assert len(list(tiles((32, 128, 128), tile=1024, margin=97))) == 1  # one whole window


@pytest.mark.parametrize(
    "shape, expected",
    [((16, 48, 48), (1, 16, 48, 48, 1)), ((16, 48, 48, 1), (1, 16, 48, 48, 1))],
)
def test_a_3d_model_reads_volumes(shape, expected):
    assert images_shape(shape, 1, spatial_dims=3) == expected
    assert images_shape((2, *expected[1:]), 1, spatial_dims=3) == (2, *expected[1:])


def test_refusals_are_one_line():
    with pytest.raises(DataError, match="3D model") as image:
        images_shape((48, 48), 1, spatial_dims=3)
    with pytest.raises(DataError, match="single-channel volumes") as stack:
        images_shape((3, 16, 48, 48), 1, spatial_dims=3)
    with pytest.raises(DataError, match="takes volumes") as axes:
        check_model_axes("ZYXC", "YXC")
    check_model_axes("YXC", "ZYXC")  # a 2D model denoises volumes plane by plane
    for refused in (image, stack, axes):
        assert "\n" not in str(refused.value)


def test_a_2d_model_denoises_volumes_plane_by_plane(fresh_model):
    model = fresh_model("conv_baseline")
    data = volume((2, 3, 24, 24, 1))
    denoiser = Denoiser(model, 1.0, size_multiple=4)
    assert denoiser.spatial_dims == 2
    out = denoise_images(denoiser, data, 1.0).images
    assert images_shape(data.shape, 1) == (6, 24, 24, 1)
    planes = denoise_images(denoiser, data.reshape(6, 24, 24, 1), 1.0).images
    np.testing.assert_array_equal(out.reshape(planes.shape), planes)


def test_pyfunc_round_trip_of_a_volume(model3d, tmp_path):
    from daeflow.track import flavor

    folder = tmp_path / "model"
    flavor.save_local(model3d, folder, {"data_range": 255.0, "receptive_radius": 2}, "daeflow")
    pyfunc = flavor.load_pyfunc(str(folder))
    data = (volume((16, 40, 40)) * 255).astype(np.uint8)
    out = pyfunc.predict(data)
    assert out.shape == data.shape and out.dtype == np.uint8
    from daeflow.infer.loading import load_denoiser

    assert flavor.read_model_folder(folder).metadata["spatial_dims"] == 3
    loaded = load_denoiser(str(folder))
    assert (loaded.spatial_dims, loaded.axes) == (3, "ZYXC")
    with pytest.raises(Exception, match="2D image") as refused:
        pyfunc.predict(data[0])
    assert "\n" not in str(refused.value)


def test_volume_scores_psnr_over_voxels_and_ssim_over_planes():
    from skimage.metrics import structural_similarity

    clean = volume((2, 5, 24, 24, 2), seed=1)
    noisy = np.clip(clean + volume((2, 5, 24, 24, 2), seed=2) * 0.2 - 0.1, 0, 1)
    mse = ((clean[1].astype(np.float64) - noisy[1]) ** 2).mean()
    assert metrics.psnr(clean, noisy, 1.0)[1] == pytest.approx(10 * math.log10(1 / mse))
    planes = [
        structural_similarity(c, n, data_range=1.0, channel_axis=-1, win_size=7)
        for c, n in zip(clean[1], noisy[1], strict=True)
    ]
    assert metrics.ssim(clean, noisy, 1.0)[1] == pytest.approx(np.mean(planes))


def test_evaluate_scores_each_volume(model3d, monkeypatch):
    clean = volume((2, 8, 24, 24, 1), seed=3)
    noisy = np.clip(clean + 0.1, 0, 1)
    source = PairSource(ImageArray(clean, "clean"), ImageArray(noisy, "noisy"), 1.0)
    whole, before = evaluation.evaluate(model3d, source, np.arange(2), 2, with_noisy=True)
    assert whole.psnr.shape == (2,)
    np.testing.assert_allclose(before.psnr, metrics.psnr(clean, noisy, 1.0))
    monkeypatch.setattr(evaluation, "LARGE", 100)  # volumes over it go by tiles
    monkeypatch.setattr(evaluation, "TILE", 8)
    tiled = evaluation.evaluate(model3d, source, np.arange(2), 2, margin=4)
    np.testing.assert_allclose(tiled.psnr, whole.psnr, atol=1e-4)


def test_volume_self_ensemble_undoes_its_16_views():
    data = volume((1, 4, 6, 6, 1))
    calls = []

    def identity(batch, training=False):
        calls.append(batch.shape)
        return batch

    np.testing.assert_allclose(self_ensemble(identity)(data), data, atol=1e-6)
    assert len(calls) == 16


def test_probe_views_are_the_middle_plane_and_the_projection():
    clean = volume((2, 5, 20, 24, 1), seed=4)
    views = volume_views(clean)
    assert views.shape == (4, 20, 24, 1)
    np.testing.assert_array_equal(views[0], clean[0, 2])
    np.testing.assert_array_equal(views[1], clean[0].max(axis=0))
    picture = volume_grid(clean, clean, clean, ["a", "b"])
    assert picture.ndim == 3 and picture.shape[-1] == 3
    from daeflow.quality.images import view_captions

    assert view_captions(5, ["a"], 10) == [
        "a; middle Z plane (z = 12)",
        "a; maximum projection along Z (planes 10-14)",
    ]


def source_2d():
    clean = volume((3, 20, 20, 1), seed=6)
    return PairSource(ImageArray(clean, "clean"), ImageArray(clean, "noisy"), 1.0)


def model3d_as_2d():
    return lambda batch: batch


def test_probe_renderer_and_test_report_show_volumes(model3d, tmp_path):
    from daeflow.data.prepare import Subset
    from daeflow.quality.scores import score
    from daeflow.workflow.run_report import EXAMPLES, probe_renderer, write_test_report

    clean = volume((3, 6, 20, 20, 1), seed=5)
    source = PairSource(ImageArray(clean, "clean"), ImageArray(clean[:, ::-1], "noisy"), 1.0)
    subset = Subset(source, np.arange(3))
    picture = probe_renderer(subset)(model3d)
    rows_2d = probe_renderer(Subset(source_2d(), np.arange(3)))(model3d_as_2d())
    assert picture.shape[0] > rows_2d.shape[0]  # two rows per volume
    scores = score(clean, clean[:, ::-1])
    write_test_report(tmp_path, model3d, subset, scores, scores)
    with np.load(tmp_path / EXAMPLES) as examples:
        assert examples["clean"].shape == (6, 20, 20, 1)  # 3 volumes, 2 views each
        np.testing.assert_array_equal(examples["indices"], [0, 0, 1, 1, 2, 2])
