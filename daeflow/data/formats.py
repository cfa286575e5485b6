"""Which reader a path needs (TIFF, Zarr, a folder of images), and the input as daeflow
sees it: a canonical `(N, *spatial, C)` array over the file, nothing read yet."""

from dataclasses import dataclass
from pathlib import Path

from daeflow.data.axes import canonical_shape, canonical_view
from daeflow.errors import DataError


@dataclass
class Opened:
    """A file opened by its reader: its array in its own axis order, and how to see it."""

    kind: str  # "tiff", "zarr" or "folder"
    source: object  # TiffSource, ZarrSource or ImageStack
    array: object  # in the file's own axis order
    axes: str  # the file's axes (a folder's: those of each image)
    stack_axes: str  # the axes of `array` (a folder's: a sample axis first)
    names: tuple | None = None  # a folder's file names, to match pairs by

    @property
    def shape(self) -> tuple:
        """The canonical shape."""
        return canonical_shape(tuple(self.array.shape), self.stack_axes)

    @property
    def dtype(self):
        return self.array.dtype

    def canonical(self, writable: bool = False):
        """The array in the canonical layout (a view, or a LazyArray)."""
        return canonical_view(self.array, self.stack_axes, writable)


def open_path(path: Path | str, what: str, axes: str | None, magic: bytes = b"") -> Opened | None:
    """The reader for `path` (None: not one of these formats, e.g. a .npy)."""
    from daeflow.data.image_folders import ImageStack, image_files
    from daeflow.data.tiff_files import is_tiff, open_tiff
    from daeflow.data.zarr_stores import is_zarr, open_zarr

    if Path(path).is_dir() and is_zarr(Path(path)):
        source = open_zarr(Path(path), what, axes)
        return Opened("zarr", source, source.array, source.axes, source.axes)
    files = image_files(path, what)
    if files is not None:
        stack = ImageStack(files, what, axes)
        sample = next((a for a in "ST" if a not in stack.image_axes), None)
        if sample is None:
            raise DataError(
                f"{what} images have axes {stack.image_axes}, with both S and T; a folder "
                "stacks its images along a sample axis. Pass images without S or T."
            )
        return Opened(
            "folder", stack, stack, stack.image_axes, sample + stack.image_axes, stack.names
        )
    if is_tiff(magic):
        source = open_tiff(Path(path), what, axes)
        return Opened("tiff", source, source.array, source.axes, source.axes)
    return None
