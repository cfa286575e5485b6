"""report.html of a run and of a sweep, and the notes a run ends with (worse than its input,
worse than a classical baseline of the same data)."""

import shlex
import sys
from pathlib import Path

from daeflow.quality import charts, report

BEST_BUILTIN = "residual_fast"


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


def numbers_table(metrics: dict, baselines: list[dict]) -> str:
    """Test PSNR/SSIM of the run next to the noisy input and the baselines of the same data."""
    rows = [
        ["this run", metrics.get("test_psnr"), metrics.get("test_ssim")],
        ["noisy input", metrics.get("noisy_psnr"), metrics.get("noisy_ssim")],
    ]
    rows += [
        [f"baseline {b['method']}", b["test_psnr"], b["test_ssim"]]
        for b in sorted(baselines, key=lambda b: -(b["test_psnr"] or 0))
    ]
    return report.table(["test set", "PSNR dB", "SSIM"], rows)


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
) -> str:
    """report.html of one run: numbers, curves (when it trained), the probe grid, worst images."""
    sections = [("Test set, per-image means", numbers_table(metrics, baselines))]
    cost = [
        ["training time s", metrics.get("train_seconds")],
        ["training images/s", metrics.get("train_images_per_second")],
        ["trainable parameters", _whole(metrics.get("trainable_params"))],
        [f"inference ms ({metrics.get('inference_size', 256):g} px)", metrics.get("inference_ms")],
        ["best epoch", _whole(metrics.get("best_epoch"))],
    ]
    sections.append(("Cost", report.table(None, [r for r in cost if r[1] is not None])))
    if history:
        epochs = range(1, len(history) + 1)

        def curve(key):
            return [(e, h[key]) for e, h in zip(epochs, history, strict=True) if key in h]

        sections.append(
            (
                "Training curves",
                '<div class="charts">'
                + charts.line_chart(
                    {"validation PSNR": curve("val_psnr")}, "Validation PSNR", "epoch", "dB"
                )
                + charts.line_chart(
                    {"training loss": curve("loss"), "validation loss": curve("val_loss")},
                    "Loss (MSE on [0, 1])",
                    "epoch",
                    "loss",
                )
                + "</div>",
            )
        )
    sections.append(
        ("Validation probes, final model", report.image(probe, "probe grid of the final model"))
    )
    if worst is not None:
        sections.append(("Worst test images", report.image(worst, "worst test images")))
    sections.append(("Command", report.command(command_line())))
    return report.page(title, facts, sections, notes(metrics, baselines, arch))


def sweep_page(title: str, facts: list[tuple[str, str]], children: list, summary: dict) -> str:
    """report.html of a sweep: every child, the mean per configuration, PSNR against cost."""
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
        for label, e in summary.items()
    ]
    points = [
        (c.metrics["train_seconds"], c.metrics["test_psnr"], c.label) for c in children if c.metrics
    ]
    sections = [
        (
            "Configurations",
            report.table(["configuration", "finished", "failed", "PSNR mean", "PSNR std"], means),
        ),
        (
            "Test PSNR against training time",
            charts.scatter_chart(points, "Test PSNR against cost", "training time (s)", "dB"),
        ),
        ("Every run", report.table(header, rows)),
        ("Command", report.command(command_line())),
    ]
    return report.page(title, facts, sections)
