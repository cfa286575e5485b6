"""Rank runs by a metric, one table per data, test split and data range (only runs scored
on the same can be ranked), and set their test images side by side.

Runs scored on the same --test-data file share a table whatever they trained on: supervised
runs on clean/noisy pairs and self-supervised ones on noisy images alone, each with its
objective."""

from pathlib import Path

import numpy as np

from daeflow.errors import UsageError
from daeflow.track import comparable
from daeflow.track.names import TAG_COMMAND
from daeflow.train.objectives import SUPERVISED
from daeflow.workflow.run_report import EXAMPLES

COST = ("trainable_params", "train_seconds", "train_images_per_second", "inference_ms")
TEST_FILE = "file "  # how comparable words the test split of runs scored on --test-data
ANY_TRAINING = "any"  # a table's data when its runs were scored on a test file


def find_runs(run_ids: list[str], experiment: str):
    """The runs asked for by id or id prefix, or every run of the experiment but sweep parents."""
    from daeflow.track import queries

    if run_ids:
        return [queries.get_run(run_id) for run_id in run_ids]
    runs = queries.experiment_runs(experiment)
    return [r for r in runs if r.data.tags.get(TAG_COMMAND) != "sweep"]


def data_digest(run) -> str | None:
    """The content digest of the data a run trained on (or, for evaluate, scored)."""
    return comparable.data_digest(run.data.tags)


def data_source(run) -> str:
    """Where a run's data came from, as its params say."""
    params = run.data.params
    for key in ("data.data", "data.clean", "data.clean_path", "data.noisy"):
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


def objective(run) -> str | None:
    """The training objective of a run (supervised for runs logged before objectives
    existed); None for classical baselines, which train nothing."""
    if run.data.tags.get(TAG_COMMAND) == "baseline":
        return None
    return run.data.params.get("objective", SUPERVISED)


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
        scored = comparable.of_run(run)
        table.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "arch": label(run),
                "objective": objective(run),
                "data": data_digest(run),
                "data_source": data_source(run),
                "data_range": scored.data_range,
                "split": scored.split,
                "noise": scored.noise,
                "command": run.data.tags.get(TAG_COMMAND),
                "params": key_params(run),
                **{name: value(m, name) for name in ("test_psnr", "test_ssim", "psnr_gain")},
                **{name: value(m, name) for name in COST},
                "status": run.info.status,
                metric: value(m, metric),
            }
        )
    return ranked(table, metric)


def ranked(table: list[dict], metric: str) -> list[dict]:
    """Rows best first by `metric`, rows without it last."""
    return sorted(table, key=lambda r: (r[metric] is None, -(r[metric] or 0)))


def scored_on(row: dict) -> comparable.ScoredOn:
    """What a row's numbers were measured on."""
    data = row["data"] or comparable.UNKNOWN
    return comparable.ScoredOn(data, row["noise"], row["split"], row["data_range"])


def table_key(row: dict) -> comparable.ScoredOn:
    """Which table a row joins: what it was scored on, but for a run scored on a test file
    (--test-data), whose test images are that file whatever the run trained on."""
    key = scored_on(row)
    if key.split.startswith(TEST_FILE):
        return comparable.ScoredOn(ANY_TRAINING, key.noise, key.split, key.data_range)
    return key


def tables(table: list[dict]) -> dict:
    """Rows that may be ranked together: {ScoredOn: rows}, in the order of the rows."""
    groups = {}
    for row in table:
        groups.setdefault(table_key(row), []).append(row)
    return groups


def stored_baselines(groups: dict, metric: str) -> dict:
    """Each table with the classical baselines of its data, test split and data range that
    the store holds (in any experiment) and the table lacks, ranked in: the comparison as it
    stands now, whenever a baseline was logged."""
    from daeflow.track import queries

    added = {}
    for key, shown in groups.items():
        listed = {r["run_id"] for r in shown}
        if all(r["command"] == "baseline" for r in shown):
            continue  # only baselines: nothing to set more of them against
        keys = dict.fromkeys(scored_on(r) for r in shown) if key.data == ANY_TRAINING else [key]
        found = {run.info.run_id: run for k in keys for run in queries.baseline_runs(k)}
        extra = [run for run_id, run in found.items() if run_id not in listed]
        if extra:
            added[key] = rows(extra, metric)
    return added


APART = {  # why runs on the same data can still not be ranked together
    "data_range": "at different data ranges",
    "split": "on different test splits",
    "noise": "with different synthetic noise",
}


def apart(groups: dict) -> list[str]:
    """One line per dataset whose runs fall in several tables: what differs, and what to do."""
    by_data = {}
    for key in groups:
        if key.data != ANY_TRAINING:  # tables of test files differ by their file: said so
            by_data.setdefault(key.data, []).append(key)
    lines = []
    for data, keys in by_data.items():
        if len(keys) < 2:
            continue
        differing = dict.fromkeys(name for k in keys[1:] for name in keys[0].differences(k))
        phrases = [
            f"{APART[name]} ({', '.join(dict.fromkeys(getattr(k, name) or 'none' for k in keys))})"
            for name in differing
        ]
        advice = ""
        if "data_range" in differing:
            advice = " A PSNR depends on the data range: pass the same --data-range to compare."
        lines.append(
            f"The runs on data {data[:12]} were scored {' and '.join(phrases)}, so they are "
            f"ranked in {len(keys)} separate tables.{advice}"
        )
    return lines


def _examples(run_id: str):
    from daeflow.track import queries

    path = queries.download_artifact(run_id, EXAMPLES)
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as archive:
        members = {key: archive[key] for key in archive.files}  # each inflated once
    return {
        key: value if value.dtype.kind == "U" else value.astype(np.float32)
        for key, value in members.items()
    }


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
    labels = ["clean", "noisy"] + [_sheet_label(r) for r in same]
    captions = [str(c) for c in first.get("captions", [])]  # none in runs logged before
    if len(captions) != len(first["indices"]):
        captions = [f"test image {int(i)}" for i in first["indices"]]
    picture = labelled_grid([list(row) for row in zip(*columns, strict=True)], labels, captions)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path


def _sheet_label(row: dict) -> str:
    """'residual_fast 29.12 dB', with the objective when it is not supervised."""
    words = [row["arch"]]
    if row["objective"] not in (None, SUPERVISED):
        words.append(row["objective"])
    if row["test_psnr"] is not None:
        words.append(f"{row['test_psnr']:.2f} dB")
    return " ".join(words)
