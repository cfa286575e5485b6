"""Load a denoiser from MLflow (runs:/, models:/) or a local folder or .keras file, as data only.

MLflow model folders go through the checks of `daeflow.track.flavor`; a `.keras`
file is loaded in Keras's safe mode. Neither ever runs code that comes with the model.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.data.axes import axes_of_dims
from daeflow.errors import ModelLoadError
from daeflow.runtime.backend import load_keras_file
from daeflow.runtime.tiles import MARGIN

PROBE_MULTIPLES = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Denoiser:
    """A Keras model plus what it needs to scale its input: the training data range."""

    model: object
    data_range: float | None
    size_multiple: int = 1
    uri: str = ""
    self_ensemble: bool = False  # model averages over the 8 flips/rotations of its input
    arch: str | None = None
    data_dtype: str | None = None  # of the training data; None for models before it was stored
    channels: int = 0  # what the model takes; 0: read from the model
    pyfunc_scale: str = "unit"  # its pyfunc takes images on their own scale ("own"), or [0, 1]
    trained_with: dict | None = None  # objective, its params, noise model (models since r2r)
    margin: int = MARGIN  # context tiles need: wider than the receptive field (metadata)
    spatial_dims: int = 0  # 2 (images) or 3 (volumes); 0: read from the model
    axes: str = ""  # canonical axes of one input, e.g. "YXC" or "ZYXC"; "": from spatial_dims

    def __post_init__(self):
        if not self.channels:
            self.channels = int(self.model.input_shape[-1])
        if not self.spatial_dims:
            self.spatial_dims = spatial_dims_of(self.model)
        if not self.axes:
            self.axes = axes_of_dims(self.spatial_dims)


def spatial_dims_of(model) -> int:
    """The spatial dimensions a Keras model takes: 2 for (N, H, W, C), 3 for (N, D, H, W, C)."""
    shape = getattr(model, "input_shape", None)
    return len(shape) - 2 if shape is not None and len(shape) >= 4 else 2


def load_denoiser(uri: str) -> Denoiser:
    """The model at `uri` with its data range and size multiple (from its metadata if any)."""
    from daeflow.track import flavor, queries

    path = Path(uri)
    if not path.exists():
        if "://" not in uri and not uri.startswith(("models:/", "runs:/")):
            raise ModelLoadError(
                f"Model not found: {uri}. Pass runs:/<run id>/model, models:/<name>@<alias> "
                "or a local model folder or .keras file."
            )
        path = queries.local_model_path(uri)
    if path.is_dir():
        model, folder = flavor.load_model_folder(path, uri)
        return _denoiser(model, folder.metadata, uri)
    beside = path.parent.parent  # a .keras file inside an MLflow model folder
    metadata = {}
    if path.parent.name == "data" and (beside / "MLmodel").is_file():
        metadata = flavor.read_model_folder(beside, uri).metadata  # checked before loading
    return _denoiser(load_keras_file(path, uri), metadata, uri)


def _denoiser(model, metadata: dict, uri: str) -> Denoiser:
    from daeflow.track.flavor import OWN_SCALE

    multiple = metadata.get("size_multiple")
    margin = metadata.get("tile_margin")
    return Denoiser(
        model,
        metadata.get("data_range"),
        int(multiple) if multiple else size_multiple_of(model),
        uri,
        arch=metadata.get("arch"),
        data_dtype=metadata.get("data_dtype"),
        pyfunc_scale="own" if metadata.get("pyfunc_input") == OWN_SCALE else "unit",
        trained_with=metadata.get("trained_with"),
        margin=MARGIN if margin is None else int(margin),  # older models: the old fixed one
        spatial_dims=int(metadata.get("spatial_dims") or spatial_dims_of(model)),
        axes=str(metadata.get("axes") or ""),
    )


def size_multiple_of(model) -> int:
    """The size multiple a bare Keras model (no metadata) needs, found by trying.

    The model is tried on (3m, 5m) inputs ((3m, 5m, 7m) for a volume model) for growing
    m; the first m whose output keeps the input shape is the multiple (odd factors expose
    every pooling level).
    """
    channels = int(model.input_shape[-1])
    odd = (3, 5, 7)[-spatial_dims_of(model) :]
    for multiple in PROBE_MULTIPLES:
        probe = np.zeros((1, *(f * multiple for f in odd), channels), np.float32)
        try:
            if tuple(np.shape(model(probe, training=False))) == probe.shape:
                return multiple
        except Exception:  # a shape the model cannot take: try the next multiple
            continue
    return PROBE_MULTIPLES[-1]
