"""Checks on image arrays: shapes, data range, values, sizes; every one in bounded memory."""

import numpy as np

from daeflow.data.arrays import ArrayHeader, ImageArray, as_images, check_image_layout
from daeflow.errors import DataError


def check_same_shape(clean: ImageArray, noisy: ImageArray) -> None:
    """Refuse clean and noisy arrays whose shapes differ."""
    if clean.shape != noisy.shape:
        raise DataError(
            f"Clean and noisy shapes differ: {clean.shape} vs {noisy.shape}. "
            "Pass aligned arrays of the same shape."
        )


def check_pair_headers(clean: ArrayHeader, noisy: ArrayHeader | None, names) -> None:
    """What validated_pair checks of layout and shapes, from the headers: before any data."""
    check_image_layout(clean, names[0])
    if noisy is None:
        return
    check_image_layout(noisy, names[1])
    shapes = [h.shape if h.ndim == 4 else (*h.shape, 1) for h in (clean, noisy)]
    if shapes[0] != shapes[1]:
        raise DataError(
            f"Clean and noisy shapes differ: {shapes[0]} vs {shapes[1]}. "
            "Pass aligned arrays of the same shape."
        )


def observed_maximum(images: ImageArray) -> float:
    """The largest value in the array, read block by block."""
    return max(float(np.max(block)) for _, _, block in images.blocks() if block.size)


def resolve_data_range(
    images: ImageArray,
    given: float | None,
    stored: float | None = None,
    stored_dtype: str | None = None,
) -> tuple[float, str]:
    """The one data range to use, and a sentence saying where it came from.

    In order: --data-range; the range stored with a model, if the model was trained on
    this dtype (or, for models that did not record it, if the data are floats); the
    dtype's full scale for uint8/uint16; 1 for floats within [0, 1]; the observed maximum.
    So a model trained on 12-bit data in uint16 scales uint16 input by 4095, and a model
    trained on uint8 data scales uint16 input by 65535.
    """
    if given is not None:
        return float(given), f"data range {given:g} (from --data-range)"
    same_kind = stored_dtype == str(images.dtype) or (
        stored_dtype is None and images.dtype.kind == "f"
    )
    if stored and same_kind:
        return float(stored), f"data range {stored:g} (stored with the model)"
    if images.dtype == np.uint8:
        return 255.0, "data range 255 (uint8)"
    if images.dtype == np.uint16:
        return 65535.0, "data range 65535 (uint16; pass --data-range for e.g. 12-bit data)"
    observed = observed_maximum(images)
    if images.dtype.kind == "f" and 0 < observed <= 1:
        return (
            1.0,
            f"data range 1 (floats with maximum {observed:.4g}; pass --data-range to change)",
        )
    if observed <= 0:
        raise DataError(
            f"{images.name} array has no positive values, so no data range can be inferred. "
            "Pass --data-range."
        )
    return observed, f"data range {observed:g} (observed maximum; pass --data-range to change)"


def validated_pair(
    clean: ImageArray,
    noisy: ImageArray | None,
    given: float | None,
    stored: float | None = None,
    stored_dtype: str | None = None,
):
    """Clean (and noisy) images checked for shape and values, with their data range and note."""
    clean = as_images(clean)
    noisy = as_images(noisy) if noisy is not None else None
    if noisy is not None:
        check_same_shape(clean, noisy)
    data_range, note = resolve_data_range(clean, given, stored, stored_dtype)
    check_values(clean, data_range)
    if noisy is not None:
        check_values(noisy, data_range, slack=1.0)
    return clean, noisy, data_range, note


def check_values(images: ImageArray, data_range: float, slack: float = 0.0) -> None:
    """Refuse NaN/Inf and values outside [-slack * R, (1 + slack) * R]: how many, and where."""
    low, high = 0.0 - slack * data_range, (1 + slack) * data_range  # not -0.0, which prints "-0"
    tests = {"NaN": np.isnan, "Inf": np.isinf} if images.dtype.kind == "f" else {}
    tests["outside"] = lambda c: (c < low) | (c > high)
    counts = dict.fromkeys(tests, 0)
    first: dict[str, tuple] = {}
    for image, row, chunk in images.blocks():
        for kind, test in tests.items():
            bad = test(chunk)
            count = np.count_nonzero(bad)
            if count and kind not in first:
                where = np.unravel_index(np.argmax(bad), bad.shape)
                first[kind] = (
                    (int(where[0]) + image, int(where[1]) + row, *map(int, where[2:])),
                    chunk[where],
                )
            counts[kind] += count
    for kind in ("NaN", "Inf"):
        if counts.get(kind):
            where, _ = first[kind]
            raise DataError(
                f"{images.name} array has {counts[kind]} {kind} value(s); the first is at index "
                f"{where}. Remove or replace them (e.g. numpy.nan_to_num)."
            )
    if counts["outside"]:
        where, value = first["outside"]
        raise DataError(
            f"{images.name} array has {counts['outside']} value(s) outside [{low:g}, {high:g}] "
            f"(data range {data_range:g}); the first is {value:g} at index {where}. Pass the "
            "right --data-range or rescale the data."
        )


def check_multiple(images: ImageArray, multiple: int, arch: str, pad: bool) -> None:
    """Refuse heights/widths that the architecture cannot take, unless padding is on."""
    height, width = images.shape[1:3]
    if pad or (height % multiple == 0 and width % multiple == 0):
        return
    raise DataError(
        f"Architecture {arch!r} needs height and width that are multiples of {multiple}; "
        f"the images are {height}x{width}. Crop or pad them, or pass --pad."
    )
