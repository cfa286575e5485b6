"""Volumes from file to model and back: a (Z, Y, X) uint16 TIFF stack and the same volume in
a Zarr array, each with --axes ZYX, train a 3D model through `daeflow run` (a real Keras
model, a real MLflow store), the model reloads with its spatial dimensions and axes, and
`daeflow denoise` writes a volume of the same shape and dtype in the format it was given.
A noisy volume alone trains with noise2void."""

import numpy as np
import pytest
import tifffile
import zarr
from typer.testing import CliRunner

from daeflow.cli import app

runner = CliRunner()
SHAPE = (48, 32, 32)  # one stack: cut into 3 slabs of 16 planes to split
TINY = ["--arch", "conv_baseline", "--arch-param", "filters=4", "--patch-size", "16x16x16"]
TINY += ["--batch-size", "2", "--epochs", "1"]


def stack(seed=0) -> np.ndarray:
    """A smooth uint16 volume on a 12-bit scale (structure along Z, Y and X)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(SHAPE), 2.0)
    return np.clip(2000 + 8000 * field, 0, 4095).astype(np.uint16)


def write(folder, volume, kind: str):
    if kind == "tiff":
        path = folder / "stack.tif"
        tifffile.imwrite(path, volume)  # no axes in the file: --axes says them
    else:
        path = folder / "stack.zarr"
        array = zarr.create_array(path, shape=volume.shape, chunks=(16, 16, 16), dtype="uint16")
        array[:] = volume
    return path


def read(path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else zarr.open_array(path)[:]


def only_run(tracking_uri):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("daeflow").experiment_id])
    return found


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tiff", "zarr"])
def test_a_stack_trains_a_3d_model_that_denoises_it_in_its_own_format(tmp_path, tracking_uri, kind):
    from conftest import one_error_line

    from daeflow.infer.loading import load_denoiser

    clean = write(tmp_path, stack(), kind)
    result = runner.invoke(
        app,
        ["run", "--clean", str(clean), "--axes", "ZYX", "--noise", "gaussian"]
        + ["--noise-param", "sigma=200", "--tracking-uri", tracking_uri, *TINY],
    )
    assert result.exit_code == 0, result.output
    assert "cut into 3 slabs of 16 planes" in result.output
    found = only_run(tracking_uri)
    assert found.info.status == "FINISHED"
    params = found.data.params
    assert (params["data.axes"], params["data.spatial_dims"], params["data.slabs"]) == (
        "ZYX",
        "3",
        "3",
    )
    assert params["patch_size"] == "16x16x16"
    from daeflow.workflow.compare import _examples

    examples = _examples(found.info.run_id)  # what `daeflow compare` sets side by side
    assert len(examples["captions"]) == len(examples["noisy"])
    assert "maximum projection along Z" in examples["captions"][1]
    model_uri = f"runs:/{found.info.run_id}/model"
    denoiser = load_denoiser(model_uri)
    assert (denoiser.spatial_dims, denoiser.axes) == (3, "ZYXC")
    assert len(denoiser.model.input_shape) == 5

    output = tmp_path / ("out.tif" if kind == "tiff" else "out.zarr")
    noisy = stack(seed=1)
    (tmp_path / "in").mkdir()
    given = write(tmp_path / "in", noisy, kind)
    result = runner.invoke(
        app,
        ["denoise", str(given), "--axes", "ZYX", "--model", model_uri, "--output", str(output)]
        + ["--tracking-uri", tracking_uri],
    )
    assert result.exit_code == 0, result.output
    assert "megavoxels/s" in result.output
    out = read(output)
    assert out.shape == SHAPE and out.dtype == np.uint16
    assert not np.array_equal(out, noisy)  # the model ran: it is no identity
    if kind == "zarr":
        assert zarr.open_array(output).chunks == (16, 16, 16)
        return
    assert tifffile.TiffFile(output).series[0].shape == SHAPE
    images = tmp_path / "images.tif"  # 2D images: refused by a 3D model, nothing written
    tifffile.imwrite(images, noisy[:5])
    result = runner.invoke(
        app,
        ["denoise", str(images), "--axes", "SYX", "--model", model_uri]
        + ["--output", str(tmp_path / "o.tif"), "--tracking-uri", tracking_uri],
    )
    one_error_line(result, 2, "takes volumes", "--axes ZYX")
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.slow
def test_noise2void_trains_on_a_noisy_volume_alone(tmp_path, tracking_uri):
    rng = np.random.default_rng(2)
    noisy = np.clip(stack() + rng.normal(0, 150, SHAPE), 0, 4095).astype(np.uint16)
    path = write(tmp_path, noisy, "tiff")
    result = runner.invoke(
        app,
        ["run", "--objective", "noise2void", "--noisy", str(path), "--axes", "ZYX"]
        + ["--tracking-uri", tracking_uri, *TINY],
    )
    assert result.exit_code == 0, result.output
    found = only_run(tracking_uri)
    params = found.data.params
    assert params["objective"] == "noise2void" and params["data.clean_use"] == "none"
    assert params["data.spatial_dims"] == "3"
    from daeflow.track.names import epoch_metric

    assert found.info.status == "FINISHED"
    assert np.isfinite(found.data.metrics[epoch_metric("val_loss")])
