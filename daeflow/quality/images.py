"""Pictures for people: labelled grids of clean | noisy | denoised | error, comparison sheets.

Volumes are shown by two views each, labelled: the middle Z plane and the maximum
projection along Z.

Every tile is shown at least TILE pixels wide, enlarged without smoothing (each pixel
a square), with the columns labelled above and an optional caption under each row.
"""

import math

import numpy as np

ERROR_GAIN = 4.0  # absolute errors are small; amplify them so they are visible
TILE = 256
GAP = 6
FONT_SIZE = 18
BAND = 28  # height of a text band
COLUMNS = ("clean", "noisy", "denoised", f"|error| x{ERROR_GAIN:g}")


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """An (H, W, C) image on [0, 1] as uint8 RGB (gray replicated; only the first 3 channels)."""
    image = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 2:
        image = np.concatenate([image, image[..., :1]], axis=-1)
    return np.rint(image[..., :3] * 255).astype(np.uint8)


def enlarged(image: np.ndarray, minimum: int = TILE) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor, so the shorter side is >= minimum."""
    factor = max(1, math.ceil(minimum / max(1, min(image.shape[:2]))))
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=FONT_SIZE)


def labelled_grid(
    rows: list[list[np.ndarray]],
    column_labels: list[str],
    row_captions: list[str] | None = None,
) -> np.ndarray:
    """Equally sized [0, 1] images as one uint8 RGB picture: labels above, captions below rows."""
    from PIL import Image, ImageDraw

    tiles = [[enlarged(to_rgb8(image)) for image in row] for row in rows]
    height, width = tiles[0][0].shape[:2]
    font = _font()
    # Columns wide enough for their labels, so no label is cut.
    column = max(width, *(int(font.getlength(label)) + 8 for label in column_labels))
    caption = BAND if row_captions else 0
    canvas = Image.new(
        "RGB",
        (len(column_labels) * (column + GAP) - GAP, BAND + len(rows) * (height + caption + GAP)),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(column_labels):
        draw.text((c * (column + GAP) + 4, 4), label, fill="black", font=font)
    for r, row in enumerate(tiles):
        top = BAND + r * (height + caption + GAP)
        for c, tile in enumerate(row):
            canvas.paste(Image.fromarray(tile), (c * (column + GAP), top))
        if row_captions:
            draw.text((4, top + height + 4), row_captions[r], fill="black", font=font)
    return np.asarray(canvas)


def denoising_grid(clean, noisy, denoised, captions: list[str] | None = None) -> np.ndarray:
    """One row per image: clean | noisy | denoised | absolute error (x4), labelled.

    Without captions, each row is captioned with its PSNR, noisy and denoised, on [0, 1].
    """
    from daeflow.quality.metrics import psnr

    if captions is None:
        before, after = psnr(clean, noisy, 1.0), psnr(clean, denoised, 1.0)
        captions = [
            f"PSNR noisy {b:.2f} dB, denoised {a:.2f} dB"
            for b, a in zip(before, after, strict=True)
        ]
    rows = []
    for c, n, d in zip(clean, noisy, denoised, strict=True):
        error = np.abs(np.clip(d, 0, 1) - c).mean(axis=-1, keepdims=True) * ERROR_GAIN
        rows.append([c, n, d, error])
    return labelled_grid(rows, list(COLUMNS), captions)


def noisy_grid(noisy, denoised, captions: list[str] | None = None) -> np.ndarray:
    """One row per image without a clean version: noisy | denoised, labelled."""
    rows = [[n, np.clip(d, 0, 1)] for n, d in zip(noisy, denoised, strict=True)]
    return labelled_grid(rows, ["noisy", "denoised"], captions)


def volume_views(volumes: np.ndarray) -> np.ndarray:
    """(N, D, H, W, C) volumes as 2N images: for each, its middle Z plane, then its maximum
    projection along Z."""
    volumes = np.asarray(volumes)
    middle = volumes[:, volumes.shape[1] // 2]
    projection = volumes.max(axis=1)
    return np.stack([middle, projection], axis=1).reshape(-1, *volumes.shape[2:])


def view_captions(depth: int, captions: list[str], first_plane: int = 0) -> list[str]:
    """The row captions of `volume_views`: each volume's caption and which view it is
    (`first_plane`: the volume's first plane shown, when only some planes are)."""
    planes = f"planes {first_plane}-{first_plane + depth - 1}"
    return [
        line
        for caption in captions
        for line in (
            f"{caption}; middle Z plane (z = {first_plane + depth // 2})",
            f"{caption}; maximum projection along Z ({planes})",
        )
    ]


def volume_grid(
    clean, noisy, denoised, captions: list[str] | None = None, first_plane: int = 0
) -> np.ndarray:
    """Two rows per volume, its middle Z plane and its maximum projection along Z, labelled:
    clean | noisy | denoised | error, or noisy | denoised without clean volumes (`clean`
    None). Without captions, each volume is captioned with its PSNR over all voxels."""
    from daeflow.quality.metrics import psnr

    if captions is None:
        if clean is None:
            captions = [f"volume {k}" for k in range(len(noisy))]
        else:
            before, after = psnr(clean, noisy, 1.0), psnr(clean, denoised, 1.0)
            captions = [
                f"PSNR noisy {b:.2f} dB, denoised {a:.2f} dB"
                for b, a in zip(before, after, strict=True)
            ]
    rows = view_captions(np.shape(noisy)[1], captions, first_plane)
    denoised = np.clip(denoised, 0, 1)
    if clean is None:
        return noisy_grid(volume_views(noisy), volume_views(denoised), rows)
    return denoising_grid(volume_views(clean), volume_views(noisy), volume_views(denoised), rows)
