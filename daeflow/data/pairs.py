"""Scaled (noisy, clean) pairs for evaluation: fixed noise per image, read a few at a time;
or noisy images alone (one or two shots of each scene) for objectives without clean targets."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daeflow.data.arrays import ImageArray
from daeflow.plugin.hyperparams import RANGE_KEY, drawn, has_ranges


@dataclass
class PairSource:
    """Aligned clean/noisy images, or clean images plus a synthetic noise model, or noisy
    images alone (`clean` None; `noisy2` a second shot of each scene, for noise2noise).

    Batches come out as float32 divided by `data_range`. Evaluation noise is fixed per
    image (seeded by image index); training batches come from train.pipeline. `noise` is
    the synthetic noise model of clean images, or the known noise model of noisy ones.
    """

    clean: ImageArray | None
    noisy: ImageArray | None
    data_range: float
    noise: Any = None
    noise_params: dict = field(default_factory=dict)
    seed: int = 0
    pad_multiple: int = 1
    noisy2: ImageArray | None = None
    _last_noisy: tuple = field(default=(None, None), repr=False, compare=False)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W, C) of images, (Z, Y, X, C) of volumes."""
        return tuple(self.first.shape[1:])

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes."""
        return len(self.image_shape) - 1

    @property
    def first(self) -> ImageArray:
        """The images every source has: the clean ones, or the noisy ones alone."""
        return self.clean if self.clean is not None else self.noisy

    @property
    def has_clean(self) -> bool:
        """Whether there are clean images to score against."""
        return self.clean is not None

    def __len__(self) -> int:
        return len(self.first)

    @property
    def in_memory(self) -> bool:
        """Fixed pairs that are both plain in-memory arrays (no file behind them)."""
        return self.noisy is not None and not any(
            isinstance(images.array, np.memmap) for images in (self.clean, self.noisy)
        )

    def _fixed_noise(self, index: int, clean: np.ndarray) -> np.ndarray:
        """The synthetic noisy version of one image, the same on every call; a parameter
        given as a range is drawn for the image from a generator of its own, seeded alike."""
        rng = np.random.default_rng([self.seed, 7, int(index)])
        params = self.noise_params
        if has_ranges(params):
            params = drawn(params, np.random.default_rng([self.seed, 7, int(index), RANGE_KEY]))
        return self.noise.apply(clean, rng, params, self.data_range)

    def _noisy(self, indices, clean: np.ndarray) -> np.ndarray:
        """The fixed noisy images: given pairs, or noise seeded by each image's index."""
        if self.noisy is not None:
            return self.noisy.read(indices).astype(np.float32)
        rows = [self._fixed_noise(i, image) for i, image in zip(indices, clean, strict=True)]
        return np.stack(rows).astype(np.float32)

    def batch(self, indices):
        """Fixed (noisy, clean) pairs scaled to [0, 1], the same on every call: for evaluation."""
        clean = self.clean.read(indices).astype(np.float32)
        return self._scaled(self._noisy(indices, clean), clean)

    def windows(self, index: int, start, size, *sizes_2d):
        """The fixed (noisy, clean) pair of one image cut to a window, scaled to [0, 1].

        `start` and `size` give one number per spatial axis (the 2D form
        windows(index, top, left, height, width) is still taken). For given pairs only the
        window is read. Synthetic noise is drawn for the whole image (so that it does not
        depend on the window), once per image, and then cut. Without clean images the
        clean window is None.
        """
        if sizes_2d:
            start, size = (start, size), tuple(sizes_2d)
        start, size = tuple(int(s) for s in start), tuple(int(s) for s in size)
        starts = [start]
        if self.clean is None:
            noisy = self.noisy.read_crops([index], starts, size)
            return np.asarray(noisy, dtype=np.float32) / np.float32(self.data_range), None
        clean = self.clean.read_crops([index], starts, size).astype(np.float32)
        if self.noisy is not None:
            noisy = self.noisy.read_crops([index], starts, size)
        else:
            window = tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))
            noisy = self._whole_noisy(index)[(None, *window)]
        return self._scaled(np.asarray(noisy, dtype=np.float32), clean)

    def _whole_noisy(self, index: int) -> np.ndarray:
        """The synthetic noisy version of one whole image, kept while its windows are read."""
        if self._last_noisy[0] != index:
            whole = self.clean.read([index])[0].astype(np.float32)
            self._last_noisy = (index, np.asarray(self._fixed_noise(index, whole), np.float32))
        return self._last_noisy[1]

    def _scaled(self, noisy: np.ndarray, clean: np.ndarray):
        scale = np.float32(1.0 / self.data_range)
        return noisy * scale, clean * scale

    def eval_batches(self, indices, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Fixed (noisy, clean) batches over `indices`, in order."""
        for start in range(0, len(indices), batch_size):
            yield self.batch(indices[start : start + batch_size])
