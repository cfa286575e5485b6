"""An MLflow model flavor: MLflow's Keras flavor plus a pyfunc loader that imports plugin layers.

Keras only finds a plugin's custom layers once their module is imported. The model's
MLmodel metadata names those modules; `_load_pyfunc` imports them (or says which
package to install) before handing over to MLflow's Keras loader, so
`mlflow.pyfunc.load_model` works in a fresh process with safe mode on.
"""

import importlib
import os

from daeflow.errors import ModelLoadError

FLAVOR_MODULE = "daeflow.mlflow_flavor"


def custom_object_modules(model) -> list[str]:
    """Modules that define the model's non-Keras layers (to import before loading)."""
    modules, pending = set(), list(model.layers)
    while pending:
        layer = pending.pop()
        modules.add(type(layer).__module__)
        pending.extend(getattr(layer, "layers", []))
    return sorted(m for m in modules if m.split(".")[0] not in ("keras", "tensorflow"))


def import_custom_objects(metadata: dict) -> None:
    """Import the modules that register the model's custom layers, or say what to install."""
    for module in (metadata or {}).get("custom_object_modules", []):
        try:
            importlib.import_module(module)
        except ImportError:
            package = metadata.get("plugin_distribution", module.split(".")[0])
            raise ModelLoadError(
                f"This model uses layers from {module!r}, which is not installed. "
                f"Install the plugin package: pip install {package}"
            ) from None


def save_model(model, path, mlflow_model=None, **kwargs):
    """Save with MLflow's Keras flavor, then point the pyfunc loader at this module."""
    import mlflow.keras
    from mlflow.models import Model

    mlflow_model = mlflow_model or Model()
    mlflow.keras.save_model(model, path, mlflow_model=mlflow_model, **kwargs)
    mlflow_model.flavors["python_function"]["loader_module"] = FLAVOR_MODULE
    mlflow_model.save(os.path.join(path, "MLmodel"))


def _load_pyfunc(path):
    """Called by `mlflow.pyfunc.load_model`: import plugin layers, then load as Keras."""
    from mlflow.keras.load import _load_pyfunc as load_keras_pyfunc
    from mlflow.models import Model

    for candidate in (path, os.path.dirname(path)):
        mlmodel = os.path.join(candidate, "MLmodel")
        if os.path.isfile(mlmodel):
            import_custom_objects(Model.load(mlmodel).metadata)
            break
    return load_keras_pyfunc(path)
