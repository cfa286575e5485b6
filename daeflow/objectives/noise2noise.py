"""noise2noise: learn from two independent noisy shots of each scene (Lehtinen et al. 2018)."""

from daeflow import Objective, hookimpl


def batch(images, seed, params, variance):
    """One shot in, the other as the target; which is which drawn per piece, so that each
    pair trains in both directions."""
    import tensorflow as tf

    first, second = images
    ones = tf.ones([first.shape.rank - 1], tf.int32)  # images or volumes
    swap = tf.random.stateless_uniform(tf.concat([tf.shape(first)[:1], ones], 0), seed) < 0.5
    return tf.where(swap, second, first), tf.where(swap, first, second)


NOISE2NOISE = Objective(
    "noise2noise",
    "Two independent noisy shots of each scene (--noisy, --noisy2): one shot learns the "
    "other, in both directions. Needs no clean image.",
    "noisy_pairs",
    batch,
)


@hookimpl
def register_objectives():
    return [NOISE2NOISE]
