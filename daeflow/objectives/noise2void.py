"""noise2void: blind-spot training on single noisy images (Krull et al. 2019; N2V2, Hoeck et
al. 2022, for median replacement).

In every box of about 1/fraction pixels one pixel is picked (stratified), its value replaced
by a random neighbour within the region of interest (uniform, N2V) or by the median of the
neighbourhood (median, N2V2), the centre excluded; the loss is the squared error on those
pixels only, against their noisy values. Defaults follow CAREamics: 0.2 % of the pixels, an
11x11 region.
"""

from daeflow import HyperParam, Objective, hookimpl


def _offsets(radius: int):
    """Every (dy, dx) in the square of `radius` but the centre."""
    import numpy as np

    span = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(span, span, indexing="ij")
    keep = (dy != 0) | (dx != 0)
    return np.stack([dy[keep], dx[keep]], -1).astype(np.int32)


def blind_spots(noisy, seed, percentage: float, roi_size: int, strategy: str):
    """The masked pixels of a batch: (inputs with their values replaced, mask of shape
    (pieces, height, width, 1) with 1 where a pixel was replaced)."""
    import math

    import tensorflow as tf

    side = max(1, round(math.sqrt(100.0 / percentage)))  # one pixel per side x side box
    radius = roi_size // 2
    shape = tf.shape(noisy)
    pieces, height, width = shape[0], shape[1], shape[2]
    rows, cols = (height + side - 1) // side, (width + side - 1) // side
    draws = tf.random.stateless_uniform([3, pieces, rows, cols], seed)
    tops = tf.range(rows)[None, :, None] * side
    lefts = tf.range(cols)[None, None, :] * side
    box_h = tf.cast(tf.minimum(side, height - tops), tf.float32)
    box_w = tf.cast(tf.minimum(side, width - lefts), tf.float32)
    ys = tops + tf.cast(draws[0] * box_h, tf.int32)
    xs = lefts + tf.cast(draws[1] * box_w, tf.int32)
    count = rows * cols
    ys, xs = tf.reshape(ys, [pieces, count]), tf.reshape(xs, [pieces, count])
    index = tf.broadcast_to(tf.range(pieces)[:, None], [pieces, count])
    padded = tf.pad(noisy, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    offsets = tf.constant(_offsets(radius))
    if strategy == "median":
        near = offsets[None, None]  # every neighbour
    else:
        pick = tf.cast(draws[2] * offsets.shape[0], tf.int32)  # a random neighbour each
        near = tf.gather(offsets, tf.reshape(pick, [pieces, count]))[:, :, None]
    near_ys = ys[..., None] + radius + near[..., 0]  # (pieces, count, neighbours)
    near_xs = xs[..., None] + radius + near[..., 1]
    near_index = tf.broadcast_to(index[..., None], tf.shape(near_ys))
    where = tf.stack([near_index, near_ys, near_xs], -1)
    values = tf.gather_nd(padded, where)  # (pieces, count, neighbours, channels)
    if strategy == "median":
        ordered = tf.sort(values, axis=2)
        middle = offsets.shape[0] // 2  # an even count: the mean of the two middle values
        values = (ordered[:, :, middle - 1] + ordered[:, :, middle]) / 2
    else:
        values = values[:, :, 0]
    at = tf.reshape(tf.stack([index, ys, xs], -1), [-1, 3])
    inputs = tf.tensor_scatter_nd_update(noisy, at, tf.reshape(values, [-1, shape[3]]))
    mask = tf.scatter_nd(at, tf.ones([pieces * count, 1]), [pieces, height, width, 1])
    return inputs, tf.minimum(mask, 1.0)


def batch(images, seed, params, variance):
    """The noisy pieces with blind spots in, the noisy pieces and the mask as the target."""
    import tensorflow as tf

    (noisy,) = images
    inputs, mask = blind_spots(
        noisy, seed, params["masked_pixel_percentage"], params["roi_size"], params["strategy"]
    )
    return inputs, tf.concat([noisy, mask], -1)


def loss(targets, predictions, params):
    """Mean squared error on the masked pixels only."""
    import tensorflow as tf

    predictions = tf.cast(predictions, tf.float32)
    targets = tf.cast(targets, tf.float32)
    channels = predictions.shape[-1]
    noisy, mask = targets[..., :channels], targets[..., channels:]
    squares = tf.reduce_sum(mask * tf.square(predictions - noisy))
    return squares / tf.maximum(tf.reduce_sum(mask) * channels, 1.0)


NOISE2VOID = Objective(
    "noise2void",
    "Single noisy images (--noisy): a few pixels are hidden and predicted from their "
    "neighbours (blind spots). Needs no clean image and no noise model; assumes noise "
    "independent from pixel to pixel.",
    "noisy",
    batch,
    (
        HyperParam(
            "strategy",
            "str",
            "uniform",
            "Replace a hidden pixel by a random neighbour (uniform, N2V) or the "
            "neighbourhood's median (median, N2V2).",
            choices=("uniform", "median"),
        ),
        HyperParam(
            "masked_pixel_percentage",
            "float",
            0.2,
            "Percentage of pixels hidden per image.",
            min=0.01,
            max=25,
        ),
        HyperParam(
            "roi_size", "int", 11, "Side of the square a replacement is drawn from.", min=3, max=21
        ),
    ),
    loss,
)


@hookimpl
def register_objectives():
    return [NOISE2VOID]
