"""daeflow's MLflow model flavour: MLflow's Keras flavour, read back as data only.

A model is data; daeflow never runs code that comes with it. Before anything is
imported or loaded, the model folder must pass the rules of `daeflow.track.model_check`
(read as data: the MLmodel file with a safe YAML loader, the file list, the `.keras`
archive's members); only then are the layer modules it names imported (each of an
installed daeflow plugin) and the `.keras` file loaded in Keras's safe mode.

The same checks serve `daeflow denoise`/`evaluate` and `mlflow.pyfunc.load_model`,
whose loader module is `daeflow.mlflow_flavor` (a stable name written into every
logged MLmodel, which loads through this module). One limit: MLflow's own loaders act on
the MLmodel before daeflow's loader runs (a `code` entry goes on Python's path, a
foreign loader module is imported), so for a folder someone may have tampered with only
daeflow's commands (`check-model`, `serve`, `denoise`, ...) can refuse it first.
"""

import functools
import importlib
import os

import numpy as np

from daeflow.data.axes import axes_of_dims
from daeflow.errors import ModelLoadError
from daeflow.runtime.backend import load_keras_file, walk_layers
from daeflow.runtime.tiles import TILE, margin_for
from daeflow.track.model_check import (  # noqa: F401  (not_plugin_modules: for run.py)
    FLAVOR_MODULE,
    ModelFolder,
    check_model_folder,
    not_plugin_modules,
    plugin_hint,
)

# What the pyfunc of models logged since daeflow 0.2 takes (metadata "pyfunc_input");
# older models take float32 (N, H, W, C) images on [0, 1].
OWN_SCALE = "images in their own dtype and range"
# The most a served request may decode to, in bytes (params "max_bytes" sets it per request).
MAX_REQUEST_BYTES = 2**30
PYFUNC_PARAMS = (  # name, MLflow type, default
    ("dtype", "string", ""),  # uint8, uint16, float32 or float64: the input's dtype (for JSON)
    ("data_range", "double", None),  # full scale (default: the model's, else the dtype's)
    ("tile", "long", TILE),  # tile core size in pixels
    ("margin", "long", None),  # context around each tile (default: the model's tile_margin)
    ("encoding", "string", ""),  # npy_base64: input and output as base64 .npy, not lists
    ("max_bytes", "long", MAX_REQUEST_BYTES),  # the most the input may decode to
)


def custom_object_modules(model) -> list[str]:
    """Modules that define the model's non-Keras layers (to import before loading)."""
    modules = {type(layer).__module__ for layer in walk_layers(model)}
    return sorted(m for m in modules if m.split(".")[0] not in ("keras", "tensorflow"))


def read_model_folder(path, where: str | None = None) -> ModelFolder:
    """Check an MLflow model folder (see model_check), then import the plugin layer modules
    it names; refuse it in one line if it fails."""
    where = where or str(path)
    folder = check_model_folder(path, where)
    for module in folder.metadata.get("custom_object_modules") or []:  # names checked
        try:
            importlib.import_module(module)
        except ImportError:
            raise ModelLoadError(
                f"This model uses layers from {module!r}, which is not installed. "
                f"{plugin_hint(folder.metadata)}"
            ) from None
    return folder


def load_model_folder(path, where: str | None = None):
    """The Keras model of a checked model folder, and the folder's description."""
    folder = read_model_folder(path, where)
    return load_keras_file(folder.keras_file, where or str(path)), folder


def save_model(model, path, mlflow_model=None, **kwargs):
    """Save with MLflow's Keras flavor, then point the pyfunc loader at daeflow's.

    MLflow's Keras flavour insists on a tensor input schema; daeflow's signature has none
    (see model_signature), so it is set after MLflow has saved the folder.
    """
    import mlflow.keras
    from mlflow.models import Model, ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    signature = kwargs.pop("signature", None)
    mlflow_model = mlflow_model or Model()
    placeholder = ModelSignature(Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, -1))]))
    mlflow.keras.save_model(model, path, mlflow_model=mlflow_model, signature=placeholder, **kwargs)
    mlflow_model.signature = signature
    mlflow_model.flavors["python_function"]["loader_module"] = FLAVOR_MODULE
    mlflow_model.save(os.path.join(path, "MLmodel"))


def load_pyfunc(path: str):
    """The model folder through `mlflow.pyfunc.load_model`, as MLflow users load it."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(path)


def invalid_input(message: str) -> Exception:
    """The error MLflow's scoring server answers with HTTP 400 and the message alone."""
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return _refusal_class()(message, error_code=INVALID_PARAMETER_VALUE)


def server_error(message: str) -> Exception:
    """The error MLflow's scoring server answers with HTTP 500 and the message alone."""
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

    return _refusal_class()(message, error_code=INTERNAL_ERROR)


@functools.cache
def _refusal_class():
    from mlflow.exceptions import MlflowException

    class Refusal(MlflowException):
        """An MlflowException whose message stays the sentence it was made with.

        MLflow's scoring server rewrites the message of an MlflowException raised by
        `predict` to "Failed to predict data '<the whole input>'. Error: ..." (in
        mlflow.pyfunc.scoring_server.invocations): every 400 would echo the request back,
        a 50 MB body in a 50 MB reply. Later assignments to `message` are ignored.
        """

        @property
        def message(self) -> str:
            return self._sentence

        @message.setter
        def message(self, value: str) -> None:
            if not hasattr(self, "_sentence"):
                self._sentence = value

    return Refusal


def model_signature():
    """Images in, images out, of any dtype, rank and size: no tensor schema (MLflow's would
    fix one dtype and rank), and the parameters a request may set."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    params = [ParamSpec(name, kind, default) for name, kind, default in PYFUNC_PARAMS]
    return ModelSignature(inputs=None, outputs=None, params=ParamSchema(params))


def pip_requirements(plugin_distribution: str) -> list[str]:
    """The packages needed to load the model: daeflow, TensorFlow, Keras and the plugin's
    distribution when it is installed (a plugin registered by hand has none)."""
    import importlib.metadata as md

    reqs = [f"{name}=={md.version(name)}" for name in ("daeflow", "tensorflow", "keras")]
    if plugin_distribution != "daeflow":
        try:
            reqs.append(f"{plugin_distribution}=={md.version(plugin_distribution)}")
        except md.PackageNotFoundError:
            pass
    return reqs


def _model_kwargs(
    model, metadata: dict, plugin_distribution: str, spatial_dims=None, axes=None
) -> dict:
    """What every saved model carries: metadata naming its layer modules, signature, pins,
    and what one input is (spatial dimensions, canonical axes)."""
    dims = int(spatial_dims or metadata.get("spatial_dims") or len(model.input_shape) - 2)
    axes = axes or metadata.get("axes")
    return {
        "signature": model_signature(),
        "pip_requirements": pip_requirements(plugin_distribution),
        "metadata": {
            **metadata,
            "custom_object_modules": custom_object_modules(model),
            "plugin_distribution": plugin_distribution,
            "pyfunc_input": OWN_SCALE,
            "channels": int(model.input_shape[-1]),
            "tile_margin": margin_for(metadata.get("receptive_radius")),
            "spatial_dims": dims,
            "axes": axes or axes_of_dims(dims),
        },
    }


def _in_float32(model, metadata: dict):
    """The model computing in float32, whatever it was trained in (noted in the metadata)."""
    from daeflow.runtime import precision

    trained_in = precision.training_policy(model)
    return precision.in_policy(model, "float32"), {**metadata, "trained_precision": trained_in}


def save_local(
    model,
    path,
    metadata: dict,
    plugin_distribution: str,
    spatial_dims: int | None = None,
    axes: str | None = None,
):
    """Save a model folder as a run would log it, without a run (conformance kit)."""
    model, metadata = _in_float32(model, metadata)
    kwargs = _model_kwargs(model, metadata, plugin_distribution, spatial_dims, axes)
    save_model(model, str(path), **kwargs)


def log_model(
    model,
    metadata: dict,
    plugin_distribution: str,
    spatial_dims: int | None = None,
    axes: str | None = None,
):
    """Log the Keras model with a signature, pinned requirements and daeflow's loader.

    `spatial_dims` (2 or 3; None: the model's input rank) and `axes` (the canonical axes
    of one input, e.g. "ZYXC"; None: "YXC" or "ZYXC") are stored in its metadata and
    checked against the input at `denoise` time and by its pyfunc."""
    import sys

    from mlflow.models import Model

    model, metadata = _in_float32(model, metadata)
    return Model.log(
        artifact_path=None,
        name="model",
        flavor=sys.modules[__name__],
        model=model,
        **_model_kwargs(model, metadata, plugin_distribution, spatial_dims, axes),
    )
