"""A folder or glob of PNG/TIFF images as one stack, read one file at a time on demand;
clean and noisy folders matched by file name."""

import glob
from pathlib import Path

import numpy as np

from daeflow.data.axes import agreed_axes
from daeflow.errors import DataError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
PIL_MODES = {"L": np.uint8, "RGB": np.uint8, "RGBA": np.uint8, "I;16": np.uint16, "F": np.float32}


def is_pattern(text: str) -> bool:
    """Whether a path is a glob pattern."""
    return any(c in text for c in "*?[")


def image_files(path: str | Path, what: str) -> list[Path] | None:
    """The images of a folder or glob, sorted by name; None for a path that is neither."""
    text = str(path)
    if is_pattern(text) and not Path(text).exists():
        files = [Path(p) for p in glob.glob(text)]
    elif Path(text).is_dir():
        files = [p for p in Path(text).iterdir()]
    else:
        return None
    files = sorted((p for p in files if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not files:
        raise DataError(
            f"{what} path {text} holds no {', '.join(IMAGE_SUFFIXES)} images. "
            "Check the path, or pass a .npy, .tif or Zarr file."
        )
    return files


def _header(path: Path, what: str):
    """(shape, dtype, axes from metadata or None) of one image, its pixels not decoded."""
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as image:
                mode, (width, height) = image.mode, image.size
            if mode not in PIL_MODES:
                raise ValueError(f"PNG mode {mode} is not grey, RGB(A) or 16-bit")
            channels = {"RGB": 3, "RGBA": 4}.get(mode)
            shape = (height, width) if channels is None else (height, width, channels)
            return shape, np.dtype(PIL_MODES[mode]), "YXC" if channels else "YX"
        import tifffile

        from daeflow.data.tiff_files import metadata_axes

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype), metadata_axes(tif, series)
    except Exception as exc:  # Pillow and tifffile raise many kinds for a bad file
        raise DataError(f"{what} image {path} cannot be read ({exc}). Save it again.") from None


def _read(path: Path, what: str) -> np.ndarray:
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as image:
                return np.asarray(image)
        import tifffile

        return tifffile.imread(path)
    except Exception as exc:
        raise DataError(f"{what} image {path} cannot be read ({exc}). Save it again.") from None


class ImageStack:
    """The images of a folder as one array (S, *image axes), read file by file on demand."""

    def __init__(self, files: list[Path], what: str, axes: str | None):
        self.files, self.what = files, what
        shape, self.dtype, read = _header(files[0], what)
        for path in files[1:]:
            other, dtype, _ = _header(path, what)
            if (other, dtype) != (shape, self.dtype):
                raise DataError(
                    f"{what} image {path} is {other} {dtype}, unlike {files[0].name} "
                    f"({shape} {self.dtype}); every image of a folder must have the same shape "
                    "and dtype."
                )
        where = f"{what} image {files[0]}"
        self.image_axes = agreed_axes(read, axes, shape, where)
        self.shape = (len(files), *shape)
        self.reads = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.files)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, int | np.integer):
            return self._image(int(first))[rest]
        chosen = range(len(self.files))[first] if isinstance(first, slice) else first
        images = [self._image(int(i))[rest] for i in chosen]
        return (
            np.stack(images)
            if images
            else np.empty((0, *self.shape[1:]), self.dtype)[(slice(None), *rest)]
        )

    def _image(self, index: int) -> np.ndarray:
        self.reads += 1
        image = _read(self.files[index], self.what)
        if image.shape != self.shape[1:]:
            raise DataError(
                f"{self.what} image {self.files[index]} changed since it was opened "
                f"(now {image.shape}). Run again."
            )
        return image


def check_same_names(first: tuple | None, second: tuple | None, what: list[str]) -> None:
    """Refuse clean/noisy folders whose file names differ, naming the first unmatched file."""
    if first is None or second is None:
        return
    for names, other, name in ((first, set(second), what[1]), (second, set(first), what[0])):
        unmatched = [n for n in names if n not in other]
        if unmatched:
            mine = what[0] if name == what[1] else what[1]
            raise DataError(
                f"{mine} image {unmatched[0]} has no image of the same name among the {name} "
                "images. Pair the folders file by file (same names)."
            )
