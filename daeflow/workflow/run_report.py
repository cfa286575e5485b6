"""A run's report: what it shows people besides numbers (probe grids, the per-image table,
the worst test images, cost), its report.html (and a sweep's), and the notes a run ends
with (worse than its input, worse than a classical baseline of the same data).

HTML itself is rendered by daeflow.quality.html.
"""

import resource
import shlex
import sys
from pathlib import Path

import numpy as np

from daeflow.infer.evaluation import inference_ms
from daeflow.infer.tiling import predict
from daeflow.quality import charts, html
from daeflow.quality.images import (
    denoising_grid,
    noisy_grid,
    view_captions,
    volume_grid,
    volume_views,
)

PROBES = 4
DISPLAY = 256  # larger images are shown by a centred crop of at most this size
DISPLAY_DEPTH = 32  # and volumes by at most this many planes around their middle one
EXAMPLES = "test_examples.npz"
TABLE = "test_per_image.json"
WORST = "worst_test_images.png"
COST_SIZE = 256
COST_SIZE_3D = 64  # a 64^3 volume: as many voxels as a 512 x 512 image has pixels
BEST_BUILTIN = "residual_fast"
BASELINES_THEN = (
    "Baselines: the classical baselines of the same data, test split and data range that "
    "were in the tracking store when this page was written. 'daeflow compare --data "
    "same-as:RUN' (RUN: this run's id) compares against those logged since as well."
)


def display_pairs(source, indices, multiple: int = 1):
    """Fixed (noisy, clean) pairs of `indices`, centre-cropped to at most DISPLAY pixels
    (volumes also to at most DISPLAY_DEPTH planes; clean None for noisy images alone)."""
    if len(source.image_shape) == 4:
        return _display_volumes(source, indices, multiple)
    height, width = source.image_shape[:2]
    size_h = min(height, max(multiple, DISPLAY // multiple * multiple))
    size_w = min(width, max(multiple, DISPLAY // multiple * multiple))
    top = (height - size_h) // 2 // multiple * multiple
    left = (width - size_w) // 2 // multiple * multiple
    pairs = [source.windows(int(i), top, left, size_h, size_w) for i in indices]
    noisy = np.concatenate([p[0] for p in pairs])
    return noisy, (np.concatenate([p[1] for p in pairs]) if source.has_clean else None)


def volume_crop(shape: tuple, multiple: int = 1) -> tuple[slice, ...]:
    """The centred part of a (D, H, W, C) volume that probes show: at most DISPLAY_DEPTH
    planes and DISPLAY x DISPLAY pixels, corners on multiples of `multiple`."""
    crop = []
    for n, cap in zip(shape[:3], (DISPLAY_DEPTH, DISPLAY, DISPLAY), strict=True):
        size = min(n, max(multiple, cap // multiple * multiple))
        start = (n - size) // 2 // multiple * multiple
        crop.append(slice(start, start + size))
    return tuple(crop)


def _display_volumes(source, indices, multiple: int):
    crop = (slice(None), *volume_crop(source.image_shape, multiple), slice(None))
    noisy, clean = [], []
    for i in indices:
        if source.has_clean:
            n, c = source.batch([int(i)])
            clean.append(c[crop])
        else:
            n = np.asarray(source.noisy.read([int(i)]), np.float32) / np.float32(source.data_range)
        noisy.append(n[crop])
    return np.concatenate(noisy), (np.concatenate(clean) if clean else None)


def _denoised(model, noisy: np.ndarray, multiple: int) -> np.ndarray:
    """The model's output on display images; volumes one at a time (bounded memory)."""
    if noisy.ndim == 5:
        return np.concatenate([predict(model, v[None], multiple) for v in noisy])
    return predict(model, noisy, multiple)


def _grid(source, clean, noisy, denoised, captions=None, multiple: int = 1) -> np.ndarray:
    """The picture of display images: volumes by their middle Z plane and maximum projection
    along Z, labelled; images as they are."""
    if noisy.ndim == 5:
        first = volume_crop(source.image_shape, multiple)[0].start
        return volume_grid(clean, noisy, denoised, captions, first)
    if clean is None:
        return noisy_grid(noisy, denoised, captions)
    return denoising_grid(clean, noisy, denoised, captions)


def probe_renderer(subset, multiple: int = 1):
    """A function drawing the probe grid of a model: clean | noisy | denoised | error, or
    noisy | denoised for noisy images alone (volumes: two rows each, the middle Z plane and
    the maximum projection along Z)."""
    ordered = np.sort(subset.indices)  # spread over the split, the same for the same seed
    indices = ordered[np.unique(np.linspace(0, len(ordered) - 1, PROBES).astype(int))]
    noisy, clean = display_pairs(subset.source, indices, multiple)

    def render(model) -> np.ndarray:
        denoised = _denoised(model, noisy, multiple)
        return _grid(subset.source, clean, noisy, denoised, multiple=multiple)

    return render


def write_test_report(folder, model, test, test_scores, noisy_scores, multiple: int = 1):
    """The per-image table, the worst images and the examples, as files in `folder`
    (volumes: shown and kept as their middle Z plane and maximum projection along Z).

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
    kind = "volume" if noisy.ndim == 5 else "image"
    captions = [
        f"test {kind} {int(indices[k])}: PSNR noisy {noisy_scores.psnr[k]:.2f} dB, denoised "
        f"{test_scores.psnr[k]:.2f} dB"
        for k in order
    ]
    denoised = _denoised(model, noisy, multiple)
    picture = _grid(test.source, clean, noisy, denoised, captions, multiple)
    Image.fromarray(picture).save(folder / WORST)
    # The first test images, noisy and denoised, so `daeflow compare` can set runs side by
    # side; a volume's two views (middle plane, maximum projection) stand for it.
    first = np.sort(indices)[:PROBES]
    noisy, clean = display_pairs(test.source, first, multiple)
    denoised = np.clip(_denoised(model, noisy, multiple), 0, 1)
    noisy = np.clip(noisy, 0, 1)
    captions = [f"test image {int(i)}" for i in first]
    if noisy.ndim == 5:
        plane = volume_crop(test.source.image_shape, multiple)[0].start
        names = [f"test volume {int(i)}" for i in first]
        captions = view_captions(noisy.shape[1], names, plane)
        clean, noisy, denoised = map(volume_views, (clean, noisy, denoised))
        first = np.repeat(first, 2)
    np.savez_compressed(
        folder / EXAMPLES,
        indices=first,
        captions=np.array(captions),  # text (not objects): read back without pickle
        clean=clean.astype(np.float16),
        noisy=noisy.astype(np.float16),
        denoised=denoised.astype(np.float16),
    )
    return metrics, picture


def cost_metrics(
    model, channels: int, multiple: int, trainable_params: float, dims: int = 2
) -> dict:
    """Trainable parameters, inference time of one COST_SIZE image (of a COST_SIZE_3D cube
    for a 3D model), peak memory so far."""
    cost = COST_SIZE_3D if dims == 3 else COST_SIZE
    size = max(multiple, cost // multiple * multiple)
    return {
        "trainable_params": trainable_params,
        "inference_ms": inference_ms(
            lambda x: predict(model, x, multiple), channels, size, dims=dims
        ),
        "inference_size": float(size),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def suggestion(arch: str | None) -> str:
    """What to try next."""
    if arch == BEST_BUILTIN:
        return "Train longer (--epochs, --time-budget), with --augment and --patch-size."
    return f"Train longer (--epochs, --time-budget) or try --arch {BEST_BUILTIN}."


def command_line() -> str:
    """The command that is running, as a user would type it (the CLI records it)."""
    import os

    if os.environ.get("DAEFLOW_COMMAND_LINE"):
        return os.environ["DAEFLOW_COMMAND_LINE"]
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program in ("daeflow", "__main__.py"):
        return shlex.join(["daeflow", *sys.argv[1:]])
    return shlex.join(sys.argv)


def notes(metrics: dict, baselines: list[dict], arch: str | None = None) -> list[str]:
    """One line for each way this result should not be trusted or can be beaten."""
    found = []
    test, noisy = metrics.get("test_psnr"), metrics.get("noisy_psnr")
    if test is not None and noisy is not None and test < noisy:
        found.append(
            f"The denoised test images ({test:.2f} dB) are worse than the noisy input "
            f"({noisy:.2f} dB). {suggestion(arch)}"
        )
    better = [b for b in baselines if test is not None and (b["test_psnr"] or 0) > test]
    if better:
        best = max(better, key=lambda b: b["test_psnr"])
        found.append(
            f"The classical baseline {best['method']} scores {best['test_psnr']:.2f} dB on the "
            f"same test images, above this run's {test:.2f} dB. {suggestion(arch)}"
        )
    return found


NO_CLEAN = (
    "No clean test images: PSNR and SSIM were not measured. The number is the objective's "
    "own loss on the noisy test images; pass --test-data PAIRS.npz (keys clean, noisy) to "
    "score the model on clean references, which are never used for training."
)


def numbers_table(metrics: dict, baselines: list[dict]) -> str:
    """Test PSNR/SSIM of the run next to the noisy input and the baselines of the same data
    (without clean test images: the objective's test loss, and why there is no PSNR)."""
    if "test_psnr" not in metrics and "test_objective_loss" in metrics:
        rows = [["this run, objective's loss", metrics["test_objective_loss"]]]
        return html.table(["test set", "loss"], rows) + html.paragraph(NO_CLEAN)
    rows = [
        ["this run", metrics.get("test_psnr"), metrics.get("test_ssim")],
        ["noisy input", metrics.get("noisy_psnr"), metrics.get("noisy_ssim")],
    ]
    rows += [
        [f"baseline {b['method']}", b["test_psnr"], b["test_ssim"]]
        for b in sorted(baselines, key=lambda b: -(b["test_psnr"] or 0))
    ]
    return html.table(["test set", "PSNR dB", "SSIM"], rows) + html.paragraph(BASELINES_THEN)


def _whole(value):
    return None if value is None else f"{int(value):,}"


def run_page(
    title: str,
    facts: list[tuple[str, str]],
    metrics: dict,
    baselines: list[dict],
    history: list[dict],
    probe,
    worst=None,
    arch: str | None = None,
    loss_name: str = "MSE on [0, 1]",
) -> str:
    """report.html of one run: numbers, curves (when it trained), the probe grid, worst images.

    `loss_name` says what the training and validation losses are."""
    sections = [("Test set, per-image means", numbers_table(metrics, baselines))]
    cost = [
        ["training time s", metrics.get("train_seconds")],
        ["training images/s", metrics.get("train_images_per_second")],
        ["trainable parameters", _whole(metrics.get("trainable_params"))],
        [f"inference ms ({metrics.get('inference_size', 256):g} px)", metrics.get("inference_ms")],
        ["best epoch", _whole(metrics.get("best_epoch"))],
    ]
    sections.append(("Cost", html.table(None, [r for r in cost if r[1] is not None])))
    if history:
        epochs = range(1, len(history) + 1)

        def curve(key):
            return [(e, h[key]) for e, h in zip(epochs, history, strict=True) if key in h]

        psnr = curve("val_psnr")  # none without clean validation images
        losses = {"training loss": curve("loss"), "validation loss": curve("val_loss")}
        shown = [
            *([charts.line_chart({"validation PSNR": psnr}, "Validation PSNR", "epoch", "dB")]
              if psnr else []),
            charts.line_chart(losses, f"Loss ({loss_name})", "epoch", "loss"),
        ]  # fmt: skip
        sections.append(("Training curves", '<div class="charts">' + "".join(shown) + "</div>"))
    sections.append(
        ("Validation probes, final model", html.image(probe, "probe grid of the final model"))
    )
    if worst is not None:
        sections.append(("Worst test images", html.image(worst, "worst test images")))
    sections.append(("Command", html.command(command_line())))
    return html.page(title, facts, sections, notes(metrics, baselines, arch))


def sweep_page(
    title: str, facts: list[tuple[str, str]], children: list, summary: dict, by_loss: bool = False
) -> str:
    """report.html of a sweep: every child, the mean per configuration (and validation loss,
    `by_loss`), PSNR against cost."""
    rows = [
        [
            c.label,
            c.seed,
            c.status,
            (c.metrics or {}).get("test_psnr"),
            (c.metrics or {}).get("test_ssim"),
            (c.metrics or {}).get("train_seconds"),
            (c.metrics or {}).get("inference_ms"),
            (c.run_id or "")[:8],
        ]
        for c in children
    ]
    header = ["configuration", "seed", "status", "test PSNR", "SSIM", "train s", "infer ms", "run"]
    means = [
        [label, e["finished"], e["failed"], e.get("test_psnr_mean"), e.get("test_psnr_std")]
        + ([e.get("best_val_loss_mean"), e.get("best_val_loss_std")] if by_loss else [])
        for label, e in summary.items()
    ]
    columns = ["configuration", "finished", "failed", "PSNR mean", "PSNR std"]
    columns += ["val loss mean", "val loss std"] if by_loss else []
    points = [  # runs without clean test images have no test PSNR
        (c.metrics["train_seconds"], c.metrics["test_psnr"], c.label)
        for c in children
        if c.metrics and "test_psnr" in c.metrics
    ]
    sections = [
        ("Configurations", html.table(columns, means)),
        (
            "Test PSNR against training time",
            charts.scatter_chart(points, "Test PSNR against cost", "training time (s)", "dB"),
        ),
        ("Every run", html.table(header, rows)),
        ("Command", html.command(command_line())),
    ]
    return html.page(title, facts, sections)
