"""noise2void: blind-spot training on single noisy images (Krull et al. 2019; N2V2, Hoeck et
al. 2022, for median replacement).

In every box of about 1/fraction pixels one pixel is picked (stratified), its value replaced
by a random neighbour within the region of interest (uniform, N2V) or by the median of the
neighbourhood (median, N2V2), the centre excluded; the loss is the squared error on those
pixels only, against their noisy values. Defaults follow CAREamics: 0.2 % of the pixels, an
11x11 region.
"""

from daeflow import HyperParam, Objective, hookimpl


def _offsets(radius: int, dims: int = 2):
    """Every offset (dy, dx), or (dz, dy, dx) for volumes, in the square (cube) of
    `radius` but the centre."""
    import numpy as np

    span = np.arange(-radius, radius + 1)
    grids = np.meshgrid(*(span,) * dims, indexing="ij")
    keep = np.any([g != 0 for g in grids], axis=0)
    return np.stack([g[keep] for g in grids], -1).astype(np.int32)


def blind_spots(noisy, seed, percentage: float, roi_size: int, strategy: str):
    """The masked pixels of a batch of images (pieces, height, width, channels) or volumes
    (pieces, depth, height, width, channels): (inputs with their values replaced, mask of
    the batch's shape with one channel, 1 where a pixel was replaced). A volume's boxes,
    and the region a replacement comes from, are cubes: neighbours in Z, Y and X."""
    import math

    import tensorflow as tf

    dims = noisy.shape.rank - 2
    side = max(1, round((100.0 / percentage) ** (1 / dims)))  # one pixel per box of side^dims
    radius = roi_size // 2
    shape = tf.shape(noisy)
    pieces, sizes = shape[0], [shape[1 + d] for d in range(dims)]
    boxes = [(n + side - 1) // side for n in sizes]
    draws = tf.random.stateless_uniform(tf.stack([dims + 1, pieces, *boxes]), seed)
    coords = []
    for d in range(dims):
        starts = tf.reshape(
            tf.range(boxes[d]) * side, [1, *(-1 if a == d else 1 for a in range(dims))]
        )
        box = tf.cast(tf.minimum(side, sizes[d] - starts), tf.float32)
        coords.append(starts + tf.cast(draws[d] * box, tf.int32))
    count = math.prod(boxes)
    coords = [tf.reshape(c, [pieces, count]) for c in coords]
    index = tf.broadcast_to(tf.range(pieces)[:, None], [pieces, count])
    padded = tf.pad(noisy, [[0, 0], *([radius, radius] for _ in range(dims)), [0, 0]], "REFLECT")
    offsets = tf.constant(_offsets(radius, dims))
    if strategy == "median":
        near = offsets[None, None]  # every neighbour
    else:
        pick = tf.cast(draws[dims] * offsets.shape[0], tf.int32)  # a random neighbour each
        near = tf.gather(offsets, tf.reshape(pick, [pieces, count]))[:, :, None]
    # (pieces, count, neighbours) on each axis
    near_coords = [c[..., None] + radius + near[..., d] for d, c in enumerate(coords)]
    near_index = tf.broadcast_to(index[..., None], tf.shape(near_coords[0]))
    where = tf.stack([near_index, *near_coords], -1)
    values = tf.gather_nd(padded, where)  # (pieces, count, neighbours, channels)
    if strategy == "median":
        ordered = tf.sort(values, axis=2)
        middle = offsets.shape[0] // 2  # an even count: the mean of the two middle values
        values = (ordered[:, :, middle - 1] + ordered[:, :, middle]) / 2
    else:
        values = values[:, :, 0]
    at = tf.reshape(tf.stack([index, *coords], -1), [-1, dims + 1])
    inputs = tf.tensor_scatter_nd_update(noisy, at, tf.reshape(values, [-1, shape[-1]]))
    mask = tf.scatter_nd(at, tf.ones([pieces * count, 1]), tf.stack([pieces, *sizes, 1]))
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
            "roi_size",
            "int",
            11,
            "Side of the square (cube, for volumes) a replacement is drawn from.",
            min=3,
            max=21,
        ),
    ),
    loss,
)


@hookimpl
def register_objectives():
    return [NOISE2VOID]
