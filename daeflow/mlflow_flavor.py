"""daeflow's MLflow flavour under the stable name written into every logged MLmodel.

`mlflow.pyfunc.load_model` imports `daeflow.mlflow_flavor` and calls `_load_pyfunc`;
old models (e.g. in mlruns.example) name this module too. The rules a model folder must
pass are in `daeflow.track.model_check`, the saving and loading in `daeflow.track.flavor`;
what `predict` does is in `daeflow.infer.pyfunc`.
"""

from daeflow.track.flavor import (  # noqa: F401
    FLAVOR_MODULE,
    custom_object_modules,
    save_model,
)


def _load_pyfunc(path):
    """Called by `mlflow.pyfunc.load_model` with the model folder: the checks, then Keras.

    MLflow calls this only for a folder whose MLmodel names this module, after it has put
    any `code` folder on Python's path: a tampered MLmodel never reaches daeflow's code.
    `daeflow check-model` and `daeflow serve` refuse such folders before MLflow sees them.
    """
    from daeflow.infer.loading import load_denoiser
    from daeflow.infer.pyfunc import ImagePyfunc

    return ImagePyfunc(load_denoiser(str(path)))
