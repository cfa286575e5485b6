"""R2R's test-time estimate: average a model's output over inputs re-noised as in training.

A model trained with `--objective r2r` learned from inputs `y + alpha z`; applied to the
noisy image `y` alone it sees less noise than it was trained on. Averaging its outputs over
K inputs `y + alpha z_k`, z_k drawn with the noise model the run was trained with, is the
estimate the R2R paper uses (K times the inference time).
"""

import dataclasses

import numpy as np

from daeflow.errors import UsageError

OBJECTIVE = "r2r"  # the objective whose models this applies to
SEED = 27  # the re-noising draws: the same output for the same input, every call


def recorrupted(model, count: int, alpha: float, variance):
    """`model` as a callable averaging its outputs over `count` re-noised copies of its input
    (`variance(batch)`: the noise variance at each value, on the [0, 1] scale)."""

    def call(batch, training=False):
        batch = np.asarray(batch, dtype=np.float32)
        rng = np.random.default_rng([SEED, *batch.shape])
        spread = np.float32(alpha) * np.sqrt(np.asarray(variance(batch), dtype=np.float32))
        total = np.zeros(batch.shape, dtype=np.float32)
        for _ in range(count):
            noise = rng.standard_normal(batch.shape, dtype=np.float32) * spread
            total += np.asarray(model(batch + noise, training=False), dtype=np.float32)
        return total / np.float32(count)

    return call


def averaged(denoiser, count: int):
    """A copy of a Denoiser whose model averages `count` re-noised inputs; refused for a
    model not trained with r2r (its metadata names the objective and the noise model)."""
    trained = denoiser.trained_with or {}
    if trained.get("objective") != OBJECTIVE:
        raise UsageError(
            f"--recorrupted-average applies to models trained with --objective {OBJECTIVE}; "
            f"{denoiser.uri} was trained with {trained.get('objective', 'supervised')}. "
            "Drop the option."
        )
    variance = _unit_variance(trained, float(denoiser.data_range or 1.0))
    alpha = float(trained["objective_params"]["alpha"])
    model = recorrupted(denoiser.model, count, alpha, variance)
    return dataclasses.replace(denoiser, model=model)


def _unit_variance(trained: dict, data_range: float):
    """The trained-with noise model's variance on the [0, 1] scale, as a NumPy function."""
    from daeflow.plugin.registry import get_noise_model

    spec = get_noise_model(trained["noise"]).spec
    variance = spec.unit_variance(dict(trained.get("noise_params") or {}), data_range)

    def numpy_variance(values):
        import tensorflow as tf

        return np.asarray(variance(tf.constant(values)))

    return numpy_variance
