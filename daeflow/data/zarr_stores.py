"""Zarr arrays and OME-Zarr images (the first multiscale's full-resolution level), read
chunk by chunk; and a new store shaped like one, for `denoise` to write into."""

from dataclasses import dataclass, field
from pathlib import Path

from daeflow.data.axes import agreed_axes
from daeflow.errors import DataError

ZARR_FILES = ("zarr.json", ".zarray", ".zgroup", ".zattrs")
OME_NAMES = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}


@dataclass
class ZarrSource:
    """A Zarr array in its own axis order, and what a copy of it needs."""

    array: object  # zarr.Array
    axes: str
    group_attrs: dict | None = None  # an OME-Zarr image's attributes (None: a plain array)
    level: str | None = None  # the path of the array in its OME-Zarr group
    notes: list = field(default_factory=list)


def is_zarr(path: Path) -> bool:
    """Whether `path` is a Zarr store (a folder holding Zarr metadata)."""
    return path.is_dir() and any((path / name).exists() for name in ZARR_FILES)


def _multiscales(attrs: dict):
    return attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")


def _letters(names, where: str) -> str:
    letters = []
    for name in names:
        name = name.get("name") if isinstance(name, dict) else name
        letter = OME_NAMES.get(str(name).lower())
        if letter is None:
            raise DataError(f"{where} has an axis named {name!r}; daeflow knows t, c, z, y and x.")
        letters.append(letter)
    return "".join(letters)


def _dimension_names(array) -> str | None:
    names = getattr(array.metadata, "dimension_names", None)
    if not names:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    if not names or not all(str(n).lower() in OME_NAMES for n in names):
        return None
    return "".join(OME_NAMES[str(n).lower()] for n in names)


def open_zarr(path: Path, what: str, axes: str | None) -> ZarrSource:
    """A Zarr array or an OME-Zarr image's level 0, its axes agreed with --axes; nothing read."""
    import zarr

    where = f"{what} store {path}"
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many kinds for a store it cannot read
        raise DataError(f"{where} is not a readable Zarr store ({exc}). Save it again.") from None
    if isinstance(node, zarr.Array):
        shape = tuple(node.shape)
        return ZarrSource(node, agreed_axes(_dimension_names(node), axes, shape, where))
    attrs = node.attrs.asdict()
    multiscales = _multiscales(attrs)
    if not multiscales:
        arrays = ", ".join(name for name, _ in node.arrays()) or "none"
        raise DataError(
            f"{where} is a Zarr group without OME-Zarr multiscales metadata (arrays: {arrays}). "
            "Pass the path of one array inside it."
        )
    image = multiscales[0]
    level = image["datasets"][0]["path"]
    try:
        array = node[level]
    except KeyError:
        raise DataError(f"{where} names level {level!r}, which it does not hold.") from None
    read = _letters(image.get("axes", []), where) if image.get("axes") else None
    return ZarrSource(array, agreed_axes(read, axes, tuple(array.shape), where), attrs, level)


def create_zarr(path: Path, like: ZarrSource):
    """A new store shaped like `like`: same shape, dtype, chunks, codecs and axes (an OME-Zarr
    image with its full-resolution level only), to be written chunk by chunk."""
    import zarr

    source = like.array
    options = {
        "shape": source.shape,
        "dtype": source.dtype,
        "chunks": source.chunks,
        "compressors": source.compressors,
        "zarr_format": source.metadata.zarr_format,
        "fill_value": source.fill_value,
    }
    if source.metadata.zarr_format == 3:
        options["dimension_names"] = source.metadata.dimension_names
    if like.group_attrs is None:
        array = zarr.create_array(str(path), **options)
        array.attrs.update(source.attrs.asdict())
        return array
    group = zarr.open_group(str(path), mode="w-", zarr_format=source.metadata.zarr_format)
    attrs = _first_level_only(like.group_attrs)
    group.attrs.update(attrs)
    array = group.create_array(
        like.level, **{k: v for k, v in options.items() if k != "zarr_format"}
    )
    array.attrs.update(source.attrs.asdict())
    return array


def _first_level_only(attrs: dict) -> dict:
    """OME-Zarr attributes whose first multiscale lists its full-resolution level only (the
    lower levels are not denoised)."""
    import copy

    attrs = copy.deepcopy(attrs)
    multiscales = _multiscales(attrs)
    multiscales[0]["datasets"] = multiscales[0]["datasets"][:1]
    return attrs
