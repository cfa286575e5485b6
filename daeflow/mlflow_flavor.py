"""daeflow's MLflow flavour under the stable name written into every logged MLmodel.

`mlflow.pyfunc.load_model` imports `daeflow.mlflow_flavor` and calls `_load_pyfunc`;
old models (e.g. in mlruns.example) name this module too. The code is in
`daeflow.track.flavor`.
"""

from daeflow.track.flavor import (  # noqa: F401
    FLAVOR_MODULE,
    _load_pyfunc,
    custom_object_modules,
    save_model,
)
