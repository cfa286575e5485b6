"""Training batches through tf.data, the same for the same seed however training is resumed.

Each epoch reads every training image once, in an order drawn from (seed, epoch), a group
of images at a time (up to GROUP_IMAGES, GROUP_BYTES), groups in parallel. The patches cut
from a group's images, their flips and rotations and their synthetic noise are drawn inside
the graph from stateless generators seeded by (seed, epoch, group number), never from state
that lives on between batches: a run resumed at epoch k sees exactly the batches the
uninterrupted run saw from epoch k on. The pieces of consecutive groups are then pooled, up
to MIX_BYTES (a whole epoch of train400's patches), shuffled together and cut into batches,
so that a run of batches is not drawn from a few images only: with patches shuffled only
within groups of 32 images, Set12 lost 0.6 dB (29.00 against 29.60, BENCHMARKS.md), and
1.0 dB in bfloat16 with groups of 128.
"""

import math

import numpy as np

ORDER, GROUP_KEY, BATCH, MIX = 13, 17, 11, 19  # keys of the seeded streams
GROUP_IMAGES = 32  # at most this many images read together (groups are made in parallel)
GROUP_BYTES = 64 << 20  # and at most this much image data
MIX_BYTES = 64 << 20  # pieces (noisy and clean) pooled and shuffled together


def steps_per_epoch(n_indices: int, batch_size: int, repeats: int = 1) -> int:
    """Batches in one epoch."""
    return math.ceil(n_indices * repeats / batch_size)


def numpy_noise_note(source) -> str | None:
    """A line for the user when the noise model can only draw noise in NumPy (slower)."""
    if source.noisy is None and getattr(source.noise, "graph_apply", None) is None:
        return (
            f"Noise model {source.noise.name!r} has no in-graph version (graph_apply): its "
            "noise is drawn in NumPy, one batch at a time, which is slower."
        )
    return None


def training_dataset(
    source,
    indices: np.ndarray,
    batch_size: int,
    seed: int,
    patch_size: int | None = None,
    augment: bool = False,
    repeats: int = 1,
    first_epoch: int = 0,
    epochs: int = 1,
):
    """tf.data of the (noisy, clean) batches of epochs first_epoch .. epochs-1, scaled to
    [0, 1]; fit it with steps_per_epoch so that one iterator runs through all epochs."""
    import tensorflow as tf

    base = tf.constant([seed, 0], tf.int64)
    order = tf.constant(np.asarray(indices, dtype=np.int64))
    pieces = _pieces(source, seed, patch_size, repeats if patch_size else 1, augment)
    group = group_size(source)
    window = mix_size(source, patch_size, batch_size)

    def epoch_batches(epoch):
        shuffled = tf.random.experimental.stateless_shuffle(order, seed=_fold(base, ORDER, epoch))
        groups = tf.data.Dataset.from_tensor_slices(shuffled).batch(group).enumerate()
        ready = groups.map(
            lambda number, group: pieces(epoch, number, group),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        pooled = ready.rebatch(window).enumerate()
        mixed = pooled.map(lambda number, pair: _shuffled(pair, _fold(base, MIX, epoch, number)))
        return mixed.rebatch(batch_size)

    epochs_data = tf.data.Dataset.range(first_epoch, epochs)
    return epochs_data.flat_map(epoch_batches).prefetch(tf.data.AUTOTUNE)


def group_size(source) -> int:
    """Images per group: many, so that a batch mixes patches of many images, within a
    bounded amount of memory."""
    image_bytes = int(np.prod(source.image_shape)) * 4  # as float32
    return max(1, min(GROUP_IMAGES, GROUP_BYTES // image_bytes))


def mix_size(source, patch_size: int | None, batch_size: int) -> int:
    """Pieces pooled and shuffled together: MIX_BYTES of noisy and clean float32 pieces."""
    height, width, channels = source.image_shape
    if patch_size:
        height = width = patch_size
    piece_bytes = 2 * height * width * channels * 4
    return max(batch_size, MIX_BYTES // piece_bytes)


def _shuffled(pair, seed):
    """(noisy, clean) pieces in one order drawn from `seed`."""
    import tensorflow as tf

    order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(pair[0])[0]), seed)
    return tuple(tf.gather(x, order) for x in pair)


def _fold(seed, *numbers):
    """A stateless seed derived from `seed` and each number in turn."""
    import tensorflow as tf

    for number in numbers:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(number, tf.int64))
    return seed


def _tf_dtype(dtype: np.dtype):
    """The dtype an image is handed to TensorFlow in: its own, or float32."""
    import tensorflow as tf

    kept = (np.uint8, np.uint16, np.int16, np.int32, np.float16, np.float32, np.float64)
    return tf.as_dtype(dtype) if dtype.isnative and dtype.type in kept else tf.float32


def _read_group(images):
    """A function reading a group of images of an ImageArray (positioned reads, no GIL),
    in the array's own dtype where TensorFlow has it."""
    import tensorflow as tf

    out = _tf_dtype(images.dtype)
    shape = (None, *images.shape[1:])

    def read(indices):
        return images.read(indices).astype(out.as_numpy_dtype, copy=False)

    def read_tensor(indices):
        group = tf.numpy_function(read, [indices], out, stateful=False)
        return tf.ensure_shape(group, shape)

    return read_tensor


def _pieces(source, seed: int, patch_size, repeats: int, augment: bool):
    """(epoch, group number, indices) -> (noisy, clean) of a group of images, scaled to
    [0, 1]: `repeats` random patches of each image, shuffled together, or the whole images;
    turned, noised and padded as asked."""
    import tensorflow as tf

    readers = [_read_group(source.clean)]
    if source.noisy is not None:
        readers.append(_read_group(source.noisy))
    add_noise = _noise(source, seed) if source.noisy is None else None
    pad = source.pad_multiple if not patch_size else 1
    scale = np.float32(1.0 / source.data_range)
    base = tf.constant([seed, 0], tf.int64)

    def pieces(epoch, number, indices):
        group_seed = _fold(base, GROUP_KEY, epoch, number)
        images = [read(indices) for read in readers]
        if patch_size:
            images = _patches(group_seed, images, patch_size, repeats, source.image_shape, augment)
        else:
            images = [tf.cast(x, tf.float32) for x in images]
            if augment:
                images = _group_turn(_fold(group_seed, 1), images)
        clean = images[0]
        if add_noise is not None:
            noisy = add_noise(clean, _fold(group_seed, 2), epoch, number)
        else:
            noisy = images[1]
        if pad > 1:
            clean, noisy = _pad(clean, pad), _pad(noisy, pad)
        return noisy * scale, clean * scale

    return pieces


def _patches(seed, images, size: int, repeats: int, image_shape, augment: bool):
    """`repeats` random size x size patches of each image, each flipped and turned by its
    own one of the 8 symmetries of the square when `augment`, shuffled together."""
    import tensorflow as tf

    height, width = image_shape[:2]
    shape = [tf.shape(images[0])[0], repeats]
    tops, lefts, flip_rows, flip_columns, transpose = (
        tf.random.stateless_uniform(shape, _fold(seed, key), 0, limit, tf.int32)
        for key, limit in enumerate((height - size + 1, width - size + 1, 2, 2, 2))
    )
    span = tf.range(size)
    if augment:  # a flipped patch is the same patch read backwards
        rows = tops[..., None] + tf.where(flip_rows[..., None] == 1, size - 1 - span, span)
        columns = lefts[..., None] + tf.where(flip_columns[..., None] == 1, size - 1 - span, span)
    else:
        rows, columns = tops[..., None] + span, lefts[..., None] + span  # (n, repeats, size)
    count = shape[0] * repeats
    mixed = tf.random.experimental.stateless_shuffle(tf.range(count), _fold(seed, 9))
    # Patch k of the output is patch mixed[k] of the group, read pixel by pixel through one
    # index into the flattened images: crop, flips, transposition and shuffle in one gather.
    rows = tf.gather(tf.reshape(rows, [count, size]), mixed)
    columns = tf.gather(tf.reshape(columns, [count, size]), mixed)
    offsets = (mixed // repeats) * (height * width)
    index = rows[:, :, None] * width + columns[:, None, :]
    if augment:
        swap = tf.gather(tf.reshape(transpose, [-1]), mixed)[:, None, None] == 1
        index = tf.where(swap, tf.transpose(index, [0, 2, 1]), index)
    index += offsets[:, None, None]
    cut = []
    for image in images:  # (n, H, W, C) -> (count, size, size, C)
        flat = tf.reshape(image, [-1, image.shape[-1]])
        cut.append(tf.cast(tf.gather(flat, index), tf.float32))
    return cut


def _group_turn(seed, images):
    """Whole images turned by one of the 8 flips and rotations, the same for the group
    (images need not be square)."""
    import tensorflow as tf

    k, flip = tf.unstack(tf.random.stateless_uniform([2], seed, 0, 4, dtype=tf.int32))
    turned = [tf.image.rot90(x, k) for x in images]
    return [tf.cond(flip % 2 == 1, lambda x=x: tf.reverse(x, [2]), lambda x=x: x) for x in turned]


def _pad(batch, multiple: int):
    """Height and width padded up to the next multiple, as data.shapes.pad_to_multiple does."""
    import tensorflow as tf

    if batch is None:
        return None
    height, width = tf.shape(batch)[1], tf.shape(batch)[2]
    pad_h, pad_w = -height % multiple, -width % multiple
    paddings = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
    reflect = tf.logical_and(pad_h < height, pad_w < width)
    return tf.cond(
        reflect,
        lambda: tf.pad(batch, paddings, mode="REFLECT"),
        lambda: _edge_pad(batch, pad_h, pad_w),
    )


def _edge_pad(batch, pad_h, pad_w):
    import tensorflow as tf

    rows = tf.concat([batch, tf.repeat(batch[:, -1:], pad_h, axis=1)], axis=1)
    return tf.concat([rows, tf.repeat(rows[:, :, -1:], pad_w, axis=2)], axis=2)


def _noise(source, seed):
    """(clean, batch seed, epoch, number) -> noisy, on the data's scale: in the graph when
    the noise model has a graph_apply, else in NumPy seeded by (seed, epoch, batch)."""
    import tensorflow as tf

    model, params, data_range = source.noise, dict(source.noise_params), source.data_range
    if getattr(model, "graph_apply", None) is not None:
        return lambda clean, batch_seed, epoch, number: model.graph_apply(
            clean, batch_seed, params, data_range
        )

    def apply(clean, epoch, number):
        rng = np.random.default_rng([seed, BATCH, int(epoch), int(number)])
        return np.asarray(model.apply(clean, rng, params, data_range), dtype=np.float32)

    def add(clean, batch_seed, epoch, number):
        noisy = tf.numpy_function(apply, [clean, epoch, number], tf.float32, stateful=False)
        return tf.ensure_shape(noisy, clean.shape)

    return add
