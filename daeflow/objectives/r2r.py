"""r2r: Recorrupted-to-Recorrupted (Pang et al. 2021), noisy images of a known noise model.

Each noisy image y is re-noised twice with the same draw z of the known noise: the network
learns y - z/alpha from y + alpha*z. For Gaussian noise the expected loss equals the
supervised one up to a constant; for signal-dependent noise (poisson) the variance is
estimated from the noisy value, an approximation.
"""

from daeflow import HyperParam, Objective, hookimpl


def batch(images, seed, params, variance):
    """(y + alpha z, y - z / alpha), z drawn with the noise model's variance at y."""
    import tensorflow as tf

    (noisy,) = images
    alpha = params["alpha"]
    z = tf.random.stateless_normal(tf.shape(noisy), seed) * tf.sqrt(variance(noisy))
    return noisy + alpha * z, noisy - z / alpha


R2R = Objective(
    "r2r",
    "Single noisy images whose noise model is known (--noisy with --noise): each is "
    "re-noised into an input and a target (Recorrupted-to-Recorrupted). Needs no clean image.",
    "noisy_and_model",
    batch,
    (HyperParam("alpha", "float", 0.5, "Re-noising strength of the input.", min=0.01, max=10),),
)


@hookimpl
def register_objectives():
    return [R2R]
