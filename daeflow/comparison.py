"""Rank runs by a metric and set their test images side by side."""

from pathlib import Path

import numpy as np

from daeflow.errors import UsageError

COST = ("trainable_params", "train_seconds", "train_images_per_second", "inference_ms")


def find_runs(run_ids: list[str], experiment: str):
    """The runs asked for by id, or every run of the experiment but sweep parents."""
    import mlflow

    if run_ids:
        runs = []
        for run_id in run_ids:
            try:
                runs.append(mlflow.get_run(run_id))
            except Exception:
                raise UsageError(f"No MLflow run {run_id!r} in this tracking store.") from None
        return runs
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise UsageError(f"No MLflow experiment {experiment!r}. Pass --experiment or run ids.")
    runs = mlflow.search_runs([found.experiment_id], output_format="list")
    return [r for r in runs if r.data.tags.get("daeflow.command") != "sweep"]


def key_params(run) -> str:
    """The architecture's hyperparameters or the baseline's tuned ones, compact."""
    params = run.data.params
    chosen = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(("arch.", "tuned."))}
    for name in ("learning_rate", "epochs", "seed"):
        if name in params:
            chosen[name] = params[name]
    return " ".join(f"{k}={v}" for k, v in sorted(chosen.items()))


def rows(runs, metric: str) -> list[dict]:
    """One dict per run, best first by `metric` (runs without it last)."""
    table = []
    for run in runs:
        m = run.data.metrics
        table.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "arch": run.data.params.get("arch") or run.data.params.get("method", "?"),
                "params": key_params(run),
                "test_psnr": m.get("test_psnr"),
                "test_ssim": m.get("test_ssim"),
                "psnr_gain": m.get("psnr_gain"),
                **{name: m.get(name) for name in COST},
                "status": run.info.status,
                metric: m.get(metric),
            }
        )
    return sorted(table, key=lambda r: (r[metric] is None, -(r[metric] or 0)))


def _examples(run_id: str):
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="test_examples.npz")
    except Exception:
        return None
    with np.load(path) as archive:
        return {key: archive[key].astype(np.float32) for key in archive.files}


def sheet(run_rows: list[dict], path: Path) -> Path:
    """A PNG: one row per test example; columns clean, noisy, then each run's output."""
    from PIL import Image, ImageDraw

    from daeflow.images import grid, upscale

    examples = {r["run_id"]: _examples(r["run_id"]) for r in run_rows}
    usable = [r for r in run_rows if examples[r["run_id"]] is not None]
    if not usable:
        raise UsageError("None of these runs logged test_examples.npz; nothing to show.")
    first = examples[usable[0]["run_id"]]
    same = [
        r
        for r in usable
        if np.array_equal(examples[r["run_id"]]["indices"], first["indices"])
        and examples[r["run_id"]]["clean"].shape == first["clean"].shape
    ]
    columns = [first["clean"], first["noisy"]] + [examples[r["run_id"]]["denoised"] for r in same]
    picture = upscale(grid([list(images) for images in zip(*columns, strict=True)]))
    labels = ["clean", "noisy"] + [f"{r['arch']} {r['test_psnr'] or 0:.2f}dB" for r in same]
    header = 16
    canvas = Image.new("RGB", (picture.shape[1], picture.shape[0] + header), "white")
    canvas.paste(Image.fromarray(picture), (0, header))
    draw, width = ImageDraw.Draw(canvas), picture.shape[1] / len(labels)
    for i, label in enumerate(labels):
        draw.text((i * width + 2, 2), label[: int(width // 6)], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
