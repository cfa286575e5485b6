"""Synthetic noise: model statistics, fresh training noise, fixed evaluation noise, plugins."""

import numpy as np
import pytest

from daeflow import HyperParam, NoiseModel, hookimpl
from daeflow.data.arrays import ImageArray
from daeflow.data.pairs import PairSource
from daeflow.errors import UsageError
from daeflow.plugin import hyperparams
from daeflow.plugin.manager import get_plugins
from daeflow.plugin.registry import all_noise_models, get_noise_model
from daeflow.plugin.specs import Range

BUILTIN_NOISE = ("gaussian", "poisson", "poisson_gaussian", "salt_pepper", "speckle")
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
    [
        ("gaussian", {}),
        ("poisson", {}),
        ("poisson_gaussian", {}),
        ("salt_pepper", {"amount": 0.2}),
        ("speckle", {}),
    ],
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


# Poisson-Gaussian noise: shot noise plus read noise

PG_RANGE, PG_PEAK, PG_READ, PG_DRAWS = 255.0, 30.0, 5.0, 200_000
PG_LEVELS = (0.0, 0.05, 0.2, 0.5, 1.0)  # fractions of the data range


def poisson_gaussian_moments(level: float):
    """The stated mean and variance of one value, and the standard errors of their estimates
    from PG_DRAWS draws (the variance's from the fourth central moment of the sum)."""
    scale, rate = PG_RANGE / PG_PEAK, PG_PEAK * level
    shot, read = scale**2 * rate, PG_READ**2
    variance = shot + read  # = clean * range / peak + read_sigma^2
    fourth = scale**4 * rate * (1 + 3 * rate) + 6 * shot * read + 3 * read**2
    return (
        level * PG_RANGE,
        variance,
        np.sqrt(variance / PG_DRAWS),
        np.sqrt((fourth - variance**2) / PG_DRAWS),
    )


def poisson_gaussian_samples(in_graph: bool) -> np.ndarray:
    """(levels, draws) noisy values of flat clean rows, at PG_LEVELS."""
    model = get_noise_model("poisson_gaussian").spec
    params = {"peak": PG_PEAK, "read_sigma": PG_READ}
    clean = np.repeat(np.float32(PG_LEVELS)[:, None] * np.float32(PG_RANGE), PG_DRAWS, axis=1)
    if not in_graph:
        return model.apply(clean, np.random.default_rng(5), params, PG_RANGE)
    import tensorflow as tf

    seed = tf.constant([5, 6], tf.int64)
    return np.asarray(model.graph_apply(tf.constant(clean), seed, params, PG_RANGE))


@pytest.mark.parametrize("in_graph", [False, True], ids=["numpy", "graph"])
def test_poisson_gaussian_samples_have_the_stated_mean_and_variance(in_graph):
    samples = poisson_gaussian_samples(in_graph)
    assert samples.dtype == np.float32 and samples.shape == (len(PG_LEVELS), PG_DRAWS)
    for level, row in zip(PG_LEVELS, samples.astype(np.float64), strict=True):
        mean, variance, mean_error, variance_error = poisson_gaussian_moments(level)
        # 5 standard errors: a false alarm in about 1 in 2 million checks.
        assert abs(row.mean() - mean) < 5 * mean_error, (level, row.mean(), mean)
        assert abs(row.var() - variance) < 5 * variance_error, (level, row.var(), variance)
    # The shot noise is there: the brightest level's variance is about 10x the darkest's.
    assert samples[-1].var() / samples[0].var() > 9


def test_poisson_gaussian_variance_is_estimated_from_the_noisy_value():
    import tensorflow as tf

    model = get_noise_model("poisson_gaussian").spec
    values = tf.constant([-3.0, 0.0, 51.0, 255.0])
    variance = model.variance(values, {"peak": 30.0, "read_sigma": 5.0}, 255.0)
    np.testing.assert_allclose(np.asarray(variance), [25.0, 25.0, 51 * 8.5 + 25, 255 * 8.5 + 25])


# Noise parameters given as ranges LO:HI, drawn per image or patch

SIGMA = HyperParam("sigma", "float", 25.0, min=0, max=100)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0:50", Range(0, 50)), (" 5 : 30 ", Range(5, 30)), ("7:7", Range(7, 7)), ("12", 12.0)],
)
def test_a_noise_parameter_takes_a_number_or_a_range(text, expected):
    value = hyperparams.convert(SIGMA, text, "sigma", ranges=True)
    assert value == expected and type(value) is type(expected)
    if isinstance(value, Range):
        assert hyperparams.logged(value) == text.replace(" ", "")
        assert hyperparams.convert(SIGMA, value, "sigma", ranges=True) == value  # read again


@pytest.mark.parametrize(
    ("param", "text", "ranges", "fragment"),
    [
        (SIGMA, "a:b", True, "takes a number or a range LO:HI such as 0:50. Received: 'a:b'"),
        (SIGMA, "1:2:3", True, "takes a number or a range LO:HI"),
        (SIGMA, ":5", True, "takes a number or a range LO:HI"),
        (SIGMA, "30:5", True, "range LO:HI needs LO <= HI. Received: '30:5'"),
        (SIGMA, "-1:5", True, "both ends of the range must be 0 to 100. Received: '-1:5'"),
        (SIGMA, "5:101", True, "both ends of the range must be 0 to 100"),
        (HyperParam("n", "int", 3), "1:4", True, "takes one value, not a range"),
        (HyperParam("on", "bool", True), "0:1", True, "takes one value, not a range"),
        (SIGMA, "0:50", False, "must be a finite number; ranges LO:HI are for --noise-param"),
    ],
    ids=["text", "three", "no low", "low>high", "below min", "above max", "int", "bool", "arch"],
)
def test_bad_ranges_are_refused_in_one_line(param, text, ranges, fragment):
    with pytest.raises(UsageError) as refused:
        hyperparams.convert(param, text, "the parameter", ranges)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


def test_a_range_given_to_the_cli_is_refused_in_one_line_where_it_is_wrong(tracking_uri, tmp_path):
    from conftest import cli, make_pairs, one_error_line

    np.save(tmp_path / "clean.npy", make_pairs(n=8)[0])
    base = ["run", "--clean", tmp_path / "clean.npy", "--epochs", "1"]
    result = cli(*base, "--noise", "gaussian", "--noise-param", "sigma=30:5", code=2)
    one_error_line(result, 2, "Noise 'gaussian' parameter 'sigma' range LO:HI needs LO <= HI")
    result = cli(*base, "--arch-param", "filters=8:16", code=2)
    one_error_line(result, 2, "parameter 'filters' must be a whole number")
    import mlflow

    assert mlflow.search_runs(search_all_experiments=True).empty  # refused before a run


def ranged_source(noise="gaussian", **params):
    flat_images = np.full((12, 16, 16, 1), 120, np.float32)
    return synthetic_source(noise, clean=flat_images, **params)


def piece_sigmas(noisy, clean):
    return (noisy - clean).std(axis=(1, 2, 3)) * 255


def test_training_draws_a_ranged_parameter_per_piece_from_the_seeds():
    source = ranged_source(sigma=Range(5, 30))
    batches = training_batches(source, np.arange(12), 12, epochs=2)  # whole 16x16 images
    sigmas = np.concatenate([piece_sigmas(noisy, clean) for noisy, clean in batches])
    assert len(sigmas) == 24
    # 256 pixels a piece: its std is within about 15 % of its sigma.
    assert sigmas.min() > 5 * 0.8 and sigmas.max() < 30 * 1.2
    # Each piece its own sigma, within each epoch (one sigma for all would spread < 5).
    assert np.ptp(sigmas[:12]) > 10 and np.ptp(sigmas[12:]) > 10
    assert not np.allclose(np.sort(sigmas[:12]), np.sort(sigmas[12:]), rtol=0.05)
    again = training_batches(source, np.arange(12), 12, epochs=2)
    for (noisy_a, _), (noisy_b, _) in zip(batches, again, strict=True):
        np.testing.assert_array_equal(noisy_a, noisy_b)
    # A one-point range draws the noise a single value does: the draws of the range have a
    # stream of their own, and the scalar path is untouched.
    single = training_batches(synthetic_source(sigma=25.0), [1, 4, 6], 3, patch_size=8)
    point = training_batches(synthetic_source(sigma=Range(25, 25)), [1, 4, 6], 3, patch_size=8)
    for (noisy_a, _), (noisy_b, _) in zip(single, point, strict=True):
        np.testing.assert_allclose(noisy_a, noisy_b, rtol=0, atol=1e-6)


def test_training_through_numpy_draws_a_ranged_parameter_per_piece(shift_plugin):
    source = ranged_source("shift", offset=Range(0, 40))
    batches = training_batches(source, np.arange(12), 12, patch_size=8)
    shifts = np.concatenate(
        [((noisy - clean) * 255).mean(axis=(1, 2, 3)) for noisy, clean in batches]
    )
    assert shifts.min() >= 0 and shifts.max() <= 41  # offset plus uniform noise in [0, 1)
    assert np.ptp(shifts) > 10  # each piece its own offset (one offset: spread < 0.3)
    again = training_batches(source, np.arange(12), 12, patch_size=8)
    np.testing.assert_array_equal(batches[0][0], again[0][0])


def test_evaluation_draws_a_ranged_parameter_per_image():
    source = ranged_source(sigma=Range(5, 30))
    noisy, clean = source.batch(np.arange(12))
    sigmas = piece_sigmas(noisy, clean)  # 256 pixels an image
    assert sigmas.min() > 5 * 0.75 and sigmas.max() < 30 * 1.25 and np.ptp(sigmas) > 10
    np.testing.assert_array_equal(source.batch([3])[0][0], noisy[3])  # the image's own
    point = ranged_source(sigma=Range(25, 25))
    np.testing.assert_array_equal(point.batch([3])[0], ranged_source(sigma=25.0).batch([3])[0])


@pytest.mark.parametrize(
    ("noise", "name", "low", "high"),
    [
        ("gaussian", "sigma", 2.0, 40.0),
        ("poisson", "peak", 2.0, 200.0),
        ("poisson_gaussian", "read_sigma", 0.0, 40.0),
        ("salt_pepper", "amount", 0.01, 0.5),
        ("speckle", "sigma", 0.01, 0.5),
    ],
)
def test_every_builtin_graph_function_takes_one_value_per_piece(noise, name, low, high):
    import tensorflow as tf

    model = get_noise_model(noise).spec
    clean = np.full((2, 60, 60, 1), 100, np.float32)
    seed = tf.constant([0, 3], tf.int64)
    per_piece = {**model.defaults, name: tf.constant([low, high], shape=(2, 1, 1, 1))}
    noisy = np.asarray(model.graph_apply(tf.constant(clean), seed, per_piece, 255.0))
    for piece, value in zip(noisy, (low, high), strict=True):
        alone = {**model.defaults, name: value}
        expected = model.apply(clean[0], np.random.default_rng(0), alone, 255.0)
        assert piece.std() == pytest.approx(expected.std(), rel=0.1), value
    if model.variance is not None:
        variance = model.variance(tf.constant(clean), per_piece, 255.0)
        assert variance.shape == clean.shape
        for k, value in enumerate((low, high)):
            alone = model.variance(tf.constant(clean[k]), {**model.defaults, name: value}, 255.0)
            np.testing.assert_allclose(np.asarray(variance[k]), np.asarray(alone), rtol=1e-6)


def trained_run(tmp_path, *args):
    """`daeflow run` on 24 tiny clean images with synthetic noise; the MLflow run it logged."""
    import mlflow
    from conftest import cli, make_pairs

    np.save(tmp_path / "clean.npy", make_pairs(n=24)[0])
    result = cli("run", "--clean", tmp_path / "clean.npy", "--batch-size", "8", *args)
    run_id = result.stdout.split("MLflow run ")[1].split()[0]
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    return run


@pytest.mark.slow
def test_a_model_trained_on_poisson_gaussian_noise_beats_the_noisy_input(tracking_uri, tmp_path):
    run = trained_run(
        tmp_path,
        *["--noise", "poisson_gaussian", "--noise-param", "peak=30", "--arch", "residual"],
        *["--arch-param", "depth=3", "--arch-param", "width=16", "--epochs", "4"],
        *["--patch-size", "8", "--patches-per-image", "4", "--learning-rate", "0.003"],
    )
    params, metrics = run.data.params, run.data.metrics
    assert (params["noise.peak"], params["noise.read_sigma"]) == ("30.0", "5.0")
    # The held-out test images: about 18.4 dB noisy, 22 dB denoised on this machine.
    assert metrics["test/psnr"] > metrics["test/noisy_psnr"] + 1.0


@pytest.mark.slow
def test_a_run_with_a_noise_range_logs_the_range_as_given(tracking_uri, tmp_path):
    run = trained_run(
        tmp_path, "--noise", "gaussian", "--noise-param", "sigma=5:30", "--epochs", "1"
    )
    assert run.data.params["noise.sigma"] == "5:30"
    # The test images' sigma is drawn per image from the range: between 5 and 30.
    assert 5 * 0.9 < float(run.data.params["data.noise_sigma_c0"]) < 30
