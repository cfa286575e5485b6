"""Rank runs by a metric, per dataset, and set their test images side by side."""

from pathlib import Path

import numpy as np

from daeflow.errors import UsageError
from daeflow.track.names import TAG_COMMAND, TAG_EVALUATION_DIGEST, TAG_TRAIN_DIGEST
from daeflow.workflow.run_report import EXAMPLES

COST = ("trainable_params", "train_seconds", "train_images_per_second", "inference_ms")


def find_runs(run_ids: list[str], experiment: str):
    """The runs asked for by id or id prefix, or every run of the experiment but sweep parents."""
    from daeflow.track import queries

    if run_ids:
        return [queries.get_run(run_id) for run_id in run_ids]
    runs = queries.experiment_runs(experiment)
    return [r for r in runs if r.data.tags.get(TAG_COMMAND) != "sweep"]


DIGEST_TAGS = (TAG_TRAIN_DIGEST, TAG_EVALUATION_DIGEST)


def data_digest(run) -> str | None:
    """The content digest of the data a run trained on (or, for evaluate, scored)."""
    return next((run.data.tags[t] for t in DIGEST_TAGS if t in run.data.tags), None)


def data_source(run) -> str:
    """Where a run's data came from, as its params say."""
    params = run.data.params
    for key in ("data.data", "data.clean", "data.clean_path"):
        if params.get(key) not in (None, "None"):
            return str(params[key])
    return "demo photographs" if "data.clean" in params else "?"


def select_data(runs, data: str | None):
    """The runs on one dataset: a digest (or its first characters), or 'same-as:RUN'."""
    from daeflow.track import queries

    if not data:
        return runs
    if data.startswith("same-as:"):
        wanted = data_digest(queries.get_run(data.split(":", 1)[1]))
        if wanted is None:
            raise UsageError(f"Run {data.split(':', 1)[1]!r} recorded no data digest.")
    else:
        wanted = data
    chosen = [r for r in runs if (data_digest(r) or "").startswith(wanted)]
    if not chosen:
        raise UsageError(f"No listed run trained on data {wanted[:12]!r}. See the data column.")
    return chosen


def label(run) -> str:
    """What a run is: an architecture, a classical baseline, or an evaluation of a model."""
    params, tags = run.data.params, run.data.tags
    arch = params.get("arch") or params.get("method", "?")
    if tags.get(TAG_COMMAND) == "evaluate":
        return f"evaluate:{arch}"
    return arch


def key_params(run) -> str:
    """The architecture's hyperparameters or the baseline's tuned ones, compact."""
    params = run.data.params
    chosen = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(("arch.", "tuned."))}
    for name in ("learning_rate", "epochs", "seed"):
        if name in params:
            chosen[name] = params[name]
    return " ".join(f"{k}={v}" for k, v in sorted(chosen.items()))


def rows(runs, metric: str) -> list[dict]:
    """One dict per run, best first by `metric` (runs without it last); old and new names."""
    from daeflow.track.names import internal, value

    metric = internal(metric)
    table = []
    for run in runs:
        m = run.data.metrics
        table.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "arch": label(run),
                "data": data_digest(run),
                "data_source": data_source(run),
                "params": key_params(run),
                **{name: value(m, name) for name in ("test_psnr", "test_ssim", "psnr_gain")},
                **{name: value(m, name) for name in COST},
                "status": run.info.status,
                metric: value(m, metric),
            }
        )
    return sorted(table, key=lambda r: (r[metric] is None, -(r[metric] or 0)))


def _examples(run_id: str):
    from daeflow.track import queries

    path = queries.download_artifact(run_id, EXAMPLES)
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key].astype(np.float32) for key in archive.files}


def sheet(run_rows: list[dict], path: Path) -> Path:
    """A PNG: one row per test example; columns clean, noisy, then each run's output."""
    from PIL import Image

    from daeflow.quality.images import labelled_grid

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
    labels = ["clean", "noisy"] + [f"{r['arch']} {r['test_psnr'] or 0:.2f} dB" for r in same]
    captions = [f"test image {int(i)}" for i in first["indices"]]
    picture = labelled_grid([list(row) for row in zip(*columns, strict=True)], labels, captions)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path
