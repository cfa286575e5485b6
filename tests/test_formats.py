"""TIFF, Zarr and folders of images with --axes: readers, refusals, lazy reads, and
`daeflow denoise` writing the format it was given."""

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image
from typer.testing import CliRunner

from daeflow.cli import app
from daeflow.data.arrays import load_array, read_header
from daeflow.data.axes import LazyArray, canonical_shape, canonical_view, parse_axes
from daeflow.errors import DataError, UsageError

runner = CliRunner()


def volume(shape=(5, 12, 10)):
    return (np.arange(np.prod(shape)) * 37 % 4000).astype(np.uint16).reshape(shape)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_multipage_tiff_with_axes_zyx_is_one_volume(tmp_path, compression):
    data = volume()
    tifffile.imwrite(tmp_path / "v.tif", data, compression=compression)
    images = load_array(tmp_path / "v.tif", "clean", axes="ZYX")
    assert images.shape == (1, 5, 12, 10, 1) and images.axes == "ZYX"
    assert isinstance(images.array, np.memmap if compression is None else LazyArray)
    np.testing.assert_array_equal(images.read([0])[0, ..., 0], data)
    assert read_header(tmp_path / "v.tif", "clean", axes="ZYX").shape == (1, 5, 12, 10, 1)


def test_a_compressed_tiff_reads_only_the_planes_asked_for(tmp_path):
    data = volume((6, 12, 10))
    tifffile.imwrite(tmp_path / "v.tif", data, compression="zlib", metadata={"axes": "TYX"})
    images = load_array(tmp_path / "v.tif", "noisy")  # axes from tifffile's metadata
    assert images.axes == "TYX" and images.shape == (6, 12, 10, 1)
    np.testing.assert_array_equal(images.read([4])[0, ..., 0], data[4])
    assert images.array.reads == 1


def test_ome_tiff_axes_come_from_its_metadata_and_contradictions_are_refused(tmp_path):
    data = np.zeros((2, 3, 8, 9), np.uint16)
    tifffile.imwrite(tmp_path / "o.ome.tif", data, ome=True, metadata={"axes": "TZYX"})
    images = load_array(tmp_path / "o.ome.tif", "clean")
    assert images.axes == "TZYX" and images.shape == (2, 3, 8, 9, 1)
    with pytest.raises(DataError, match="--axes SZYX contradicts .* axes are TZYX"):
        load_array(tmp_path / "o.ome.tif", "clean", axes="SZYX")


def test_an_ambiguous_tiff_asks_for_axes_and_wrong_counts_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "v.tif", volume())
    with pytest.raises(DataError, match=r"no axes in its metadata: pass --axes .*SYX or ZYX"):
        read_header(tmp_path / "v.tif", "clean")
    with pytest.raises(DataError, match="has 3 dimensions .* --axes SZYX names 4"):
        read_header(tmp_path / "v.tif", "clean", axes="SZYX")
    tifffile.imwrite(tmp_path / "i.tif", volume()[0])
    assert load_array(tmp_path / "i.tif", "clean").shape == (1, 12, 10, 1)  # 2-D: YX


@pytest.mark.parametrize(
    ("text", "message"),
    [("ZYXQ", "'Q' is not one of them"), ("ZZYX", "names 'Z' twice"), ("ZY", "'X' is missing")],
)
def test_wrong_axes_letters_are_refused_naming_the_letter(text, message):
    with pytest.raises(UsageError, match=message):
        parse_axes(text)
    assert parse_axes("szyxc") == "SZYXC"


def test_the_lazy_view_matches_numpy_for_every_axis_order():
    rng = np.random.default_rng(0)
    for axes in ("YX", "SYX", "TSYX", "CZYX", "YXTS", "SZYXC"):
        data = rng.integers(0, 99, tuple(rng.integers(2, 5, len(axes))))
        order = sorted(range(len(axes)), key=lambda i: "STZYXC".index(axes[i]))
        expected = data.transpose(order).reshape(canonical_shape(data.shape, axes))
        lazy = LazyArray(data, axes)
        view = canonical_view(data, axes)
        keys = [(0,), (slice(1, 2),), (np.array([0, 0]),), (0, slice(1, 2)), (slice(None), ..., 0)]
        for key in keys:
            np.testing.assert_array_equal(lazy[key], expected[key])
            np.testing.assert_array_equal(view[key], expected[key])
        out = np.zeros_like(data)
        LazyArray(out, axes, writable=True)[...] = expected
        np.testing.assert_array_equal(out, data)


def test_zarr_arrays_and_ome_zarr_images(tmp_path):
    data = volume((3, 16, 12))
    array = zarr.create_array(
        tmp_path / "a.zarr", shape=data.shape, chunks=(1, 8, 8), dtype="uint16"
    )
    array[:] = data
    images = load_array(tmp_path / "a.zarr", "clean", axes="ZYX")
    assert images.shape == (1, 3, 16, 12, 1)
    np.testing.assert_array_equal(images.array[0, 1, 2:5, 3:7, 0], data[1, 2:5, 3:7])
    assert images.array.reads == 1
    group = zarr.open_group(tmp_path / "o.zarr", mode="w")
    group.create_array("0", shape=data.shape, chunks=(1, 8, 8), dtype="uint16")[:] = data
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    group.attrs["multiscales"] = [{"axes": axes, "datasets": [{"path": "0"}]}]
    images = load_array(tmp_path / "o.zarr", "clean")
    assert images.axes == "ZYX" and images.shape == (1, 3, 16, 12, 1)
    with pytest.raises(DataError, match="contradicts"):
        load_array(tmp_path / "o.zarr", "clean", axes="SYX")


def png_folders(tmp_path, n=4, size=32):
    rng = np.random.default_rng(1)
    for role in ("clean", "noisy"):
        (tmp_path / role).mkdir()
    for i in range(n):
        clean = (rng.uniform(60, 200, (size, size))).astype(np.uint8)
        noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(tmp_path / "clean" / f"img{i:02d}.png")
        Image.fromarray(noisy).save(tmp_path / "noisy" / f"img{i:02d}.png")
    return tmp_path / "clean", tmp_path / "noisy"


def test_a_folder_of_pngs_is_a_stack_read_one_file_at_a_time(tmp_path):
    clean, _ = png_folders(tmp_path)
    images = load_array(clean, "clean")
    assert images.shape == (4, 32, 32, 1) and images.axes == "YX"
    first = np.asarray(Image.open(clean / "img02.png"))
    np.testing.assert_array_equal(images.read([2])[0, ..., 0], first)
    assert images.array.source.reads == 1
    assert load_array(str(clean / "img0[01].png"), "clean").shape == (2, 32, 32, 1)
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(clean / "img03.png")
    with pytest.raises(DataError, match=r"image .*img03.png is \(16, 32\) uint8, unlike img00"):
        load_array(clean, "clean")


def test_pairs_of_folders_are_matched_by_name(tmp_path):
    from daeflow.config import DataOptions
    from daeflow.data.prepare import _load_pair

    clean, noisy = png_folders(tmp_path)
    (noisy / "img03.png").rename(noisy / "other.png")
    options = DataOptions(clean=str(clean), noisy=str(noisy))
    with pytest.raises(DataError, match="clean image img03.png has no image of the same name"):
        _load_pair(options, None, "training")


def test_missing_and_corrupt_files_are_one_line_exit_2(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    for path in (tmp_path / "bad.tif", tmp_path / "none.tif"):
        result = runner.invoke(app, ["denoise", str(path), "-o", str(tmp_path / "o.tif"),
                                     "--model", "x"])  # fmt: skip
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def model_file(tmp_path, trained_model):
    trained_model().save(tmp_path / "model.keras")
    return tmp_path / "model.keras"


def denoise(*args):
    result = runner.invoke(app, ["denoise", *map(str, args), "--tile", "16"])
    assert result.exit_code == 0, result.output
    return result


def test_denoise_writes_tiff_as_tiff_and_zarr_as_zarr(tmp_path, model_file):
    image = (np.random.default_rng(2).uniform(0.2, 0.8, (40, 48)) * 65535).astype(np.uint16)
    np.save(tmp_path / "in.npy", image)
    denoise(tmp_path / "in.npy", "-o", tmp_path / "out.npy", "--model", model_file)
    expected = np.load(tmp_path / "out.npy")

    tifffile.imwrite(tmp_path / "in.tif", image, compression="zlib")
    denoise(tmp_path / "in.tif", "-o", tmp_path / "out.tif", "--model", model_file)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.series[0].axes == "YX"
        np.testing.assert_array_equal(tif.asarray(), expected)

    array = zarr.create_array(
        tmp_path / "in.zarr", shape=image.shape, chunks=(16, 16), dtype="uint16"
    )
    array[:] = image
    denoise(tmp_path / "in.zarr", "-o", tmp_path / "out.zarr", "--model", model_file)
    out = zarr.open_array(tmp_path / "out.zarr", mode="r")
    assert out.chunks == (16, 16) and out.dtype == np.uint16
    np.testing.assert_array_equal(out[:], expected)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_denoise_of_an_ome_tiff_keeps_its_axes_and_metadata(tmp_path, model_file):
    data = (np.random.default_rng(3).uniform(0.2, 0.8, (2, 32, 40)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "in.ome.tif", data, ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 0.25})  # fmt: skip
    denoise(tmp_path / "in.ome.tif", "-o", tmp_path / "out.ome.tif", "--model", model_file)
    with tifffile.TiffFile(tmp_path / "out.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "TYX" and tif.series[0].shape == data.shape
        assert 'PhysicalSizeX="0.25"' in tif.ome_metadata
    result = runner.invoke(app, ["denoise", str(tmp_path / "in.ome.tif"), "-o",
                                 str(tmp_path / "o.npy"), "--model", str(model_file)])  # fmt: skip
    assert result.exit_code == 2 and "written as TIFF" in result.stderr


@pytest.mark.slow
def test_run_trains_a_2d_model_from_folders_of_png_pairs(tmp_path, monkeypatch):
    clean, noisy = png_folders(tmp_path, n=8)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "--arch", "conv_baseline", "--clean", str(clean),
                                 "--noisy", str(noisy), "--epochs", "1", "--batch-size", "4",
                                 "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'm.db'}").search_runs(["1"])[0]
    assert run.data.params["data.axes"] == "YX"
    assert run.data.params["data.shape"] == "(8, 32, 32, 1)"
