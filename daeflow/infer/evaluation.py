"""Score a model on fixed images (or volumes), image by image, in memory that does not grow
with them.

Images up to LARGE pixels are denoised in batches; larger ones tile by tile, with PSNR
and SSIM accumulated over the tiles. Both give the same per-image scores: the MSE is
summed over every pixel, and SSIM's map is computed on each tile's window (its core
plus a margin wider than the 3 pixels that the 7x7 window reaches), kept at the core,
and averaged over the pixels that scikit-image's mean SSIM uses (those 3 or more
pixels from the image border).
"""

import math
import time

import numpy as np

from daeflow.infer.tiling import denoise_image, predict, tiles
from daeflow.quality import metrics
from daeflow.quality.scores import Scores, concat, score
from daeflow.runtime.tiles import MARGIN, TILE

LARGE = 1024 * 1024  # pixels
BATCH_PIXELS = 4 * 1024 * 1024  # at most this many pixels per evaluation batch
HALO = metrics.SSIM_WINDOW // 2


def evaluate(
    model,
    source,
    indices,
    batch_size: int,
    multiple: int = 1,
    with_noisy=False,
    margin: int = MARGIN,
):
    """Scores of the model's output (and, with_noisy, of the noisy input) on `indices`;
    large images by tiles with the model's `margin` of context (at least SSIM's halo).
    Volumes are scored whole (PSNR over all voxels, SSIM the mean over Z planes); those
    over LARGE voxels are denoised by tiles, one volume at a time."""
    if len(source.image_shape) == 4:
        parts = _score_volumes(model, source, indices, batch_size, multiple, margin)
        denoised = concat([p[0] for p in parts])
        return (denoised, concat([p[1] for p in parts])) if with_noisy else denoised
    height, width = source.image_shape[:2]
    if height * width > LARGE and min(height, width) >= metrics.SSIM_WINDOW:
        parts = [_score_tiled(model, source, int(i), multiple, margin) for i in indices]
    else:
        size = max(1, min(batch_size, BATCH_PIXELS // (height * width)))
        parts = [
            (score(clean, predict(model, noisy, multiple)), score(clean, noisy))
            for noisy, clean in source.eval_batches(indices, size)
        ]
    denoised = concat([p[0] for p in parts])
    return (denoised, concat([p[1] for p in parts])) if with_noisy else denoised


def _score_volumes(model, source, indices, batch_size: int, multiple: int, margin: int):
    voxels = math.prod(source.image_shape[:-1])
    size = max(1, min(batch_size, BATCH_PIXELS // voxels))

    def run(noisy):
        if voxels <= LARGE:
            return predict(model, noisy, multiple)
        return np.stack([denoise_image(model, v, TILE, margin, multiple) for v in noisy])

    return [
        (score(clean, run(noisy)), score(clean, noisy))
        for noisy, clean in source.eval_batches(indices, size)
    ]


def _score_tiled(model, source, index: int, multiple: int, margin: int) -> tuple[Scores, Scores]:
    height, width, channels = source.image_shape
    squares = {"denoised": 0.0, "noisy": 0.0}
    ssim_sums = {"denoised": 0.0, "noisy": 0.0}
    ssim_count = 0
    for t in tiles((height, width), TILE, max(margin, HALO), multiple):
        noisy, clean = source.windows(index, *t.low, *t.window_shape)
        estimates = {
            "denoised": np.clip(predict(model, noisy, multiple)[0], 0, 1),
            "noisy": np.clip(noisy[0], 0, 1),
        }
        # SSIM's map is computed over the whole window (the margin is at least the halo)
        # and kept at the core's pixels that are 3 or more from the image border.
        core = t.core_of_window()
        rows = np.arange(t.start[0], t.start[0] + t.size[0])
        cols = np.arange(t.start[1], t.start[1] + t.size[1])
        keep_rows = (rows >= HALO) & (rows < height - HALO)
        keep_cols = (cols >= HALO) & (cols < width - HALO)
        truth = clean[0]
        for name, estimate in estimates.items():
            squares[name] += float(np.sum((truth[core] - estimate[core]).astype(np.float64) ** 2))
            ssim = metrics.ssim_map(truth, estimate, 1.0)[core][keep_rows][:, keep_cols]
            ssim_sums[name] += float(ssim.sum())
        ssim_count += int(keep_rows.sum() * keep_cols.sum() * channels)
    pixels = height * width * channels
    result = []
    for name in ("denoised", "noisy"):
        mse = squares[name] / pixels
        result.append(
            Scores(
                np.array([metrics.psnr_from_mse(mse, 1.0)]),
                np.array([ssim_sums[name] / ssim_count]),
                np.array([mse]),
            )
        )
    return result[0], result[1]


def inference_ms(
    run, channels: int, size: int, repeats: int = 5, warm_up: bool = True, dims: int = 2
) -> float:
    """Median milliseconds of `run` on one size x size image (a size^3 volume for `dims`
    3), after a warm-up call."""
    shape = (1, *(size,) * dims, channels)
    image = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    if warm_up:
        run(image)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(image)
        timings.append(time.perf_counter() - start)
    return 1000 * float(np.median(timings))
