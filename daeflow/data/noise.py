"""Built-in synthetic noise models: gaussian, poisson, poisson_gaussian, salt_pepper, speckle.

In the graph, a parameter may come as a (pieces, 1, 1, 1) tensor (one value per piece, when
it was given as a range): every graph function and variance broadcasts it."""

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


def poisson_gaussian(clean, rng, params, data_range):
    """Shot noise plus read noise, as cameras and microscopes make: noisy =
    range / peak * Poisson(peak * max(clean, 0) / range) + N(0, read_sigma^2); mean clean,
    variance clean * range / peak + read_sigma^2 (read_sigma on the data's scale)."""
    import numpy as np

    peak = params["peak"]
    counts = rng.poisson(np.clip(clean, 0, None) / data_range * peak)
    read = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(params["read_sigma"])
    return (counts * (data_range / peak)).astype(np.float32) + read


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


def standard_normal(shape, seed):
    """Float32 N(0, 1) draws of `shape` from a stateless seed, by the Box-Muller transform of
    uniform draws: about 0.7x the CPU time of tf.random.stateless_normal (bench/pipeline.py)."""
    import math

    import tensorflow as tf

    count = tf.reduce_prod(shape)
    uniform = tf.random.stateless_uniform([2, (count + 1) // 2], seed)
    radius = tf.sqrt(-2.0 * tf.math.log1p(-uniform[0]))  # 1 - u is in (0, 1]
    angle = (2 * math.pi) * uniform[1]
    draws = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], 0)
    return tf.reshape(draws[:count], shape)


def gaussian_graph(clean, seed, params, data_range):
    """gaussian, drawn in TensorFlow."""
    import tensorflow as tf

    return clean + standard_normal(tf.shape(clean), seed) * params["sigma"]


def poisson_graph(clean, seed, params, data_range):
    """poisson, drawn in TensorFlow."""
    import tensorflow as tf

    peak = params["peak"]
    rate = tf.maximum(clean, 0.0) / data_range * peak
    counts = tf.random.stateless_poisson(tf.shape(clean), seed, rate, dtype=tf.float32)
    return counts * (data_range / peak)


def poisson_gaussian_graph(clean, seed, params, data_range):
    """poisson_gaussian, drawn in TensorFlow."""
    import tensorflow as tf

    shot, read = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    peak = params["peak"]
    rate = tf.maximum(clean, 0.0) / data_range * peak
    counts = tf.random.stateless_poisson(tf.shape(clean), shot, rate, dtype=tf.float32)
    return (
        counts * (data_range / peak) + standard_normal(tf.shape(clean), read) * params["read_sigma"]
    )


def salt_pepper_graph(clean, seed, params, data_range):
    """salt_pepper, drawn in TensorFlow."""
    import tensorflow as tf

    draws = tf.random.stateless_uniform(tf.concat([[2], tf.shape(clean)], 0), seed)
    hit, salt = draws[0] < params["amount"], draws[1] < 0.5
    value = tf.where(salt, tf.cast(data_range, clean.dtype), tf.zeros_like(clean))
    return tf.where(hit, value, clean)


def speckle_graph(clean, seed, params, data_range):
    """speckle, drawn in TensorFlow."""
    import tensorflow as tf

    return clean * (1 + standard_normal(tf.shape(clean), seed) * params["sigma"])


def gaussian_variance(values, params, data_range):
    """sigma squared at every value."""
    import tensorflow as tf

    # Added, not filled, so that a per-piece sigma broadcasts.
    return tf.zeros_like(values) + tf.cast(params["sigma"], values.dtype) ** 2


def poisson_variance(values, params, data_range):
    """A count's variance is its mean: value * range / peak on the data's scale."""
    import tensorflow as tf

    return tf.maximum(values, 0.0) * (data_range / params["peak"])


def poisson_gaussian_variance(values, params, data_range):
    """Estimated from the noisy value, as poisson's: max(value, 0) * range / peak +
    read_sigma^2 on the data's scale."""
    import tensorflow as tf

    return tf.maximum(values, 0.0) * (data_range / params["peak"]) + params["read_sigma"] ** 2


NOISE_MODELS = [
    NoiseModel(
        "gaussian",
        gaussian.__doc__,
        gaussian,
        (HyperParam("sigma", "float", 25.0, "Standard deviation on the data's scale.", min=0),),
        graph_apply=gaussian_graph,
        variance=gaussian_variance,
    ),
    NoiseModel(
        "poisson",
        poisson.__doc__,
        poisson,
        (HyperParam("peak", "float", 30.0, "Photon count at the full data range.", min=1e-3),),
        graph_apply=poisson_graph,
        variance=poisson_variance,
    ),
    NoiseModel(
        "poisson_gaussian",
        "Shot plus read noise (cameras, microscopes): range / peak * Poisson(peak * clean / "
        "range) + N(0, read_sigma^2).",
        poisson_gaussian,
        (
            HyperParam("peak", "float", 30.0, "Photon count at the full data range.", min=1e-3),
            HyperParam(
                "read_sigma",
                "float",
                5.0,
                "Read noise's standard deviation on the data's scale (5 suits 0-255).",
                min=0,
            ),
        ),
        graph_apply=poisson_gaussian_graph,
        variance=poisson_gaussian_variance,
    ),
    NoiseModel(
        "salt_pepper",
        salt_pepper.__doc__,
        salt_pepper,
        (HyperParam("amount", "float", 0.05, "Fraction of values replaced.", min=0, max=1),),
        graph_apply=salt_pepper_graph,
    ),
    NoiseModel(
        "speckle",
        speckle.__doc__,
        speckle,
        (HyperParam("sigma", "float", 0.1, "Relative standard deviation.", min=0),),
        graph_apply=speckle_graph,
    ),
]


@hookimpl
def register_noise_models():
    return NOISE_MODELS
