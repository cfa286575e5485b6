"""What the MLflow UI shows first: an experiment's runs table and the top of a run's page.

The runs table: MLflow 3.17's UI keeps saved views of it (columns, widths, sort) as
experiment tags and opens one from a link with `?viewStateShareKey=KEY`. daeflow stores
its view, the test numbers that matter sorted by test PSNR, with every experiment it runs
in, and the links it prints carry the key. Without the key the UI shows run name, date,
dataset, source and model, with the metrics behind "Columns".

A run's page lists its metrics alphabetically, below the fold; the description comes
first, so daeflow writes the test numbers there in one line.
"""

import json
import logging
import time

import mlflow
from mlflow.exceptions import MlflowException

from daeflow.track.names import FINAL, TAG_COMMAND, TAG_DESCRIPTION, TAG_VIEW
from daeflow.track.store import quiet

VIEW_NAME = "daeflow: runs by test PSNR"  # its name in the UI's "Views" menu
OBJECTIVE = "objective"  # the param naming a run's training objective, once runs log one


def column(kind: str, name: str) -> str:
    """A runs-table column as the UI names it: metrics.`test/psnr`, params.`arch`."""
    return f"{kind}.`{name}`"


PSNR = column("metrics", FINAL["test_psnr"])
SHOWN = (  # the view's columns, in order, with their widths in pixels
    (PSNR, 90),
    (column("metrics", FINAL["test_ssim"]), 80),
    (column("metrics", FINAL["psnr_gain"]), 110),
    (column("params", "arch"), 130),
    (column("params", OBJECTIVE), 110),  # shown once a run has it
    (column("metrics", FINAL["train_seconds"]), 110),
)
# The UI's own columns, narrowed so that the view fits beside its assistant panel, which
# it opens on a first visit to a server on localhost.
NARROWED = {"attributes.`Run Name`": 230, "runDateAndNestInfo": 120}


def view_state() -> dict:
    """The runs table's state as the UI saves it: columns, their order and widths, the sort."""
    return {
        "orderByKey": PSNR,
        "orderByAsc": False,
        "selectedColumns": [name for name, _ in SHOWN],
        "columnOrder": [name for name, _ in SHOWN],
        "columnWidths": {**dict(SHOWN), **NARROWED},
    }


def saved_view(created_ms: int) -> str:
    """The tag's value: the UI's saved-view envelope (name, times in ms, state as JSON)."""
    return json.dumps(
        {
            "name": VIEW_NAME,
            "createdAt": created_ms,
            "updatedAt": created_ms,
            "state": json.dumps(view_state()),
        }
    )


def has_this_view(tags: dict | None) -> bool:
    """Whether an experiment's tags hold daeflow's view as this version writes it."""
    try:
        saved = json.loads((tags or {}).get(TAG_VIEW, ""))
    except ValueError:
        return False
    return (
        isinstance(saved, dict)
        and saved.get("name") == VIEW_NAME
        and saved.get("state") == json.dumps(view_state())
    )


def give_view(experiment, client=None) -> None:
    """Store daeflow's runs-table view with the experiment, unless it has it already."""
    if has_this_view(experiment.tags):
        return
    client = client or mlflow.MlflowClient()
    try:
        client.set_experiment_tag(
            experiment.experiment_id, TAG_VIEW, saved_view(int(time.time() * 1000))
        )
    except MlflowException:
        # Runs starting together race to tag it (a unique-key error on PostgreSQL): one wins.
        if TAG_VIEW not in client.get_experiment(experiment.experiment_id).tags:
            raise


def view_for(uri: str, experiment_id: str) -> bool:
    """Whether the links to this experiment of the store at `uri` can carry daeflow's view.

    An experiment with daeflow runs that lacks the view (its runs were logged by an older
    daeflow) is given it; other experiments are left alone, and so is a store that cannot
    be written (the links then open the UI's own table).
    """
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment(experiment_id)
    had = TAG_VIEW in experiment.tags
    if not had:
        ours = f"tags.`{TAG_COMMAND}` LIKE '%'"
        if not client.search_runs([experiment_id], filter_string=ours, max_results=1):
            return False
    try:
        with quiet("mlflow.store.db.utils", below=logging.CRITICAL):  # its traceback
            give_view(experiment, client)
    except MlflowException:
        return had
    return True


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def headline(metrics: dict, label: str) -> dict:
    """A run's description tag: its test numbers in one line of markdown.

    `metrics` has daeflow's internal keys (test_psnr, ...); `label` says what made the
    numbers (`residual_fast`, `baseline:nlm`).
    """
    m = metrics
    made = label
    if m.get("best_epoch") is not None:
        made += f", best epoch {m['best_epoch']:.0f}"
    if m.get("train_seconds") is not None:
        trained = " of training" if m.get("best_epoch") is not None else ""
        made += f", {_seconds(m['train_seconds'])}{trained}"
    if "test_psnr" not in m:  # no clean test images: the objective's loss on noisy ones
        text = f"**test loss {m['test_objective_loss']:.5f}** (no clean images) · {made}"
        return {TAG_DESCRIPTION: text}
    text = (
        f"**test PSNR {m['test_psnr']:.2f} dB · SSIM {m['test_ssim']:.4f}** · "
        f"noisy input {m['noisy_psnr']:.2f} dB · {m['noisy_ssim']:.4f} "
        f"(gain {m['psnr_gain']:+.2f} dB) · {made}"
    )
    return {TAG_DESCRIPTION: text}
