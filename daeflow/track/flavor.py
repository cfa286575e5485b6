"""daeflow's MLflow model flavour: MLflow's Keras flavour, read back as data only.

A model is data; daeflow never runs code that comes with it. Before anything is
imported or loaded, the MLmodel file (YAML, read with a safe loader) must describe
a Keras model saved as a `.keras` file inside the model folder. Refused, with the
reason: an exported TensorFlow SavedModel (`save_exported_model: true`, whose graph
runs when loaded), a pickled Python model, a foreign pyfunc loader, and
`custom_object_modules` that belong neither to daeflow nor to an installed daeflow
plugin. The `.keras` file is then loaded in Keras's safe mode.

The same checks serve `daeflow denoise`/`evaluate` and `mlflow.pyfunc.load_model`,
whose loader module is `daeflow.mlflow_flavor` (a stable name written into every
logged MLmodel, which loads through this module). One limit: for a pyfunc flavour with a
`code` entry, MLflow's own loader adds that folder to Python's path before daeflow's
loader runs; daeflow's commands refuse such models before MLflow sees them.
"""

import functools
import importlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daeflow.backend import load_keras_file, walk_layers
from daeflow.errors import ModelLoadError
from daeflow.tiles import MARGIN, TILE

FLAVOR_MODULE = "daeflow.mlflow_flavor"
LOADERS = (FLAVOR_MODULE, "mlflow.keras")
# What the pyfunc of models logged since daeflow 0.2 takes (metadata "pyfunc_input");
# older models take float32 (N, H, W, C) images on [0, 1].
OWN_SCALE = "images in their own dtype and range"
# The most a served request may decode to, in bytes (params "max_bytes" sets it per request).
MAX_REQUEST_BYTES = 2**30
PYFUNC_PARAMS = (  # name, MLflow type, default
    ("dtype", "string", ""),  # uint8, uint16, float32 or float64: the input's dtype (for JSON)
    ("data_range", "double", None),  # full scale (default: the model's, else the dtype's)
    ("tile", "long", TILE),  # tile core size in pixels
    ("margin", "long", MARGIN),  # context around each tile, wider than the receptive field
    ("encoding", "string", ""),  # npy_base64: input and output as base64 .npy, not lists
    ("max_bytes", "long", MAX_REQUEST_BYTES),  # the most the input may decode to
)


@dataclass(frozen=True)
class ModelFolder:
    """A checked MLflow model folder: where its .keras file is and what its metadata says."""

    path: Path
    keras_file: Path
    metadata: dict


def custom_object_modules(model) -> list[str]:
    """Modules that define the model's non-Keras layers (to import before loading)."""
    modules = {type(layer).__module__ for layer in walk_layers(model)}
    return sorted(m for m in modules if m.split(".")[0] not in ("keras", "tensorflow"))


def read_model_folder(path, where: str | None = None) -> ModelFolder:
    """Check an MLflow model folder as described above; refuse it in one line if it fails."""
    from mlflow.models import Model

    path, where = Path(path), where or str(path)
    refuse = f"daeflow refuses the model {where}:"
    mlmodel = path / "MLmodel"
    if not mlmodel.is_file():
        raise ModelLoadError(
            f"{where} holds no MLmodel file. Pass an MLflow model (runs:/<run id>/model, "
            "models:/<name>/<version>, a model folder) or a .keras file."
        )
    _inside(mlmodel, path, refuse, "its MLmodel file")
    try:
        conf = Model.load(str(mlmodel))
    except Exception as exc:
        raise ModelLoadError(f"The MLmodel file of {where} cannot be read: {exc}.") from None
    flavors = conf.flavors if isinstance(conf.flavors, dict) else {}
    pyfunc = flavors.get("python_function") or {}
    if not isinstance(pyfunc, dict):
        raise ModelLoadError(f"{refuse} its python_function flavour is not a mapping.")
    if "keras" not in flavors:
        if "python_model" in pyfunc or "cloudpickle_version" in pyfunc:
            raise ModelLoadError(
                f"{refuse} it is a pickled Python model, and daeflow never runs code that "
                "comes with a model. Log the Keras model with daeflow."
            )
        raise ModelLoadError(
            f"{refuse} it has no Keras flavour (flavours: {', '.join(flavors) or 'none'})."
        )
    keras_conf = flavors["keras"]
    if not isinstance(keras_conf, dict):
        raise ModelLoadError(f"{refuse} its keras flavour is not a mapping.")
    if keras_conf.get("save_exported_model"):
        raise ModelLoadError(
            f"{refuse} it is an exported TensorFlow SavedModel, whose graph would run when "
            "loaded and which has no safe mode. Log it as a .keras model."
        )
    loader = pyfunc.get("loader_module")
    if pyfunc and loader not in LOADERS:
        raise ModelLoadError(
            f"{refuse} its pyfunc loader is {loader!r}, not daeflow's or MLflow's Keras loader."
        )
    for key in ("code", "data", "model_config"):
        if pyfunc.get(key):
            raise ModelLoadError(
                f"{refuse} its python_function flavour carries {key!r} "
                f"({pyfunc[key]!r}), which daeflow's models never have and which would put "
                "files of the model on Python's path."
            )
    data = Path(str(keras_conf.get("data", "data")))
    if data.is_absolute():
        raise ModelLoadError(f"{refuse} its Keras data path {str(data)!r} leaves the model folder.")
    folder = path / data
    _inside(folder, path, refuse, f"its Keras data path {str(data)!r}")
    keras_file = folder / "model.keras" if folder.is_dir() else folder.with_suffix(".keras")
    if not keras_file.is_file():
        raise ModelLoadError(f"{refuse} it holds no .keras file ({keras_file.name} is missing).")
    _inside(keras_file, path, refuse, f"its .keras file {keras_file.name!r}")
    metadata = conf.metadata if conf.metadata is not None else {}
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{refuse} its metadata is not a mapping.")
    _check_numbers(metadata, refuse)
    check_custom_object_modules(metadata, where)
    return ModelFolder(path, keras_file, metadata)


def _inside(target: Path, folder: Path, refuse: str, what: str) -> None:
    """Refuse a path that leads (through '..' or a link) out of the model folder."""
    if not target.resolve().is_relative_to(folder.resolve()):
        raise ModelLoadError(f"{refuse} {what} leaves the model folder.")


def _check_numbers(metadata: dict, refuse: str) -> None:
    """The data range and size multiple a model declares must be usable numbers."""
    data_range = metadata.get("data_range")
    if data_range is not None and not (
        isinstance(data_range, int | float)
        and not isinstance(data_range, bool)
        and math.isfinite(data_range)
        and data_range > 0
    ):
        raise ModelLoadError(f"{refuse} its data_range {data_range!r} is not a positive number.")
    multiple = metadata.get("size_multiple")
    if multiple is not None and not (
        isinstance(multiple, int) and not isinstance(multiple, bool) and 1 <= multiple <= 4096
    ):
        raise ModelLoadError(f"{refuse} its size_multiple {multiple!r} is not an int >= 1.")


def not_plugin_modules(modules: list[str]) -> list[str]:
    """The modules that daeflow would not import for a model (see below)."""
    from daeflow.plugin.manager import plugin_module_prefixes

    prefixes = plugin_module_prefixes() if modules else set()
    refused = []
    for module in modules:
        parts = module.split(".")
        dunder = any(p.startswith("__") for p in parts)
        allowed = any(module == p or module.startswith(p + ".") for p in prefixes)
        if dunder or not all(p.isidentifier() for p in parts) or not allowed:
            refused.append(module)
    return refused


def check_custom_object_modules(metadata: dict, where: str) -> None:
    """Accept only modules of installed daeflow plugins (or daeflow's architectures); import them.

    A module is allowed when it lies in a package of a distribution with an entry point in
    the group 'daeflow', or under daeflow.architectures; never a __main__ or other dunder.
    """
    refuse = f"daeflow refuses the model {where}:"
    modules = metadata.get("custom_object_modules") or []
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise ModelLoadError(f"{refuse} custom_object_modules must be a list of module names.")
    for module in not_plugin_modules(modules):
        raise ModelLoadError(
            f"{refuse} it asks to import {module!r}, which is not a module of an installed "
            f"daeflow plugin (entry-point group 'daeflow'). {_plugin_hint(metadata)}"
        )
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ModelLoadError(
                f"This model uses layers from {module!r}, which is not installed. "
                f"{_plugin_hint(metadata)}"
            ) from None


def _plugin_hint(metadata: dict) -> str:
    """What to install, as the model names it, if the name is a plausible distribution name."""
    name = metadata.get("plugin_distribution")
    plausible = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name)
    if plausible and name != "daeflow":
        return (
            f"The model names its plugin {name!r}: install it if you trust it (pip install {name})."
        )
    return "Install the daeflow plugin that made the model."


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


def _model_kwargs(model, metadata: dict, plugin_distribution: str) -> dict:
    """What every saved model carries: metadata naming its layer modules, signature, pins."""
    return {
        "signature": model_signature(),
        "pip_requirements": pip_requirements(plugin_distribution),
        "metadata": {
            **metadata,
            "custom_object_modules": custom_object_modules(model),
            "plugin_distribution": plugin_distribution,
            "pyfunc_input": OWN_SCALE,
            "channels": int(model.input_shape[-1]),
            "tile_margin": MARGIN,
        },
    }


def _in_float32(model, metadata: dict):
    """The model computing in float32, whatever it was trained in (noted in the metadata)."""
    from daeflow import precision

    trained_in = precision.training_policy(model)
    return precision.in_policy(model, "float32"), {**metadata, "trained_precision": trained_in}


def save_local(model, path, metadata: dict, plugin_distribution: str):
    """Save a model folder as a run would log it, without a run (conformance kit)."""
    model, metadata = _in_float32(model, metadata)
    save_model(model, str(path), **_model_kwargs(model, metadata, plugin_distribution))


def log_model(model, metadata: dict, plugin_distribution: str):
    """Log the Keras model with a signature, pinned requirements and daeflow's loader."""
    import sys

    from mlflow.models import Model

    model, metadata = _in_float32(model, metadata)
    return Model.log(
        artifact_path=None,
        name="model",
        flavor=sys.modules[__name__],
        model=model,
        **_model_kwargs(model, metadata, plugin_distribution),
    )
