"""daeflow denoise / evaluate: tiling without seams, dtype and range round trips, MLflow URIs."""

import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow import metrics
from daeflow.cli import app
from daeflow.models import Denoiser
from daeflow.tiling import denoise_array, denoise_image


def trained_model(arch="conv_baseline", channels=1, steps=30):
    """A small model trained for a few steps, so tiling is tested on real, non-trivial weights."""
    import keras

    from daeflow.registry import get_architecture

    spec = get_architecture(arch).spec
    model = spec.build((None, None, channels), spec.defaults)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.8, (8, 32, 32, channels)).astype(np.float32)
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    for _ in range(steps):
        model.train_on_batch(noisy, clean)
    return model


@pytest.mark.parametrize("arch, multiple", [("conv_baseline", 4), ("residual", 1)])
def test_tiled_and_untiled_agree_within_a_hundredth_of_a_db(arch, multiple):
    model = trained_model(arch)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:200, 0:236] / 50
    clean = (0.5 + 0.3 * np.sin(xx + yy))[..., None].astype(np.float32)
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    untiled = np.asarray(model(np.pad(noisy, ((0, 0), (0, -236 % multiple), (0, 0)))[None]))[0]
    untiled = untiled[:200, :236]
    tiled = denoise_image(model, noisy, tile=64, margin=32, multiple=multiple)
    psnr_untiled = metrics.psnr(clean[None], untiled[None], 1.0)[0]
    psnr_tiled = metrics.psnr(clean[None], tiled[None], 1.0)[0]
    assert abs(psnr_tiled - psnr_untiled) < 0.01
    assert np.abs(tiled - untiled).max() < 1e-3


@pytest.mark.parametrize(
    "dtype, data_range", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)]
)
@pytest.mark.parametrize("shape", [(40, 48), (40, 48, 1), (2, 40, 48, 1)])
def test_denoise_keeps_shape_dtype_and_range(dtype, data_range, shape):
    denoiser = Denoiser(trained_model(steps=5), data_range=None, size_multiple=4)
    array = (np.random.default_rng(0).uniform(0, 1, shape) * data_range).astype(dtype)
    out = denoise_array(denoiser, array, data_range, tile=32, margin=16)
    assert out.shape == array.shape and out.dtype == array.dtype
    assert out.min() >= 0 and out.max() <= data_range
    if dtype != np.float32:
        assert out.max() > data_range / 10  # scaled back up, not left on [0, 1]


def test_denoise_cli_with_a_local_keras_file(tmp_path):
    model = trained_model(steps=5)
    model.save(tmp_path / "model.keras")
    image = (np.random.default_rng(0).uniform(0, 1, (70, 90)) * 65535).astype(np.uint16)
    np.save(tmp_path / "in.npy", image)
    result = CliRunner().invoke(
        app,
        [
            "denoise",
            str(tmp_path / "in.npy"),
            "-o",
            str(tmp_path / "out.npy"),
            "--model",
            str(tmp_path / "model.keras"),
            "--tile",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "megapixels/s" in result.stdout and "data range 65535" in result.stdout
    out = np.load(tmp_path / "out.npy")
    assert out.shape == image.shape and out.dtype == np.uint16


def test_denoise_refuses_a_missing_model(tmp_path):
    np.save(tmp_path / "in.npy", np.zeros((8, 8), np.uint8))
    result = CliRunner().invoke(
        app,
        [
            "denoise",
            str(tmp_path / "in.npy"),
            "-o",
            str(tmp_path / "o.npy"),
            "--model",
            str(tmp_path / "nope"),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("Error: Model not found")


def test_self_ensemble_averages_the_eight_views_of_a_real_model():
    from daeflow.ensemble import self_ensemble

    model = trained_model("residual", steps=10)
    noisy = np.random.default_rng(2).uniform(0, 1, (1, 24, 32, 1)).astype(np.float32)
    views = []
    for k in range(4):
        for flip in (False, True):
            view = np.rot90(noisy, k, axes=(1, 2))
            view = np.ascontiguousarray(view[:, :, ::-1] if flip else view)
            out = np.asarray(model(view))
            views.append(np.rot90(out[:, :, ::-1] if flip else out, -k, axes=(1, 2)))
    averaged = self_ensemble(model)(noisy)
    assert averaged.shape == noisy.shape
    np.testing.assert_allclose(averaged, np.mean(views, axis=0), atol=1e-6)
    # a trained CNN is not rotation-invariant, so the ensemble differs from one pass
    assert np.abs(averaged - np.asarray(model(noisy))).max() > 1e-4


def test_denoise_cli_self_ensemble_keeps_shape_and_dtype(tmp_path):
    trained_model(steps=5).save(tmp_path / "model.keras")
    image = (np.random.default_rng(0).uniform(0, 1, (2, 40, 56, 1)) * 255).astype(np.uint8)
    np.save(tmp_path / "in.npy", image)
    args = ["denoise", str(tmp_path / "in.npy"), "--model", str(tmp_path / "model.keras")]
    plain = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "plain.npy")])
    both = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "ens.npy"), "--self-ensemble"])
    assert plain.exit_code == 0 and both.exit_code == 0, both.output
    ens = np.load(tmp_path / "ens.npy")
    assert ens.shape == image.shape and ens.dtype == np.uint8
    assert not np.array_equal(ens, np.load(tmp_path / "plain.npy"))
