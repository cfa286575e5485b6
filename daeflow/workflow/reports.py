"""What a run shows people besides numbers: probe grids, per-image tables, worst images, cost."""

import resource

import numpy as np

from daeflow.infer.evaluation import inference_ms
from daeflow.infer.tiling import predict
from daeflow.quality.images import denoising_grid

PROBES = 4
DISPLAY = 256  # larger images are shown by a centred crop of at most this size
EXAMPLES = "test_examples.npz"
TABLE = "test_per_image.json"
WORST = "worst_test_images.png"
COST_SIZE = 256


def display_pairs(source, indices, multiple: int = 1):
    """Fixed (noisy, clean) pairs of `indices`, centre-cropped to at most DISPLAY pixels."""
    height, width = source.image_shape[:2]
    size_h = min(height, max(multiple, DISPLAY // multiple * multiple))
    size_w = min(width, max(multiple, DISPLAY // multiple * multiple))
    top = (height - size_h) // 2 // multiple * multiple
    left = (width - size_w) // 2 // multiple * multiple
    pairs = [source.windows(int(i), top, left, size_h, size_w) for i in indices]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def probe_renderer(subset, multiple: int = 1):
    """A function drawing the probe grid (clean | noisy | denoised | error) of a model."""
    ordered = np.sort(subset.indices)  # spread over the split, the same for the same seed
    indices = ordered[np.unique(np.linspace(0, len(ordered) - 1, PROBES).astype(int))]
    noisy, clean = display_pairs(subset.source, indices, multiple)

    def render(model) -> np.ndarray:
        return denoising_grid(clean, noisy, predict(model, noisy, multiple))

    return render


def write_test_report(folder, model, test, test_scores, noisy_scores, multiple: int = 1):
    """The per-image table, the worst images and the examples, as files in `folder`.

    Returns the percentile metrics and the picture of the worst images.
    """
    import json
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    indices = np.asarray(test.indices)
    columns = {
        "image": indices.tolist(),
        "psnr": test_scores.psnr.tolist(),
        "ssim": test_scores.ssim.tolist(),
        "noisy_psnr": noisy_scores.psnr.tolist(),
        "noisy_ssim": noisy_scores.ssim.tolist(),
    }
    rows = zip(*columns.values(), strict=True)
    table = {"columns": list(columns), "data": [list(row) for row in rows]}
    (folder / TABLE).write_text(json.dumps(table))
    metrics = {}
    for name, values in (("psnr", test_scores.psnr), ("ssim", test_scores.ssim)):
        for q in (5, 50, 95):
            metrics[f"test_{name}_p{q:02d}"] = float(np.percentile(values, q))
    order = np.argsort(test_scores.psnr)[:PROBES]
    worst = indices[order]
    noisy, clean = display_pairs(test.source, worst, multiple)
    captions = [
        f"test image {int(indices[k])}: PSNR noisy {noisy_scores.psnr[k]:.2f} dB, denoised "
        f"{test_scores.psnr[k]:.2f} dB"
        for k in order
    ]
    picture = denoising_grid(clean, noisy, predict(model, noisy, multiple), captions)
    Image.fromarray(picture).save(folder / WORST)
    # The first test images, noisy and denoised, so `daeflow compare` can set runs side by side.
    first = np.sort(indices)[:PROBES]
    noisy, clean = display_pairs(test.source, first, multiple)
    np.savez_compressed(
        folder / EXAMPLES,
        indices=first,
        clean=clean.astype(np.float16),
        noisy=np.clip(noisy, 0, 1).astype(np.float16),
        denoised=np.clip(predict(model, noisy, multiple), 0, 1).astype(np.float16),
    )
    return metrics, picture


def cost_metrics(model, channels: int, multiple: int, trainable_params: float) -> dict:
    """Trainable parameters, inference time of one COST_SIZE image, peak memory so far."""
    size = max(multiple, COST_SIZE // multiple * multiple)
    return {
        "trainable_params": trainable_params,
        "inference_ms": inference_ms(lambda x: predict(model, x, multiple), channels, size),
        "inference_size": float(size),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
