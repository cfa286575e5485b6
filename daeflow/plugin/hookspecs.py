"""The hook markers and the contract of every daeflow hook."""

import pluggy

from daeflow.plugin.specs import Architecture, NoiseModel, Objective

hookspec = pluggy.HookspecMarker("daeflow")
hookimpl = pluggy.HookimplMarker("daeflow")


@hookspec
def register_architectures() -> list[Architecture]:
    """Return the denoising architectures this plugin provides.

    Each item is an `Architecture`; its `build(input_shape, params)` imports Keras
    inside its body and returns an uncompiled `keras.Model` whose output shape
    equals its input shape.
    """


@hookspec
def register_noise_models() -> list[NoiseModel]:
    """Return the synthetic noise models this plugin provides.

    Each item is a `NoiseModel`; its `apply(clean, rng, params, data_range)` gets
    a float32 batch on the data's own scale and returns a noisy batch of the same
    shape and dtype.
    """


@hookspec
def register_objectives() -> list[Objective]:
    """Return the training objectives this plugin provides.

    Each item is an `Objective`; its `batch` and `loss` import TensorFlow inside their
    bodies and run in TensorFlow's graph, seeded only by the seed they are given.
    """
