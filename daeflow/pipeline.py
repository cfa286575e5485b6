"""Scaled (noisy, clean) batches: fixed for evaluation, streamed through tf.data for training."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daeflow.data import ImageArray


@dataclass
class PairSource:
    """Aligned clean/noisy images, or clean images plus a synthetic noise model.

    Batches come out as float32 divided by `data_range`. Evaluation noise is fixed per
    image (seeded by image index), training noise is drawn afresh on every call.
    """

    clean: ImageArray
    noisy: ImageArray | None
    data_range: float
    noise: Any = None
    noise_params: dict = field(default_factory=dict)
    seed: int = 0
    pad_multiple: int = 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.clean.shape[1:])

    def _noisy(self, indices, clean: np.ndarray) -> np.ndarray:
        """The fixed noisy images: given pairs, or noise seeded by each image's index."""
        if self.noisy is not None:
            return self.noisy.read(indices).astype(np.float32)
        rows = [
            self.noise.apply(
                image,
                np.random.default_rng([self.seed, 7, int(i)]),
                self.noise_params,
                self.data_range,
            )
            for i, image in zip(indices, clean, strict=True)
        ]
        return np.stack(rows).astype(np.float32)

    def batch(self, indices):
        """Fixed (noisy, clean) pairs scaled to [0, 1], the same on every call: for evaluation."""
        clean = self.clean.read(indices).astype(np.float32)
        return self._scaled(self._noisy(indices, clean), clean)

    def training_batch(self, indices, rng: np.random.Generator, patch_size: int | None = None):
        """(noisy, clean) with fresh synthetic noise, cropped to patches before it is drawn."""
        clean = self.clean.read(indices)
        noisy = None if self.noisy is None else self.noisy.read(indices)
        if patch_size:
            clean, noisy = random_crop(clean, noisy, patch_size, rng)
        clean = clean.astype(np.float32)
        if noisy is None:
            noisy = self.noise.apply(clean, rng, self.noise_params, self.data_range)
        return self._scaled(np.asarray(noisy, dtype=np.float32), clean)

    def _scaled(self, noisy: np.ndarray, clean: np.ndarray):
        scale = np.float32(1.0 / self.data_range)
        return noisy * scale, clean * scale

    def eval_batches(self, indices, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Fixed (noisy, clean) batches over `indices`, in order."""
        for start in range(0, len(indices), batch_size):
            yield self.batch(indices[start : start + batch_size])


def pad_to_multiple(batch: np.ndarray, multiple: int) -> np.ndarray:
    """Reflect-pad height and width up to the next multiple."""
    height, width = batch.shape[1:3]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return batch
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    return np.pad(batch, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def predict(model, noisy: np.ndarray, multiple: int = 1) -> np.ndarray:
    """Run the model on a batch, padding to the size it needs and cropping back."""
    height, width = noisy.shape[1:3]
    output = model.predict_on_batch(pad_to_multiple(noisy, multiple))
    return np.asarray(output)[:, :height, :width, :]


def random_crop(clean, noisy, size, rng):
    """The same random size x size crop of each image in both arrays (`noisy` may be None)."""
    n, height, width = clean.shape[:3]
    tops = rng.integers(0, height - size + 1, n)
    lefts = rng.integers(0, width - size + 1, n)
    rows = (tops[:, None] + np.arange(size))[:, :, None]
    cols = (lefts[:, None] + np.arange(size))[:, None, :]
    picks = (np.arange(n)[:, None, None], rows, cols)
    return clean[picks], None if noisy is None else noisy[picks]


def random_flip_rotate(noisy, clean, rng):
    """One of the 8 flips/rotations of the square, applied to the whole batch."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    noisy, clean = np.rot90(noisy, k, axes=(1, 2)), np.rot90(clean, k, axes=(1, 2))
    if flip:
        noisy, clean = noisy[:, :, ::-1], clean[:, :, ::-1]
    return np.ascontiguousarray(noisy), np.ascontiguousarray(clean)


def _batch_shape(source: PairSource, patch_size: int | None, augment: bool) -> tuple:
    """The static batch shape, with None wherever sizes may vary between batches."""
    height, width, channels = source.image_shape
    if patch_size:
        return (None, patch_size, patch_size, channels)
    if source.pad_multiple > 1 or (augment and height != width):
        return (None, None, None, channels)
    return (None, height, width, channels)


def training_dataset(
    source: PairSource,
    indices: np.ndarray,
    batch_size: int,
    seed: int,
    patch_size: int | None = None,
    augment: bool = False,
    repeats: int = 1,
):
    """tf.data of index batches, read and scaled batch by batch, reshuffled every epoch."""
    import tensorflow as tf

    rng = np.random.default_rng([seed, 11])
    fresh = source.noisy is None

    def load(batch_indices):
        noisy, clean = source.training_batch(np.sort(batch_indices), rng, patch_size)
        if augment:
            noisy, clean = random_flip_rotate(noisy, clean, rng)
        if source.pad_multiple > 1 and not patch_size:
            noisy = pad_to_multiple(noisy, source.pad_multiple)
            clean = pad_to_multiple(clean, source.pad_multiple)
        return noisy, clean

    shape = _batch_shape(source, patch_size, augment)

    def to_tensors(batch_indices):
        noisy, clean = tf.numpy_function(load, [batch_indices], [tf.float32, tf.float32])
        return tf.ensure_shape(noisy, shape), tf.ensure_shape(clean, shape)

    if not (fresh or patch_size or augment or source.pad_multiple > 1) and _in_memory(source):
        to_tensors = _gather_in_graph(source)
    epoch = np.tile(np.asarray(indices, dtype=np.int64), repeats)
    dataset = tf.data.Dataset.from_tensor_slices(epoch)
    dataset = dataset.shuffle(len(epoch), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(to_tensors).prefetch(tf.data.AUTOTUNE)


def _in_memory(source: PairSource) -> bool:
    arrays = (source.clean.array, source.noisy.array)
    return not any(isinstance(a, np.memmap) for a in arrays)


def _gather_in_graph(source: PairSource):
    """Fixed pairs already in RAM: gather and scale inside TensorFlow, no Python per batch."""
    import tensorflow as tf

    clean, noisy = tf.constant(source.clean.array), tf.constant(source.noisy.array)
    scale = np.float32(1.0 / source.data_range)

    def to_tensors(batch_indices):
        pick = tf.sort(batch_indices)
        return (
            tf.cast(tf.gather(noisy, pick), tf.float32) * scale,
            tf.cast(tf.gather(clean, pick), tf.float32) * scale,
        )

    return to_tensors
