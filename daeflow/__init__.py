"""daeflow: train image denoisers from NumPy arrays, tracked in MLflow."""

from daeflow.hookspecs import hookimpl
from daeflow.specs import Architecture, HyperParam, NoiseModel

__version__ = "0.1.0"

__all__ = ["Architecture", "HyperParam", "NoiseModel", "__version__", "hookimpl"]
