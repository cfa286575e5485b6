"""Checks on image arrays: shapes, data range, values, sizes; every one in bounded memory."""

import numpy as np

from daeflow.data.arrays import ArrayHeader, ImageArray, as_images, check_image_layout
from daeflow.data.ranges import choose_range
from daeflow.errors import DataError


def check_same_shape(clean: ImageArray, noisy: ImageArray, what="Clean and noisy") -> None:
    """Refuse clean and noisy arrays (or two noisy shots) whose shapes differ."""
    if clean.shape != noisy.shape:
        raise DataError(
            f"{what} shapes differ: {clean.shape} vs {noisy.shape}. "
            "Pass aligned arrays of the same shape."
        )


def check_pair_headers(
    clean: ArrayHeader, noisy: ArrayHeader | None, names, what="Clean and noisy"
) -> None:
    """What validated_pair checks of layout and shapes, from the headers: before any data."""
    check_image_layout(clean, names[0])
    if noisy is None:
        return
    check_image_layout(noisy, names[1])
    shapes = [(*h.shape, 1) if h.ndim == 3 else h.shape for h in (clean, noisy)]
    if shapes[0] != shapes[1]:
        raise DataError(
            f"{what} shapes differ: {shapes[0]} vs {shapes[1]}. "
            "Pass aligned arrays of the same shape."
        )


def validated_pair(
    clean: ImageArray,
    noisy: ImageArray | None,
    given: float | None,
    stored: float | None = None,
    stored_dtype: str | None = None,
):
    """Clean (and noisy) images checked for shape and values, with their DataRange.

    The range is chosen by `ranges.choose_range` over both arrays.
    """
    clean = as_images(clean)
    noisy = as_images(noisy) if noisy is not None else None
    if noisy is not None:
        check_same_shape(clean, noisy)
    arrays = [clean] if noisy is None else [clean, noisy]
    chosen = choose_range(arrays, given, stored, stored_dtype)
    check_values(clean, chosen.value)
    if noisy is not None:
        check_values(noisy, chosen.value, slack=1.0)
    return clean, noisy, chosen


def validated_noisy(noisy: ImageArray, noisy2: ImageArray | None, given: float | None):
    """Noisy images alone (and their second shots) checked for shape and values, with the
    DataRange chosen over them; values may lie out of range by as much as noise allows."""
    noisy = as_images(noisy)
    noisy2 = as_images(noisy2) if noisy2 is not None else None
    arrays = [noisy] if noisy2 is None else [noisy, noisy2]
    if noisy2 is not None:
        check_same_shape(noisy, noisy2, "The two noisy arrays'")
    chosen = choose_range(arrays, given)
    for images in arrays:
        check_values(images, chosen.value, slack=1.0)
    return noisy, noisy2, chosen


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
    """Refuse sizes (height and width, and depth of volumes) that the architecture cannot
    take, unless padding is on."""
    spatial = images.shape[1:-1]
    if pad or all(s % multiple == 0 for s in spatial):
        return
    sides = "depth, height and width" if len(spatial) == 3 else "height and width"
    raise DataError(
        f"Architecture {arch!r} needs {sides} that are multiples of {multiple}; "
        f"the images are {'x'.join(map(str, spatial))}. Crop or pad them, or pass --pad."
    )
