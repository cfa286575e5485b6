"""Pictures for people: image grids of clean | noisy | denoised | error, and comparison sheets."""

import numpy as np

ERROR_GAIN = 4.0  # absolute errors are small; amplify them so they are visible


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) image on [0, 1] as uint8 RGB (gray replicated; only the first 3 channels)."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 2:
        image = np.concatenate([image, image[..., :1]], axis=-1)
    return np.rint(image[..., :3] * 255).astype(np.uint8)


def grid(rows: list[list[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile equally sized images into one uint8 RGB picture, rows by columns, with gaps."""
    height, width = rows[0][0].shape[:2]
    out = np.full(
        (len(rows) * (height + gap) - gap, len(rows[0]) * (width + gap) - gap, 3), 255, np.uint8
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            y, x = r * (height + gap), c * (width + gap)
            out[y : y + height, x : x + width] = to_rgb8(image)
    return out


def denoising_grid(clean, noisy, denoised) -> np.ndarray:
    """One row per image: clean | noisy | denoised | absolute error (x4), all on [0, 1]."""
    rows = []
    for c, n, d in zip(clean, noisy, denoised, strict=True):
        error = np.abs(np.clip(d, 0, 1) - c).mean(axis=-1, keepdims=True) * ERROR_GAIN
        rows.append([c, n, d, error])
    return upscale(grid(rows))


def upscale(picture: np.ndarray, minimum: int = 256) -> np.ndarray:
    """Nearest-neighbour enlarge small pictures so patches are visible in the UI."""
    factor = max(1, minimum // max(1, min(picture.shape[:2])))
    return picture.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else picture
