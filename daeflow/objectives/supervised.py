"""supervised: learn the clean image from the noisy one (clean/noisy pairs)."""

from daeflow import Objective, hookimpl


def batch(images, seed, params, variance):
    """The pair as it is: the noisy image in, the clean image as the target."""
    noisy, clean = images
    return noisy, clean


SUPERVISED = Objective(
    "supervised",
    "Clean targets: learn the clean image from the noisy one (clean/noisy pairs, or clean "
    "images with synthetic --noise).",
    "pairs",
    batch,
)


@hookimpl
def register_objectives():
    return [SUPERVISED]
