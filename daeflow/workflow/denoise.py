"""`daeflow denoise`: a model on an array of any size, written next to nothing half-done."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.data.arrays import load_array
from daeflow.data.writers import check_output_format, create_like, remove
from daeflow.errors import UsageError
from daeflow.runtime.signals import sigterm_raises
from daeflow.runtime.tiles import TILE


@dataclass
class DenoiseOutcome:
    """What `daeflow denoise` did."""

    shape: tuple
    dtype: str
    data_range: float
    seconds: float
    output: Path

    points: int = 0  # pixels (voxels) denoised, channels not counted
    unit: str = "pixels"  # or "voxels", for volumes

    @property
    def megapixels_per_second(self) -> float:
        """Millions of pixels (of voxels, for volumes) per second."""
        return self.points / 1e6 / max(self.seconds, 1e-9)


def needs_store(model_uri: str) -> bool:
    """Whether a model URI is fetched through MLflow rather than read from a local path."""
    if Path(model_uri).exists():
        return False
    return model_uri.startswith(("runs:/", "models:/")) or "://" in model_uri


def open_denoiser(
    model_uri: str,
    tracking_uri: str | None,
    ensemble: bool = False,
    precision: str = "float32",
    write=print,
    recorrupted: int = 0,
):
    """Load a model (through the tracking store for runs:/ and models:/ URIs), computing in
    `precision` (auto: the fastest this machine has); averaged over its 8 flips/rotations
    (`ensemble`) and over `recorrupted` re-noised inputs (an r2r model)."""
    import dataclasses

    from daeflow.infer.ensemble import ensembled
    from daeflow.infer.loading import load_denoiser
    from daeflow.runtime import precision as precisions

    chosen = precisions.choose(precision)  # a wrong name is refused before any loading
    if needs_store(model_uri):
        from daeflow.track import store

        store.use_tracking_uri(tracking_uri)
    denoiser = load_denoiser(model_uri)
    if chosen.mixed:
        write(f"Precision: {chosen.policy} ({chosen.reason}).")
        model = precisions.in_policy(denoiser.model, chosen.policy)
        denoiser = dataclasses.replace(denoiser, model=model)
    if recorrupted:
        from daeflow.infer.recorrupted import averaged

        denoiser = averaged(denoiser, recorrupted)
    return ensembled(denoiser) if ensemble else denoiser


def check_output(output: Path) -> None:
    """Refuse, before any work, an output path that cannot be written."""
    output = Path(output)
    folder = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise UsageError(f"--output {output} is a folder; give a file name such as out.npy.")
    if not folder.is_dir():
        raise UsageError(
            f"The folder of --output {output} does not exist. Create it or choose another path."
        )
    if not os.access(folder, os.W_OK):
        raise UsageError(f"Cannot write to the folder of --output {output}: permission denied.")


def denoise_file(
    input_path,
    output,
    model_uri: str,
    data_range: float | None = None,
    tile: int = TILE,
    margin: int | None = None,
    self_ensemble: bool = False,
    tracking_uri: str | None = None,
    write=print,
    precision: str = "float32",
    recorrupted: int = 0,
    axes: str | None = None,
) -> DenoiseOutcome:
    """Denoise a .npy, TIFF or Zarr array by overlapping tiles into `output`, in the same
    format, keeping shape, axes, dtype and range (`margin` None: the model's own; `axes`:
    --axes, the file's axes where its metadata do not say them)."""
    from daeflow.data.axes import canonical_axes
    from daeflow.infer.images import check_layout, check_model_axes, denoise_images, images_shape

    output = Path(output)
    check_output(output)
    loaded, opened = load_array(
        input_path, "input", check=check_layout, axes=axes, with_format=True
    )  # checked from its header
    check_output_format(opened, output)
    array = loaded.array
    denoiser = open_denoiser(model_uri, tracking_uri, self_ensemble, precision, write, recorrupted)
    if loaded.axes:
        check_model_axes(denoiser.axes, canonical_axes(loaded.axes))
    # before a file of the output's size
    images_shape(array.shape, denoiser.channels, spatial_dims=denoiser.spatial_dims)
    start = time.perf_counter()
    temporary = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        with sigterm_raises(f"Stopped by signal SIGTERM; {output} was not written."):
            result = create_like(opened, array.shape, array.dtype, temporary)
            done = denoise_images(denoiser, loaded, data_range, tile, margin, result.view, write)
            result.close()
            del result
            os.replace(temporary, output)
    finally:
        remove(temporary)
    seconds = time.perf_counter() - start
    shape = tuple(opened.array.shape) if opened is not None else array.shape
    read_as = images_shape(array.shape, denoiser.channels, spatial_dims=denoiser.spatial_dims)
    unit = "voxels" if len(read_as) == 5 and denoiser.spatial_dims == 3 else "pixels"
    points = int(np.prod(read_as[:-1]))
    return DenoiseOutcome(shape, str(array.dtype), done.data_range, seconds, output, points, unit)
