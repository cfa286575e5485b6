"""Synthetic noise: model statistics, fresh training noise, fixed evaluation noise, plugins."""

import numpy as np
import pytest

from daeflow import HyperParam, NoiseModel, hookimpl
from daeflow.data.arrays import ImageArray
from daeflow.data.pairs import PairSource
from daeflow.plugin.manager import get_plugins
from daeflow.plugin.registry import all_noise_models, get_noise_model

BUILTIN_NOISE = ("gaussian", "poisson", "salt_pepper", "speckle")
SIZE = 400_000


def apply(name, clean, data_range, **params):
    model = get_noise_model(name).spec
    return model.apply(clean, np.random.default_rng(0), {**model.defaults, **params}, data_range)


def flat(value, size=SIZE):
    return np.full(size, value, dtype=np.float32)


def test_builtin_noise_models_are_registered():
    assert tuple(sorted(all_noise_models())) == BUILTIN_NOISE


@pytest.mark.parametrize(("data_range", "sigma"), [(255.0, 25.0), (65535.0, 25.0), (1.0, 0.05)])
def test_gaussian_sigma_is_on_the_datas_own_scale(data_range, sigma):
    clean = flat(0.5 * data_range)
    noisy = apply("gaussian", clean, data_range, sigma=sigma)
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    residual = noisy.astype(np.float64) - clean
    assert residual.std() == pytest.approx(sigma, rel=0.02)
    assert abs(residual.mean()) < 0.01 * sigma


@pytest.mark.parametrize(("data_range", "peak", "level"), [(255.0, 30.0, 0.5), (1.0, 7.0, 0.2)])
def test_poisson_variance_equals_mean_in_counts(data_range, peak, level):
    clean = flat(level * data_range)
    noisy = apply("poisson", clean, data_range, peak=peak)
    counts = noisy.astype(np.float64) / data_range * peak
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-3)  # whole photons
    assert counts.mean() == pytest.approx(level * peak, rel=0.02)
    assert counts.var() == pytest.approx(counts.mean(), rel=0.02)


def test_poisson_noise_grows_with_signal():
    dark, bright = (apply("poisson", flat(v), 255.0) for v in (25.5, 229.5))
    # Variance on the data scale is level * range / peak: 9x the level, 9x the variance.
    assert bright.var() / dark.var() == pytest.approx(9, rel=0.05)


@pytest.mark.parametrize(("data_range", "amount"), [(255.0, 0.05), (4095.0, 0.2)])
def test_salt_pepper_hits_amount_half_zero_half_range(data_range, amount):
    clean = flat(0.4 * data_range)
    noisy = apply("salt_pepper", clean, data_range, amount=amount)
    changed = noisy != clean
    assert changed.mean() == pytest.approx(amount, rel=0.03)
    assert set(np.unique(noisy[changed])) == {0.0, data_range}
    assert (noisy[changed] == data_range).mean() == pytest.approx(0.5, abs=0.01)
    assert clean[0] == np.float32(0.4 * data_range)  # the input is left alone


@pytest.mark.parametrize("sigma", [0.1, 0.3])
def test_speckle_relative_std_is_sigma(sigma):
    clean = np.random.default_rng(1).uniform(10, 250, SIZE).astype(np.float32)
    noisy = apply("speckle", clean, 255.0, sigma=sigma)
    relative = (noisy.astype(np.float64) - clean) / clean
    assert relative.std() == pytest.approx(sigma, rel=0.02)
    assert abs(relative.mean()) < 0.01


def synthetic_source(noise="gaussian", clean=None, data_range=255.0, **params):
    if clean is None:
        clean = np.random.default_rng(2).uniform(20, 230, (8, 16, 16, 1)).astype(np.float32)
    model = get_noise_model(noise).spec
    params = {**model.defaults, **params}
    return PairSource(ImageArray(clean, "clean"), None, data_range, model, params)


def training_batches(source, indices, batch_size, patch_size=None, epochs=2, augment=False):
    from daeflow.train.pipeline import training_dataset

    dataset = training_dataset(
        source, np.asarray(indices), batch_size, 0, patch_size, augment, epochs=epochs
    )
    return list(dataset.as_numpy_iterator())


@pytest.mark.parametrize(
    ("pool_bytes", "batch_size"),
    [(64 << 20, 8), (3000, 8), (3000, 7)],
    ids=["one pool", "pools of 2", "pools of 2, short last batch"],
)
def test_each_epoch_cuts_every_images_patches_once_and_batches_mix_images(
    pool_bytes, batch_size, monkeypatch
):
    import daeflow.train.pipeline as pipeline

    monkeypatch.setattr(pipeline, "POOL_BYTES", pool_bytes)
    values = np.arange(1, 41, dtype=np.uint8) * 6  # image k is flat, of value values[k]
    images = np.broadcast_to(values[:, None, None, None], (40, 24, 24, 1)).copy()
    source = PairSource(ImageArray(images, "clean"), ImageArray(images.copy(), "noisy"), 255.0)

    def batches(first_epoch):
        dataset = pipeline.training_dataset(
            source, np.arange(40), batch_size, 0, 8, True, 3, first_epoch, 2
        )
        return [clean for _, clean in dataset.as_numpy_iterator()]

    both = batches(0)
    full, rest = divmod(40 * 3, batch_size)  # no batch takes patches of two epochs
    sizes = ([batch_size] * full + ([rest] if rest else [])) * 2
    assert [len(b) for b in both] == sizes
    assert len(both) == 2 * pipeline.steps_per_epoch(40, batch_size, 3)
    assert all(b.shape[1:] == (8, 8, 1) for b in both)
    resumed = batches(1)  # a run resumed at epoch 1 gets the batches the whole run got
    for got, expected in zip(resumed, both[len(both) // 2 :], strict=True):
        np.testing.assert_array_equal(got, expected)
    sources = np.rint(np.concatenate(both)[:, 0, 0, 0] * 255 / 6).astype(int) - 1
    for epoch in sources.reshape(2, -1):  # each image gives its 3 patches, every epoch
        np.testing.assert_array_equal(np.bincount(epoch, minlength=40), np.full(40, 3))
    if pool_bytes > 3000:  # the first 16 patches come from all over the pool
        assert len(set(sources[:16])) >= 10


@pytest.mark.parametrize("noise", BUILTIN_NOISE)
def test_training_batches_get_fresh_noise_and_evaluation_batches_do_not(noise):
    source = synthetic_source(noise)
    indices = np.array([1, 4, 6])
    (train_a, clean_a), (train_b, clean_b) = training_batches(source, indices, 3)  # 2 epochs
    assert train_a.dtype == np.float32 and train_a.shape == (3, 16, 16, 1)
    order = [np.argsort([image.sum() for image in clean]) for clean in (clean_a, clean_b)]
    np.testing.assert_array_equal(clean_a[order[0]], clean_b[order[1]])  # the same images
    assert not np.array_equal(train_a[order[0]], train_b[order[1]])  # with other noise
    expected = np.sort([image.sum() for image in source.clean.array[indices] / 255])
    np.testing.assert_allclose(np.sort([image.sum() for image in clean_a]), expected, rtol=1e-5)

    eval_a, _ = source.batch(indices)
    eval_b, _ = source.batch(indices)
    np.testing.assert_array_equal(eval_a, eval_b)
    # Evaluation noise belongs to the image, whatever batch it comes in.
    alone, _ = source.batch([4])
    np.testing.assert_array_equal(alone[0], eval_a[1])
    batched = np.concatenate([noisy for noisy, _ in source.eval_batches(indices, 2)])
    np.testing.assert_array_equal(batched, eval_a)


@pytest.mark.parametrize(
    ("noise", "params"),
    [("gaussian", {}), ("poisson", {}), ("salt_pepper", {"amount": 0.2}), ("speckle", {})],
)
def test_noise_drawn_in_the_graph_has_numpys_statistics(noise, params):
    import tensorflow as tf

    model = get_noise_model(noise).spec
    params = {**model.defaults, **params}
    clean = np.random.default_rng(3).uniform(20, 230, (100, 40, 40, 1)).astype(np.float32)
    drawn = model.apply(clean, np.random.default_rng(0), params, 255.0) - clean
    seed = tf.constant([0, 1], tf.int64)
    in_graph = np.asarray(model.graph_apply(tf.constant(clean), seed, params, 255.0)) - clean
    assert in_graph.dtype == np.float32 and in_graph.shape == clean.shape
    assert in_graph.std() == pytest.approx(drawn.std(), rel=0.03)
    assert in_graph.mean() == pytest.approx(drawn.mean(), abs=0.03 * float(drawn.std()))
    assert (in_graph != 0).mean() == pytest.approx((drawn != 0).mean(), rel=0.03)


def test_training_patches_are_crops_of_the_clean_images_with_fresh_noise():
    source = synthetic_source(sigma=25.0)
    (noisy_a, clean_a), (noisy_b, _) = training_batches(source, [2, 5], 2, patch_size=8)
    assert noisy_a.shape == clean_a.shape == (2, 8, 8, 1) and noisy_a.dtype == np.float32
    images = source.clean.array[[2, 5]] / 255
    for patch in clean_a:
        found = False
        for image in images:
            windows = np.lib.stride_tricks.sliding_window_view(image[..., 0], (8, 8))
            found |= np.isclose(windows, patch[..., 0], atol=1e-6).all(axis=(2, 3)).any()
        assert found
    assert 0.05 < np.std(noisy_a - clean_a) < 0.15  # sigma 25 / 255 = 0.098
    assert not np.array_equal(noisy_a, noisy_b)


def test_augmented_patches_are_flips_and_turns_of_crops():
    source = synthetic_source(sigma=25.0)
    batches = training_batches(source, [2, 5], 2, patch_size=8, epochs=20, augment=True)
    images = source.clean.array[[2, 5], ..., 0] / 255
    windows = [np.lib.stride_tricks.sliding_window_view(x, (8, 8)) for x in images]
    turns = set()
    for _, clean in batches:
        for patch in clean[..., 0]:
            for turn in range(8):
                turned = np.rot90(patch, -(turn % 4))
                turned = turned.T if turn >= 4 else turned
                if any(np.isclose(w, turned, atol=1e-6).all(axis=(2, 3)).any() for w in windows):
                    turns.add(turn)
                    break
            else:
                pytest.fail("a patch is not a flip or turn of a crop")
    assert len(turns) >= 6  # of the 8 symmetries, in 40 patches


def test_patches_cut_by_xla_are_those_cut_without_it(monkeypatch):
    import daeflow.train.pipeline as pipeline

    images = np.random.default_rng(3).integers(0, 65535, (6, 20, 28, 2)).astype(np.uint16)
    source = synthetic_source(clean=images, data_range=65535.0)
    batches = {}
    for compile_from in (0, 10**9):  # every run compiled; none
        monkeypatch.setattr(pipeline, "COMPILE_FROM", compile_from)
        dataset = pipeline.training_dataset(source, np.arange(6), 4, 0, 8, True, 5, 0, 2)
        batches[compile_from] = list(dataset.as_numpy_iterator())
    assert len(batches[0]) == 2 * pipeline.steps_per_epoch(6, 4, 5)
    for compiled, plain in zip(batches[0], batches[10**9], strict=True):
        np.testing.assert_array_equal(compiled[0], plain[0])
        np.testing.assert_array_equal(compiled[1], plain[1])


def test_evaluation_noise_depends_on_the_seed():
    source = synthetic_source()
    other = PairSource(source.clean, None, 255.0, source.noise, source.noise_params, seed=1)
    assert not np.array_equal(source.batch([0])[0], other.batch([0])[0])


def shift(clean, rng, params, data_range):
    """Adds `offset` and a little uniform noise."""
    return (clean + params["offset"] + rng.uniform(0, 1, clean.shape)).astype(np.float32)


class ShiftPlugin:
    """A throw-away plugin providing one noise model."""

    @hookimpl
    def register_noise_models(self):
        return [
            NoiseModel("shift", shift.__doc__, shift, (HyperParam("offset", "float", 10.0, min=0),))
        ]


@pytest.fixture
def shift_plugin():
    plugins = get_plugins()
    plugins.register(ShiftPlugin(), name="test-shift", dist="test-dist", version="1.2")
    yield
    plugins.unregister("test-shift")


def test_a_plugin_adds_a_noise_model(shift_plugin):
    provided = get_noise_model("shift")
    assert provided.spec.apply is shift
    assert provided.spec.defaults == {"offset": 10.0}
    assert (provided.plugin.name, provided.plugin.distribution) == ("test-shift", "test-dist")
    assert set(all_noise_models()) == {*BUILTIN_NOISE, "shift"}

    source = synthetic_source("shift", offset=20.0)
    noisy, clean = source.batch([0, 3])
    residual = (noisy - clean) * 255
    assert residual.min() >= 20 - 1e-3 and residual.max() <= 21 + 1e-3
    np.testing.assert_array_equal(noisy, source.batch([0, 3])[0])


def test_a_noise_model_without_graph_apply_trains_through_numpy(shift_plugin):
    from daeflow.train.pipeline import numpy_noise_note

    source = synthetic_source("shift", offset=20.0)
    assert "drawn in NumPy" in numpy_noise_note(source)
    assert numpy_noise_note(synthetic_source("gaussian")) is None
    (noisy_a, clean_a), (noisy_b, _) = training_batches(source, [0, 3], 2, patch_size=8)
    residual = (noisy_a - clean_a) * 255
    assert residual.min() >= 20 - 1e-3 and residual.max() <= 21 + 1e-3
    assert not np.array_equal(noisy_a - clean_a, noisy_b - clean_a)
