"""Built-in synthetic noise models: gaussian, poisson, salt_pepper, speckle."""

from daeflow import HyperParam, NoiseModel, hookimpl


def gaussian(clean, rng, params, data_range):
    """Additive white Gaussian noise with standard deviation `sigma` on the data's scale."""
    import numpy as np

    noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(params["sigma"])
    return clean + noise


def poisson(clean, rng, params, data_range):
    """Photon noise: full range is `peak` photons; counts ~ Poisson(clean / range * peak)."""
    import numpy as np

    peak = params["peak"]
    counts = rng.poisson(np.clip(clean, 0, None) / data_range * peak)
    return (counts * (data_range / peak)).astype(np.float32)


def salt_pepper(clean, rng, params, data_range):
    """A fraction `amount` of values set to 0 or to the data range, half each."""
    noisy = clean.copy()
    hit = rng.random(clean.shape) < params["amount"]
    salt = rng.random(clean.shape) < 0.5
    noisy[hit & salt] = data_range
    noisy[hit & ~salt] = 0
    return noisy


def speckle(clean, rng, params, data_range):
    """Multiplicative noise: clean * (1 + n) with n ~ N(0, sigma)."""
    import numpy as np

    noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(params["sigma"])
    return clean * (1 + noise)


NOISE_MODELS = [
    NoiseModel(
        "gaussian",
        gaussian.__doc__,
        gaussian,
        (HyperParam("sigma", "float", 25.0, "Standard deviation on the data's scale.", min=0),),
    ),
    NoiseModel(
        "poisson",
        poisson.__doc__,
        poisson,
        (HyperParam("peak", "float", 30.0, "Photon count at the full data range.", min=1e-3),),
    ),
    NoiseModel(
        "salt_pepper",
        salt_pepper.__doc__,
        salt_pepper,
        (HyperParam("amount", "float", 0.05, "Fraction of values replaced.", min=0, max=1),),
    ),
    NoiseModel(
        "speckle",
        speckle.__doc__,
        speckle,
        (HyperParam("sigma", "float", 0.1, "Relative standard deviation.", min=0),),
    ),
]


@hookimpl
def register_noise_models():
    return NOISE_MODELS
