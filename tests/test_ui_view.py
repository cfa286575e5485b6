"""The MLflow UI view daeflow gives its experiments and runs, without a browser.

tests/test_browser.py opens the same view in headless Chromium.
"""

import json
import shutil
import sqlite3
from pathlib import Path

import mlflow
import pytest

from daeflow.cli.training import ui_hint
from daeflow.cli.ui import experiment_pages, ui_command
from daeflow.track import runs, view
from daeflow.track.names import TAG_COMMAND, TAG_DESCRIPTION, TAG_VIEW, VIEW_KEY

EXAMPLE = Path(__file__).parent.parent / "mlruns.example"
BASE = "http://127.0.0.1:5123"
KEY = f"&viewStateShareKey={VIEW_KEY}"


def saved_state(tags: dict) -> dict:
    """The runs-table state inside an experiment's view tag."""
    return json.loads(json.loads(tags[TAG_VIEW])["state"])


def test_the_view_shows_the_numbers_that_matter_sorted_by_test_psnr():
    state = view.view_state()
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`test/psnr`", False)
    assert state["selectedColumns"] == [
        "metrics.`test/psnr`", "metrics.`test/ssim`", "metrics.`test/psnr_gain`",
        "params.`arch`", "params.`objective`", "metrics.`train/seconds`",
    ]  # fmt: skip
    assert state["columnOrder"] == state["selectedColumns"]
    # The UI's saved-view envelope, as its "Views" menu lists it.
    envelope = json.loads(view.saved_view(1234))
    assert envelope["name"] == view.VIEW_NAME and envelope["createdAt"] == 1234
    assert json.loads(envelope["state"]) == state


def test_a_run_gives_its_experiment_the_view_once(tracking_uri):
    with runs.tracked_run("views", None, {}):
        pass
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("views")
    assert view.has_this_view(experiment.tags)
    first = experiment.tags[TAG_VIEW]
    with runs.tracked_run("views", None, {}):
        pass
    assert client.get_experiment(experiment.experiment_id).tags[TAG_VIEW] == first


def test_an_outdated_view_is_replaced(tracking_uri):
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("views")
    old = json.dumps({"name": "daeflow", "createdAt": 1, "state": json.dumps({"x": 1})})
    client.set_experiment_tag(experiment_id, TAG_VIEW, old)
    with runs.tracked_run("views", None, {}):
        pass
    assert saved_state(client.get_experiment(experiment_id).tags) == view.view_state()


def test_daeflow_ui_opens_the_example_store_in_the_view(tmp_path):
    """The committed store has the view (read without writing), so `daeflow ui` writes nothing."""
    database = EXAMPLE / "mlflow.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        (value,) = db.execute(
            "SELECT value FROM experiment_tags WHERE key = ?", (TAG_VIEW,)
        ).fetchone()
        headlines = db.execute("SELECT value FROM tags WHERE key = ?", (TAG_DESCRIPTION,))
        headlines = [h for (h,) in headlines]
    assert view.has_this_view({TAG_VIEW: value})
    assert len(headlines) == 9 and all(h.startswith("**test PSNR ") for h in headlines)
    # A copy: experiment_pages gives the view to experiments that lack it.
    shutil.copy(database, tmp_path / "mlflow.db")
    pages = dict(experiment_pages(ui_command(tmp_path, None, 5123), BASE))
    assert pages == {
        "daeflow-demo": f"{BASE}/#/experiments/1/runs?workflowType=machine_learning{KEY}"
    }


def test_daeflow_ui_gives_older_daeflow_experiments_the_view_and_leaves_others_alone(
    tracking_uri, tmp_path
):
    client = mlflow.MlflowClient()
    ours = client.create_experiment("ours")
    client.create_run(ours, tags={TAG_COMMAND: "run"})
    theirs = client.create_experiment("theirs")
    client.create_run(theirs)
    pages = dict(experiment_pages(ui_command(tmp_path / "mlflow.db", None, 5123), BASE))
    assert pages["ours"] == f"{BASE}/#/experiments/{ours}/runs?workflowType=machine_learning{KEY}"
    assert pages["theirs"] == f"{BASE}/#/experiments/{theirs}/runs?workflowType=machine_learning"
    assert view.has_this_view(client.get_experiment(ours).tags)
    assert TAG_VIEW not in client.get_experiment(theirs).tags


def test_a_store_that_cannot_be_written_opens_without_the_view(tracking_uri, tmp_path, capfd):
    client = mlflow.MlflowClient()
    ours = client.create_experiment("ours")
    client.create_run(ours, tags={TAG_COMMAND: "run"})
    read_only = f"sqlite:///file:{tmp_path / 'mlflow.db'}?mode=ro&uri=true"
    assert view.view_for(read_only, ours) is False
    assert TAG_VIEW not in client.get_experiment(ours).tags
    assert "Traceback" not in capfd.readouterr().err


def test_the_end_of_a_run_on_a_server_links_its_page_and_the_runs_table():
    hint = ui_hint("http://user:secret@example.org:5000/", "7", "abc123")
    page, table = hint.splitlines()
    assert page == (
        "Open it in a browser: http://example.org:5000/#/experiments/7/runs/abc123"
        "?workflowType=machine_learning"
    )
    assert table.endswith(
        f"http://example.org:5000/#/experiments/7/runs?workflowType=machine_learning{KEY}"
    )


@pytest.mark.parametrize(
    ("extra", "label", "end"),
    [
        ({"best_epoch": 12.0, "train_seconds": 37.4}, "residual_fast",
         "residual_fast, best epoch 12, 37 s of training"),
        ({"train_seconds": 1.44}, "baseline:nlm", "baseline:nlm, 1.4 s"),
        ({}, "evaluate:residual", "evaluate:residual"),
    ],
)  # fmt: skip
def test_a_runs_headline_is_one_line_of_its_test_numbers(extra, label, end):
    metrics = {
        "test_psnr": 28.814, "test_ssim": 0.73521, "noisy_psnr": 21.004,
        "noisy_ssim": 0.33061, "psnr_gain": 7.81, **extra,
    }  # fmt: skip
    (text,) = view.headline(metrics, label).values()
    assert text == (
        "**test PSNR 28.81 dB · SSIM 0.7352** · noisy input 21.00 dB · 0.3306 "
        f"(gain +7.81 dB) · {end}"
    )
