"""daeflow's MLflow flavour under the stable name written into every logged MLmodel.

`mlflow.pyfunc.load_model` imports `daeflow.mlflow_flavor` and calls `_load_pyfunc`;
old models (e.g. in mlruns.example) name this module too. The checks and the saving
are in `daeflow.track.flavor`; what `predict` does is in `daeflow.infer.pyfunc`.
"""

from daeflow.track.flavor import (  # noqa: F401
    FLAVOR_MODULE,
    custom_object_modules,
    save_model,
)


def _load_pyfunc(path):
    """Called by `mlflow.pyfunc.load_model` with the model folder: the checks, then Keras.

    MLflow itself puts a model's `code` folder on Python's path before it calls this; the
    checks refuse such models in daeflow's commands, but cannot undo that import order.
    """
    from daeflow.infer.loading import load_denoiser
    from daeflow.infer.pyfunc import ImagePyfunc

    return ImagePyfunc(load_denoiser(str(path)))
