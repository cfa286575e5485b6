"""Training batches through tf.data, the same for the same seed however training is resumed.

Each epoch reads every training image once, in an order drawn from (seed, epoch), a pool of
images at a time (up to POOL_BYTES of image data: all of train400), pools read ahead in
parallel. The pieces of a pool (random patches of each image, or the whole images) are drawn
together and shuffled, so that every batch mixes patches of the whole pool: with patches mixed
only within groups of 32 images, Set12 lost 0.6 dB (BENCHMARKS.md). Then chunks of a pool's
pieces (whole batches where the memory allows) are cut, flipped and noised in parallel calls
of one map that runs through all pools and epochs, and rebatched; no batch mixes two epochs.
Crops, flips and rotations, their order, the synthetic noise and what the training objective
draws (noise2void's blind spots, r2r's re-noising) are drawn inside the graph from stateless
generators seeded by (seed, epoch, pool, chunk), never from state that lives on between
batches: a run resumed at epoch k sees exactly the batches the uninterrupted run saw from
epoch k on.
"""

import math

import numpy as np

from daeflow.config import patch_shape
from daeflow.plugin.hyperparams import RANGE_KEY, drawn
from daeflow.plugin.specs import Range
from daeflow.train.objectives import SUPERVISED, roles, unit_variance

ORDER, POOL_KEY, BATCH = 13, 17, 11  # keys of the seeded streams
POOL_BYTES = 64 << 20  # image data (in the images' own dtype) read and shuffled together
POOLS_READ_AHEAD = 2  # pools read in parallel, ahead of the one being cut
CHUNK_PIECES = 256  # pieces cut and noised per parallel call
CHUNK_BYTES = 8 << 20  # and at most this much float32 noisy and clean data
COMPILE_FROM = 20_000  # pieces in a run from which patches are cut by XLA (0.2 s to compile)


def steps_per_epoch(n_indices: int, batch_size: int, repeats: int = 1) -> int:
    """Batches in one epoch."""
    return math.ceil(n_indices * repeats / batch_size)


def numpy_noise_note(source) -> str | None:
    """A line for the user when the noise model can only draw noise in NumPy (slower)."""
    if (
        source.noisy is None
        and source.noise is not None
        and getattr(source.noise, "graph_apply", None) is None
    ):
        return (
            f"Noise model {source.noise.name!r} has no in-graph version (graph_apply): its "
            "noise is drawn in NumPy, a chunk of pieces at a time, which is slower."
        )
    return None


def training_dataset(
    source,
    indices: np.ndarray,
    batch_size: int,
    seed: int,
    patch_size: int | str | None = None,
    augment: bool = False,
    repeats: int = 1,
    first_epoch: int = 0,
    epochs: int = 1,
    objective=None,
    objective_params=None,
):
    """tf.data of the (inputs, targets) batches of epochs first_epoch .. epochs-1, scaled to
    [0, 1]: (noisy, clean) for the supervised objective (the default), what `objective`
    makes of the noisy images otherwise; fit it with steps_per_epoch so that one iterator
    runs through all epochs."""
    import tensorflow as tf

    base = tf.constant([seed, 0], tf.int64)
    order = tf.constant(np.asarray(indices, dtype=np.int64))
    readers = [_read_group(images) for images in read_images(source, objective)]
    repeats = repeats if patch_size else 1
    pieces = len(indices) * repeats  # per epoch
    compiled = pieces * (epochs - first_epoch) >= COMPILE_FROM
    draw, chunks_of, cut_chunk = _pieces(
        source, seed, patch_size, repeats, augment, batch_size, compiled
    )
    if objective is not None and objective.name != SUPERVISED:
        cut_chunk = _objective_batches(cut_chunk, objective, objective_params, source)
    pool = pool_size(source, objective)

    def read_pool(epoch, number, group):
        return draw(epoch, number, tuple(read(group) for read in readers))

    def epoch_pools(epoch):
        shuffled = tf.random.experimental.stateless_shuffle(order, seed=_fold(base, ORDER, epoch))
        pools = tf.data.Dataset.from_tensor_slices(shuffled).batch(pool).enumerate()
        return pools.map(
            lambda number, group: read_pool(epoch, number, group),
            num_parallel_calls=POOLS_READ_AHEAD,
        )

    # One long-lived parallel map cuts the chunks of every pool of every epoch, so that its
    # parallelism is tuned once and it works on across the ends of pools and epochs.
    pools = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_pools).prefetch(1)
    chunks = pools.flat_map(chunks_of)
    chunks = chunks.map(cut_chunk, num_parallel_calls=tf.data.AUTOTUNE)
    return chunks.rebatch(epoch_batch_sizes(pieces, batch_size)).prefetch(tf.data.AUTOTUNE)


def epoch_batch_sizes(pieces: int, batch_size: int) -> list[int]:
    """The sizes of one epoch's batches, which tf.data's rebatch cycles through: the last of
    an epoch may be short, and no batch mixes two epochs."""
    full, rest = divmod(pieces, batch_size)
    return [batch_size] if not rest else [batch_size] * full + [rest]


def read_images(source, objective=None) -> list:
    """The ImageArrays a training batch is cut from: clean (and noisy, unless the noise is
    synthetic) for clean targets; the noisy ones (and their second shots) otherwise."""
    if objective is None or objective.needs_clean:
        wanted = [source.clean, source.noisy]
    else:
        wanted = [source.noisy, source.noisy2 if "noisy2" in roles(objective) else None]
    return [images for images in wanted if images is not None]


def pool_size(source, objective=None) -> int:
    """Images per pool: as many as POOL_BYTES of image data hold (at least one)."""
    arrays = read_images(source, objective)
    image_bytes = int(np.prod(source.image_shape)) * sum(a.dtype.itemsize for a in arrays)
    return max(1, POOL_BYTES // image_bytes)


def _objective_batches(cut_chunk, objective, params, source):
    """cut_chunk whose pieces (the noisy images, and their second shots) go through the
    objective's batch, seeded by the chunk's seed: (inputs, targets)."""
    variance = unit_variance(source)
    params = dict(params or {})

    def cut(epoch, number, pool_seed, images, draws, number_in_pool):
        pieces = cut_chunk(epoch, number, pool_seed, images, draws, number_in_pool)
        chunk_seed = _fold(pool_seed, 3, number_in_pool)
        return objective.batch(tuple(pieces), chunk_seed, params, variance)

    return cut


def chunk_size(piece_shape, batch_size: int) -> int:
    """Pieces per parallel call: CHUNK_PIECES within CHUNK_BYTES, whole batches if possible."""
    piece_bytes = 2 * 4 * int(np.prod(piece_shape))
    chunk = max(1, min(CHUNK_PIECES, CHUNK_BYTES // piece_bytes))
    return chunk - chunk % batch_size if chunk >= batch_size else chunk


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


def symmetry_count(size, augment: bool) -> int:
    """How many symmetries a piece of `size` (one number per spatial axis) is drawn from:
    the flips of each axis, and the transposition of Y and X where they are the same size
    (never a turn that mixes Z with Y and X: the Z spacing of a volume is usually other)."""
    if not augment:
        return 1
    return 2 ** len(size) * (2 if size[-2] == size[-1] else 1)


# Keys of the streams a pool's draws come from: the starts on Y and X and the turns keep
# the keys they had before volumes, so 2D batches are those of earlier versions.
START_KEYS = {-2: 0, -1: 1, -3: 4}
TURN_KEY = 2


def _pieces(
    source, seed: int, patch_size, repeats: int, augment: bool, batch_size: int, compiled: bool
):
    """Three functions: `draw` a pool's pieces (`repeats` random patches of each image, or
    the whole images, shuffled together, each with its own one of the symmetries of its
    shape when `augment`), the pool's `chunks_of` pieces, and `cut_chunk`: one chunk cut,
    turned, noised and padded, as (noisy, clean) scaled to [0, 1] (for noisy images alone:
    the pieces of each, scaled). Images (N, Y, X, C) and volumes (N, Z, Y, X, C) alike."""
    import tensorflow as tf

    *spatial, channels = source.image_shape
    dims = len(spatial)
    size = patch_shape(patch_size, dims) or tuple(spatial)
    symmetries = symmetry_count(size, augment)
    chunk = chunk_size((*size, channels), batch_size)
    add_noise = _noise(source, seed) if source.noisy is None else None
    as_read = source.clean is None  # noisy images alone: the pieces as read, scaled
    pad = source.pad_multiple if not patch_size else 1
    scale = np.float32(1.0 / source.data_range)
    base = tf.constant([seed, 0], tf.int64)
    cut = (
        _patch_cutter(size, tuple(spatial), symmetries, compiled)
        if patch_size
        else _whole_turner(symmetries, dims)
    )
    keys = [START_KEYS[axis - dims] for axis in range(dims)]

    def draw(epoch, number, images):
        pool_seed = _fold(base, POOL_KEY, epoch, number)
        count = tf.shape(images[0])[0] * repeats
        # Piece k of the pool is cut from image mixed[k] // repeats, at starts[k] (one
        # number per spatial axis), turned by turns[k]: independent draws, so they need
        # no shuffling of their own.
        mixed = tf.random.experimental.stateless_shuffle(tf.range(count), _fold(pool_seed, 9))
        sources = mixed // repeats
        starts = tf.stack(
            [
                tf.random.stateless_uniform([count], _fold(pool_seed, key), 0, limit, tf.int32)
                for key, limit in zip(keys, np.subtract(spatial, size) + 1, strict=True)
            ],
            axis=1,
        )
        turns = tf.random.stateless_uniform(
            [count], _fold(pool_seed, TURN_KEY), 0, symmetries, tf.int32
        )
        return epoch, number, pool_seed, images, (sources, starts, turns)

    def chunks_of(epoch, number, pool_seed, images, draws):
        count = tf.cast(tf.shape(draws[0])[0], tf.int64)
        numbers = tf.data.Dataset.range((count + chunk - 1) // chunk)
        return numbers.map(lambda n: (epoch, number, pool_seed, images, draws, n))

    def cut_chunk(epoch, number, pool_seed, images, draws, number_in_pool):
        start = tf.cast(number_in_pool, tf.int32) * chunk
        part = slice(start, tf.minimum(start + chunk, tf.shape(draws[0])[0]))
        made = cut(images, *(d[part] for d in draws))
        if as_read:
            return tuple((_pad(x, pad) if pad > 1 else x) * scale for x in made)
        clean = made[0]
        if add_noise is not None:
            noisy = add_noise(
                clean, _fold(pool_seed, 2, number_in_pool), epoch, number, number_in_pool
            )
        else:
            noisy = made[1]
        if pad > 1:
            clean, noisy = _pad(clean, pad), _pad(noisy, pad)
        return noisy * scale, clean * scale

    return draw, chunks_of, cut_chunk


def _turn_offsets(size, image_size, symmetries: int) -> np.ndarray:
    """(symmetries, *size) int32: the offset in a flattened image of each voxel of each
    turned patch. Turn k flips spatial axis d where bit d of k is set (axis 0 first) and,
    where bit `dims` is set, transposes the patch's Y and X."""
    dims = len(size)
    strides = [int(np.prod(image_size[d + 1 :])) for d in range(dims)]
    patterns = []
    for k in range(symmetries):
        offsets = np.zeros(size, dtype=np.int64)
        for d in range(dims):
            along = np.arange(size[d])
            along = along[::-1] if k >> d & 1 else along
            offsets = offsets + (along * strides[d]).reshape(
                [-1 if a == d else 1 for a in range(dims)]
            )
        patterns.append(np.swapaxes(offsets, -1, -2) if k >> dims & 1 else offsets)
    return np.stack(patterns).astype(np.int32)


def _patch_cutter(size, image_size, symmetries: int, compiled: bool = True):
    """(images, sources, starts, turns) -> float32 patches: each pixel (voxel) read
    through one index into the flattened images, the patch's flips and transposition
    folded in; compiled by XLA into one pass (1/5 of the CPU time, bench/pipeline.py
    --stages). `starts`: (pieces, dims), one offset per spatial axis."""
    import tensorflow as tf

    dims = len(size)
    strides = [int(np.prod(image_size[d + 1 :])) for d in range(dims)]
    patterns = tf.constant(_turn_offsets(size, image_size, symmetries))
    image_voxels, strides = int(np.prod(image_size)), tf.constant(strides, tf.int32)
    expand = (slice(None), *(None,) * dims)

    def cut(images, sources, starts, turns):
        offsets = sources * image_voxels + tf.reduce_sum(starts * strides[None], axis=1)
        index = tf.gather(patterns, turns) + offsets[expand]
        flat = [tf.reshape(x, [-1, x.shape[-1]]) for x in images]
        return [tf.cast(tf.gather(x, index), tf.float32) for x in flat]

    return tf.function(cut, jit_compile=True) if compiled else cut


def _whole_turner(symmetries: int, dims: int = 2):
    """(images, sources, starts, turns) -> float32 whole images (volumes), each flipped
    (and transposed in Y/X, when they are the same size) by its own turn."""
    import tensorflow as tf

    def turn(batch, turns):
        if symmetries == 1:
            return batch
        picked = lambda bit: (turns & bit != 0)[(slice(None), *(None,) * (dims + 1))]  # noqa: E731
        for d in range(dims):
            batch = tf.where(picked(1 << d), tf.reverse(batch, [d + 1]), batch)
        if symmetries == 2 ** (dims + 1):
            order = [*range(dims - 2), dims - 1, dims - 2]  # Y and X swapped
            moved = tf.transpose(batch, [0, *(a + 1 for a in order), dims + 1])
            batch = tf.where(picked(1 << dims), moved, batch)
        return batch

    def cut(images, sources, starts, turns):
        return [turn(tf.cast(tf.gather(x, sources), tf.float32), turns) for x in images]

    return cut


def _pad(batch, multiple: int):
    """Every spatial axis padded up to the next multiple, as data.shapes.pad_to_multiple
    does: reflected where each pad is shorter than its axis, else the edge repeated."""
    import tensorflow as tf

    if batch is None:
        return None
    axes = range(1, batch.shape.rank - 1)
    sizes = [tf.shape(batch)[a] for a in axes]
    pads = [-n % multiple for n in sizes]
    paddings = [[0, 0], *([0, p] for p in pads), [0, 0]]
    reflect = tf.reduce_all(tf.stack([p < n for p, n in zip(pads, sizes, strict=True)]))
    return tf.cond(
        reflect,
        lambda: tf.pad(batch, paddings, mode="REFLECT"),
        lambda: _edge_pad(batch, pads),
    )


def _edge_pad(batch, pads):
    import tensorflow as tf

    for axis, pad in enumerate(pads, start=1):
        last = tf.gather(batch, [tf.shape(batch)[axis] - 1], axis=axis)
        batch = tf.concat([batch, tf.repeat(last, pad, axis=axis)], axis=axis)
    return batch


def _noise(source, seed):
    """(clean, chunk seed, epoch, pool, chunk) -> noisy, on the data's scale: in the graph
    when the noise model has a graph_apply, else in NumPy seeded by (seed, epoch, pool, chunk).

    A parameter given as a range is drawn per piece, uniformly, from a stream of its own
    derived from the same seeds (so the noise draws are those of a single value): in the
    graph a (pieces, 1, ..., 1) tensor of the pieces' rank, in NumPy one value per piece,
    applied piece by piece."""
    import tensorflow as tf

    model, params, data_range = source.noise, dict(source.noise_params), source.data_range
    ranged = [(name, v) for name, v in params.items() if isinstance(v, Range)]
    if getattr(model, "graph_apply", None) is not None:
        if not ranged:
            return lambda clean, chunk_seed, *numbers: model.graph_apply(
                clean, chunk_seed, params, data_range
            )

        def add_ranged(clean, chunk_seed, *numbers):
            ones = tf.ones([clean.shape.rank - 1], tf.int32)
            shape = tf.concat([tf.shape(clean)[:1], ones], 0)
            pieces = dict(params)
            for key, (name, given) in enumerate(ranged):
                pieces[name] = tf.random.stateless_uniform(
                    shape, _fold(chunk_seed, RANGE_KEY, key), given.low, given.high, clean.dtype
                )
            return model.graph_apply(clean, chunk_seed, pieces, data_range)

        return add_ranged

    def apply(clean, *numbers):
        rng = np.random.default_rng([seed, BATCH, *(int(n) for n in numbers)])
        if not ranged:
            return np.asarray(model.apply(clean, rng, params, data_range), dtype=np.float32)
        stream = np.random.default_rng([seed, BATCH, *(int(n) for n in numbers), RANGE_KEY])
        values = drawn(params, stream, len(clean))
        noisy = np.empty(clean.shape, np.float32)
        for i, piece in enumerate(clean):
            own = {**values, **{name: float(values[name][i]) for name, _ in ranged}}
            noisy[i] = model.apply(piece, rng, own, data_range)
        return noisy

    def add(clean, chunk_seed, *numbers):
        noisy = tf.numpy_function(apply, [clean, *numbers], tf.float32, stateful=False)
        return tf.ensure_shape(noisy, clean.shape)

    return add
