"""daeflow denoise / evaluate: tiling without seams, tiled scores, dtype and range round trips.

Plumbing is tested on untrained models (random weights are as good as any for shapes,
scaling and bookkeeping); what needs a model that really denoises uses the one trained
model of the session (`trained_model`, slow tier).
"""

import numpy as np
import pytest
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.data.arrays import ImageArray
from daeflow.data.pairs import PairSource
from daeflow.infer import evaluation
from daeflow.infer.loading import Denoiser, load_denoiser, size_multiple_of
from daeflow.infer.tiling import denoise_array, denoise_image, predict, restore
from daeflow.quality import metrics
from daeflow.workflow.conformance import randomise_weights

runner = CliRunner()


def smooth_pair(height, width, channels=1, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / 50
    clean = np.repeat((0.5 + 0.3 * np.sin(xx + yy))[..., None], channels, axis=-1)
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("arch, multiple", [("conv_baseline", 4), ("residual", 1)])
def test_tiled_and_untiled_agree_within_a_hundredth_of_a_db(trained_model, arch, multiple):
    model = trained_model(arch)
    clean, noisy = smooth_pair(200, 236)
    untiled = np.asarray(model(np.pad(noisy, ((0, 0), (0, -236 % multiple), (0, 0)))[None]))[0]
    untiled = untiled[:200, :236]
    tiled = denoise_image(model, noisy, tile=64, margin=32, multiple=multiple)
    psnr_untiled = metrics.psnr(clean[None], untiled[None], 1.0)[0]
    psnr_tiled = metrics.psnr(clean[None], tiled[None], 1.0)[0]
    assert abs(psnr_tiled - psnr_untiled) < 0.01
    assert np.abs(tiled - untiled).max() < 1e-3


@pytest.mark.parametrize("channels", [1, 3])
def test_tiled_scores_equal_whole_image_scores(fresh_model, monkeypatch, channels):
    """Large images are scored tile by tile; the per-image PSNR/SSIM/MSE must not change."""
    model = fresh_model("conv_baseline", channels)
    clean, noisy = smooth_pair(72, 100, channels)
    source = PairSource(
        ImageArray(np.stack([clean, clean[::-1]]), "clean"),
        ImageArray(np.stack([noisy, noisy[::-1]]), "noisy"),
        1.0,
    )
    whole = evaluation.evaluate(model, source, np.arange(2), 2, 4, with_noisy=True)
    monkeypatch.setattr(evaluation, "LARGE", 100)
    monkeypatch.setattr(evaluation, "TILE", 32)
    tiled = evaluation.evaluate(model, source, np.arange(2), 2, 4, with_noisy=True)
    for a, b in zip(whole, tiled, strict=True):
        np.testing.assert_allclose(a.psnr, b.psnr, atol=1e-3)
        np.testing.assert_allclose(a.ssim, b.ssim, atol=1e-5)
        np.testing.assert_allclose(a.mse, b.mse, rtol=1e-3)
    assert whole[1].psnr[0] == pytest.approx(metrics.psnr(clean[None], noisy[None], 1.0)[0])


@pytest.mark.parametrize(
    "dtype, data_range", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)]
)
@pytest.mark.parametrize("shape", [(40, 48), (40, 48, 1), (2, 40, 48, 1)])
def test_denoise_keeps_shape_dtype_and_scale(fresh_model, dtype, data_range, shape):
    model = fresh_model("conv_baseline", 1)
    denoiser = Denoiser(model, data_range=None, size_multiple=4)
    array = (np.random.default_rng(0).uniform(0, 1, shape) * data_range).astype(dtype)
    out = denoise_array(denoiser, array, data_range, tile=32, margin=16)
    assert out.shape == array.shape and out.dtype == array.dtype
    # The same as the model on the whole image scaled to [0, 1], brought back to the dtype.
    batch = array.reshape(-1, 40, 48, 1).astype(np.float32) / data_range
    expected = restore(predict(model, batch, 4), data_range, dtype).reshape(shape)
    difference = np.abs(out.astype(np.float64) - expected.astype(np.float64))
    assert difference.max() <= (1 if dtype != np.float32 else 1e-5)


def test_denoise_cli_with_a_local_keras_file(fresh_model, tmp_path):
    fresh_model("conv_baseline", 1).save(tmp_path / "model.keras")
    image = (np.random.default_rng(0).uniform(0, 1, (70, 90)) * 65535).astype(np.uint16)
    np.save(tmp_path / "in.npy", image)
    args = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]
    result = runner.invoke(app, [*args, "--model", str(tmp_path / "model.keras"), "--tile", "32"])
    assert result.exit_code == 0, result.output
    assert "megapixels/s" in result.stdout and "data range 65535" in result.stdout
    out = np.load(tmp_path / "out.npy")
    assert out.shape == image.shape and out.dtype == np.uint16


def test_denoise_refuses_a_missing_model(tmp_path):
    np.save(tmp_path / "in.npy", np.zeros((8, 8), np.uint8))
    args = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy")]
    result = runner.invoke(app, [*args, "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("Error: Model not found")


def test_self_ensemble_averages_the_eight_views(fresh_model):
    from daeflow.infer.ensemble import self_ensemble

    model = fresh_model("residual", 1)
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
    # a CNN's kernels are not symmetric, so the ensemble differs from one pass
    assert np.abs(averaged - np.asarray(model(noisy))).max() > 1e-4


def test_denoise_cli_self_ensemble_keeps_shape_and_dtype(fresh_model, tmp_path):
    fresh_model("conv_baseline", 1).save(tmp_path / "model.keras")
    image = (np.random.default_rng(0).uniform(0, 1, (2, 40, 56, 1)) * 255).astype(np.uint8)
    np.save(tmp_path / "in.npy", image)
    args = ["denoise", str(tmp_path / "in.npy"), "--model", str(tmp_path / "model.keras")]
    plain = runner.invoke(app, [*args, "-o", str(tmp_path / "plain.npy")])
    both = runner.invoke(app, [*args, "-o", str(tmp_path / "ens.npy"), "--self-ensemble"])
    assert plain.exit_code == 0 and both.exit_code == 0, both.output
    ens = np.load(tmp_path / "ens.npy")
    assert ens.shape == image.shape and ens.dtype == np.uint8
    assert not np.array_equal(ens, np.load(tmp_path / "plain.npy"))


def model_folder(fresh_model, path, **metadata):
    from daeflow.track.flavor import save_local

    save_local(fresh_model("conv_baseline", 1), path, metadata, "daeflow")
    return path


def twelve_bit_pair(tmp_path):
    clean, noisy = smooth_pair(24, 32)
    for name, images in (("clean", clean), ("noisy", noisy)):
        np.save(tmp_path / f"{name}.npy", (np.clip(images, 0, 1) * 4095)[None].astype(np.uint16))
    return tmp_path / "clean.npy", tmp_path / "noisy.npy"


@pytest.mark.parametrize(
    "stored, expected",
    [
        ({"data_range": 4095.0, "data_dtype": "uint16"}, "data range 4095 (stored with the model)"),
        (
            {"data_range": 255.0, "data_dtype": "uint8"},
            "The model was trained on uint8 data (range 255); this uint16 input's maximum is",
        ),
        ({"data_range": 255.0}, "using the 12-bit range 4095"),  # models before data_dtype
    ],
)
def test_evaluate_and_denoise_use_the_stored_range_for_the_same_dtype(
    fresh_model, tmp_path, stored, expected
):
    folder = model_folder(fresh_model, tmp_path / "model", size_multiple=4, **stored)
    clean, noisy = twelve_bit_pair(tmp_path)
    evaluated = runner.invoke(
        app, ["evaluate", "--model", str(folder), "--clean", str(clean), "--noisy", str(noisy)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    (line,) = [line for line in evaluated.stdout.splitlines() if expected in line]
    assert "range 4095" in line  # what the scores were computed on
    denoised = runner.invoke(
        app, ["denoise", str(noisy), "-o", str(tmp_path / "o.npy"), "--model", str(folder)]
    )
    assert denoised.exit_code == 0, denoised.output
    assert expected in denoised.stdout and "(data range 4095)" in denoised.stdout
    assert np.load(tmp_path / "o.npy").max() <= 4095


def test_evaluate_takes_every_shape_denoise_takes(fresh_model, tmp_path):
    """(H, W), (H, W, C) and (N, H, W, C) as for denoise, and (N, H, W) as training data."""
    folder = model_folder(fresh_model, tmp_path / "model", size_multiple=4)
    clean, noisy = (np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8) for a in smooth_pair(24, 32))
    layouts = {
        "(H, W)": lambda a: a[..., 0],
        "(H, W, C)": lambda a: a,
        "(N, H, W)": lambda a: a[None, ..., 0],
        "(N, H, W, C)": lambda a: a[None],
    }
    scores = {}
    for layout, shaped in layouts.items():
        paths = []
        for name, images in (("clean", clean), ("noisy", noisy)):
            paths.append(tmp_path / f"{name}.npy")
            np.save(paths[-1], shaped(images))
        done = runner.invoke(
            app, ["evaluate", "--model", str(folder), "--clean", str(paths[0]), "--noisy",
                  str(paths[1])],
        )  # fmt: skip
        assert done.exit_code == 0, f"{layout}: {done.output}"
        scores[layout] = done.stdout.splitlines()[-1]
    assert len(set(scores.values())) == 1 and scores["(H, W)"].startswith("1 images: PSNR")
    np.save(tmp_path / "noisy.npy", np.stack([noisy, noisy])[..., 0])  # (2, H, W)
    refused = runner.invoke(
        app, ["evaluate", "--model", str(folder), "--clean", str(tmp_path / "clean.npy"),
              "--noisy", str(tmp_path / "noisy.npy")],
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "Clean and noisy shapes differ: (1, 24, 32, 1) vs (2, 24, 32, 1)" in refused.output


def test_a_keras_file_from_a_model_folder_keeps_its_metadata(fresh_model, tmp_path):
    folder = model_folder(
        fresh_model, tmp_path / "model", data_range=4095.0, data_dtype="uint16", size_multiple=4
    )
    inside = load_denoiser(str(folder / "data" / "model.keras"))
    assert (inside.data_range, inside.data_dtype, inside.size_multiple) == (4095.0, "uint16", 4)


@pytest.mark.parametrize(
    "arch, multiple", [("conv_baseline", 4), ("conv_deep", 8), ("residual", 1)]
)
def test_a_bare_keras_file_has_its_size_multiple_found(fresh_model, arch, multiple):
    assert size_multiple_of(fresh_model(arch, 1)) == multiple


def test_very_thin_large_images_are_scored_whole(fresh_model):
    model = fresh_model("residual", 1)
    clean = np.full((1, 5, 220_000, 1), 0.5, np.float32)
    source = PairSource(ImageArray(clean, "clean"), ImageArray(clean + 0.1, "noisy"), 1.0)
    scores = evaluation.evaluate(model, source, np.arange(1), 1, 1)
    assert np.isfinite(scores.psnr).all() and np.isfinite(scores.ssim).all()


def test_synthetic_noise_windows_cut_the_fixed_noisy_image():
    from daeflow.plugin.registry import get_noise_model

    clean = np.random.default_rng(0).uniform(0, 1, (3, 20, 30, 1)).astype(np.float32)
    source = PairSource(
        ImageArray(clean, "clean"), None, 1.0, get_noise_model("gaussian").spec, {"sigma": 0.1}
    )
    whole_noisy, _ = source.batch([2])
    noisy, window_clean = source.windows(2, 5, 7, 10, 12)
    np.testing.assert_array_equal(noisy[0], whole_noisy[0, 5:15, 7:19])
    np.testing.assert_array_equal(window_clean[0], clean[2, 5:15, 7:19])


def test_unet_tiles_equal_its_untiled_output_with_its_own_margin(fresh_model):
    """unet sees 97 pixels away: tiles with the margin derived from that are seamless;
    with a margin of 8 they are not (so this test can fail)."""
    from daeflow.plugin.registry import get_architecture
    from daeflow.runtime.tiles import margin_for

    spec = get_architecture("unet").spec
    margin = spec.tile_margin(spec.defaults)
    assert margin == margin_for(97) == 97
    model = randomise_weights(fresh_model("unet"))  # its blocks start as the identity
    _, noisy = smooth_pair(200, 236)
    untiled = predict(model, noisy[None], 16)[0]
    tiled = denoise_image(model, noisy, tile=64, margin=margin, multiple=16)
    assert np.abs(tiled - untiled).max() < 1e-4 * max(1.0, np.abs(untiled).max())
    narrow = denoise_image(model, noisy, tile=64, margin=8, multiple=16)
    assert np.abs(narrow - untiled).max() > 1e-3


def test_a_saved_unet_carries_its_tile_margin_and_denoise_uses_it(pair_files, tmp_path):
    """The model a run saves stores the radius and the margin derived from it; the loaded
    Denoiser and `daeflow denoise` without --margin use that margin."""
    from daeflow.config import DataOptions, RunConfig
    from daeflow.track.flavor import save_local
    from daeflow.workflow.run import model_metadata, prepare

    clean_path, noisy_path = pair_files(n=6, size=32)
    config = RunConfig(
        "unet",
        {"width": 4, "blocks": 1, "scales": 3},
        DataOptions(clean=str(clean_path), noisy=str(noisy_path)),
    )
    prepared = prepare(config, write=lambda line: None)
    metadata = model_metadata(prepared)
    radius = prepared.provided.spec.receptive_radius(config.arch_params)
    assert metadata["receptive_radius"] == radius == 57
    randomise_weights(prepared.model)  # its blocks start as the identity
    save_local(prepared.model, tmp_path / "model", metadata, "daeflow")
    denoiser = load_denoiser(str(tmp_path / "model"))
    assert denoiser.margin == 57 and denoiser.size_multiple == 16

    _, noisy = smooth_pair(200, 236)
    np.save(tmp_path / "in.npy", noisy)
    untiled = np.clip(predict(denoiser.model, noisy[None], 16)[0], 0, 1)
    for margin, seamless in ((None, True), (32, False)):
        args = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")]
        args += ["--model", str(tmp_path / "model"), "--tile", "64", "--data-range", "1"]
        result = runner.invoke(app, args + ([] if margin is None else ["--margin", str(margin)]))
        assert result.exit_code == 0, result.output
        gap = np.abs(np.load(tmp_path / "out.npy") - untiled).max()
        assert (gap < 1e-4) == seamless, (margin, gap)
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    served = pyfunc.predict(noisy, params={"tile": 64, "data_range": 1.0})
    assert np.abs(served - untiled).max() < 1e-4  # the pyfunc's default margin: the model's


def test_large_images_are_scored_by_tiles_with_the_models_margin(fresh_model, monkeypatch):
    """unet's scores by tiles equal its whole-image scores with its margin, not with 32."""
    from daeflow.plugin.registry import get_architecture

    spec = get_architecture("unet").spec
    model = randomise_weights(fresh_model("unet"))  # its blocks start as the identity
    clean, noisy = smooth_pair(160, 208)
    source = PairSource(ImageArray(clean[None], "clean"), ImageArray(noisy[None], "noisy"), 1.0)
    whole = evaluation.evaluate(model, source, [0], 1, 16)
    monkeypatch.setattr(evaluation, "LARGE", 100)
    monkeypatch.setattr(evaluation, "TILE", 48)
    tiled = evaluation.evaluate(model, source, [0], 1, 16, margin=spec.tile_margin(spec.defaults))
    narrow = evaluation.evaluate(model, source, [0], 1, 16)  # the old fixed margin, 32
    np.testing.assert_allclose(tiled.mse, whole.mse, rtol=1e-4)
    assert abs(narrow.mse[0] - whole.mse[0]) > 1e-4 * whole.mse[0]  # 2.2e-4 here
