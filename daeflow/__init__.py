"""daeflow: train image denoisers from NumPy arrays, tracked in MLflow.

Sub-packages, lowest first; a module imports only from packages below its own
(tests/test_layout.py checks it):

    errors            exceptions users see
    runtime           importing Keras quietly, precision, devices, signals, tile sizes,
                      full disks, background threads
    plugin            hook contract, spec classes, hyperparameters, manager, registry
    config, architectures, objectives   validated run options; the built-in architecture
                      and training-objective plugins
    data              arrays, checks, splits, noise models, scaled pairs, digests
    quality           metrics, classical baselines, image grids, HTML and charts
    track             every MLflow call
    infer             safe model loading, tiling, self-ensemble, scoring a model
    train             tf.data pipeline, trainer, callbacks
    workflow          what each command does, combining the stages
    cli               the Typer app
    testing, mlflow_flavor, __main__   public names: the conformance kit, MLflow's loader
                      module, `python -m daeflow`
"""

from daeflow.plugin.hookspecs import hookimpl
from daeflow.plugin.specs import Architecture, HyperParam, NoiseModel, Objective

__version__ = "0.1.0"

__all__ = ["Architecture", "HyperParam", "NoiseModel", "Objective", "__version__", "hookimpl"]
