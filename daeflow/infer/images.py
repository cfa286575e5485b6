"""Denoise images as users hold them: their own dtype, range and shape, by overlapping tiles.

The one path of `daeflow denoise` and of the logged model's pyfunc (and so of
`mlflow models serve`): check the shape and channels, resolve the data range, refuse
values that do not fit it, denoise by tiles, return the input's dtype and range.
"""

from dataclasses import dataclass

import numpy as np

from daeflow.data.arrays import ImageArray
from daeflow.data.checks import check_values
from daeflow.data.ranges import choose_range
from daeflow.errors import DataError
from daeflow.infer.tiling import canonical, denoise_array
from daeflow.runtime.tiles import TILE

DTYPES = ("uint8", "uint16", "float32", "float64")


@dataclass(frozen=True)
class Denoised:
    """The denoised images and the data range they were scaled by, with how it was chosen."""

    images: np.ndarray
    data_range: float
    note: str
    model_differs: bool = False  # the input does not look like the model's training data


def check_layout(array, name: str = "input") -> None:
    """Refuse what is not a non-empty numeric array of images or volumes: (H, W), (H, W, C),
    (N, H, W, C) or (N, D, H, W, C) (or a .npy header); the model decides how it is read."""
    if array.dtype.kind not in "uif" or array.ndim not in (2, 3, 4, 5) or array.size == 0:
        raise DataError(
            f"{name.capitalize()} must be a non-empty numeric (H, W), (H, W, C), (N, H, W, C) "
            f"or (N, D, H, W, C) array; got shape {array.shape}, dtype {array.dtype}."
        )


LAYOUTS = {
    2: {2: "(H, W)", 3: "(H, W, C)", 4: "(N, H, W, C)", 5: "(N, D, H, W, C)"},
    3: {3: "(D, H, W)", 4: "(D, H, W, C)", 5: "(N, D, H, W, C)"},
}


def check_channels(shape: tuple, channels: int, name: str = "input", spatial_dims: int = 2):
    """Refuse input whose channel count differs from the model's, saying how it was read."""
    got = shape[-1] if len(shape) > spatial_dims else 1
    if got == channels:
        return
    layout = LAYOUTS[spatial_dims][len(shape)]
    if spatial_dims == 3:
        hint = f" Pass (D, H, W, {channels}) or (N, D, H, W, {channels}) volumes."
        if len(shape) == 4 and channels == 1:
            hint = f" For {shape[0]} single-channel volumes, save them as {(*shape, 1)}."
    else:
        hint = f" Pass (H, W, {channels}) or (N, H, W, {channels}) arrays."
        if len(shape) == 3 and channels == 1:
            hint = f" For {shape[0]} single-channel images, save them as {(*shape, 1)}."
    kind = "volumes" if spatial_dims == 3 else "images"
    raise DataError(
        f"The model takes {channels}-channel {kind}, but the {name} of shape {shape} is read "
        f"as {layout} with {got} channel{'s' if got != 1 else ''}.{hint}"
    )


def images_shape(
    shape: tuple, channels: int, name: str = "input", stacks: bool = False, spatial_dims: int = 2
):
    """The (N, H, W, C) shape (a 3D model: (N, D, H, W, C)) that an array of `shape` is
    read as by a model of `channels` channels; the one rule of `denoise`, the pyfunc and
    `evaluate`.

    2D model: (H, W) is one single-channel image, (H, W, C) one image, (N, H, W, C) a batch,
    (N, D, H, W, C) volumes denoised plane by plane (read as (N * D, H, W, C)). With
    `stacks` (evaluate's clean/noisy files, read like training data), a 3-D array whose
    last axis is not a single channel is also taken as (N, H, W) single-channel images.
    3D model (the model's spatial dimensions decide): (D, H, W) one single-channel volume,
    (D, H, W, C) one volume, (N, D, H, W, C) a batch of volumes; 2D images are refused.
    """
    shape = tuple(shape)
    if spatial_dims == 3:
        if len(shape) not in (3, 4, 5):
            raise DataError(
                f"The model is a 3D model and takes volumes (D, H, W), (D, H, W, C) or "
                f"(N, D, H, W, C); the {name} of shape {shape} is a 2D image. Denoise it "
                "with a 2D model, or pass a volume (--axes ZYX for a file of planes)."
            )
        check_channels(shape, channels, name, 3)
        return {3: (1, *shape, 1), 4: (1, *shape), 5: shape}[len(shape)]
    if stacks and len(shape) == 3 and channels == 1 and shape[-1] != 1:
        return (*shape, 1)
    check_channels(shape, channels, name)
    if len(shape) == 5:
        return (shape[0] * shape[1], *shape[2:])
    return {2: (1, *shape, 1), 3: (1, *shape), 4: shape}[len(shape)]


def check_model_axes(model_axes: str, input_axes: str, name: str = "input") -> None:
    """Refuse input whose canonical axes (e.g. "ZYXC", as read with --axes) do not suit the
    model's: a 3D model takes volumes only; a 2D model takes images, and volumes plane by
    plane."""
    model_z, input_z = "Z" in model_axes.upper(), "Z" in input_axes.upper()
    if model_z and not input_z:
        raise DataError(
            f"The model takes volumes (axes {model_axes}), but the {name} has axes "
            f"{input_axes}, 2D images. Pass volumes (e.g. --axes ZYX) or use a 2D model."
        )


def as_dtype(array: np.ndarray, dtype: str | None, model_dtype: str | None) -> np.ndarray:
    """The array in the dtype it is declared to have (JSON gives int64 and float64).

    `dtype` names it; integers of another width (as parsed from JSON) default to the
    integer dtype the model was trained on. Values that do not fit are refused.
    """
    if not dtype:
        if array.dtype.kind not in "iu" or array.dtype in (np.uint8, np.uint16):
            return array
        if model_dtype not in ("uint8", "uint16"):
            raise DataError(
                f"The input holds {array.dtype} integers and the model was not trained on "
                'integer images: pass params {"dtype": "uint8"} or {"dtype": "uint16"}.'
            )
        dtype = model_dtype
    if dtype not in DTYPES:
        raise DataError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}.")
    target = np.dtype(dtype)
    if target.kind == "u" and array.size:
        low, high = np.min(array), np.max(array)
        if low < 0 or high > np.iinfo(target).max or not np.array_equal(array, np.rint(array)):
            raise DataError(
                f"The input does not fit dtype {dtype} (values {low:g} to {high:g}, or not "
                'whole numbers): pass the right params {"dtype": ...}.'
            )
    return array.astype(target, copy=False)


def denoise_images(
    denoiser,
    images: np.ndarray | ImageArray,
    data_range: float | None = None,
    tile: int = TILE,
    margin: int | None = None,
    out: np.ndarray | None = None,
    write=None,
) -> Denoised:
    """Denoise images or volumes (as `images_shape` reads them for the model) on their own
    scale; same shape and dtype.

    The data range is the one given, else the one `ranges.choose_range` picks from the
    model's stored range and dtype and the input's own (a uint8 model on 12-bit input in
    uint16: 4095). The output is clipped to that range and to the dtype's limits. `margin`
    None: the model's own. `out` (e.g. a memory-mapped .npy file) receives the result;
    `write`, if given, is told the data range before the work starts.
    """
    source = images if isinstance(images, ImageArray) else ImageArray(images, "input")
    array = source.array
    check_layout(array)
    dims = denoiser.spatial_dims
    images_shape(array.shape, denoiser.channels, spatial_dims=dims)
    batch = source.with_array(canonical(array, dims))
    chosen = choose_range([batch], data_range, denoiser.data_range, denoiser.data_dtype)
    check_values(batch, chosen.value, slack=1.0)
    if write is not None:
        write(chosen.line)
    result = denoise_array(denoiser, array, chosen.value, tile, margin, out=out)
    return Denoised(result, chosen.value, chosen.line, chosen.model_differs)
