"""What people look at: labelled grids, SVG charts, report pages, notes, compare per dataset."""

import json
import re

import mlflow
import numpy as np
import pytest
from conftest import cli

from daeflow.quality import charts
from daeflow.quality.images import TILE, denoising_grid, labelled_grid
from daeflow.workflow import run_report


def test_a_grid_shows_small_images_large_with_room_for_labels_and_captions():
    clean = np.full((2, 32, 32, 1), 0.5, np.float32)
    picture = denoising_grid(clean, clean + 0.1, clean)
    tile = 256 // 32 * 32  # enlarged by a whole factor to at least 256 pixels
    assert picture.shape[1] >= 4 * tile and picture.shape[0] >= 2 * tile
    # Pixels are squares: an 8x enlargement repeats each value in 8x8 blocks.
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    labels = ["clean", "noisy", "a very long architecture name 31.42 dB"]
    wide = labelled_grid([[clean[0], clean[0], clean[0]]], labels)
    assert wide.shape[1] > 3 * TILE  # the long label widened its column instead of being cut


def test_line_and_scatter_charts_are_svg_with_the_data():
    svg = charts.line_chart(
        {"validation PSNR": [(1, 20.0), (2, 24.5), (3, 26.0)]}, "t", "epoch", "dB"
    )
    assert svg.startswith("<svg") and svg.count("<circle") == 3 and "validation PSNR" in svg
    ticks = re.findall(r'text-anchor="middle">([\d.]+)</text>', svg)
    assert "1.5" not in ticks  # whole epochs only
    scatter = charts.scatter_chart(
        [(10, 20, "a"), (20, 21, "b"), (float("nan"), 1, "c")], "t", "x", "y"
    )
    assert scatter.count("<circle") == 2


def test_notes_say_when_a_run_is_worse_than_its_input_or_a_baseline():
    metrics = {"test_psnr": 18.0, "noisy_psnr": 20.0}
    baselines = [{"method": "nlm", "test_psnr": 29.1, "test_ssim": 0.8, "run_id": "x"}]
    first, second = run_report.notes(metrics, baselines)
    assert first.startswith("The denoised test images (18.00 dB) are worse than the noisy input")
    assert "baseline nlm scores 29.10 dB" in second and "residual_fast" in second
    assert run_report.notes({"test_psnr": 31.0, "noisy_psnr": 20.0}, baselines) == []


def fake_run(client, experiment, digest, psnr, command="run", **params):
    run = client.create_run(
        experiment, tags={"daeflow.command": command, "data.train.sha256": digest}
    )
    client.log_param(run.info.run_id, "arch", "conv_baseline")
    for name, value in params.items():
        client.log_param(run.info.run_id, name.replace("__", "."), value)
    client.log_metric(run.info.run_id, "test/psnr", psnr)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


SPLIT = {"seed": 0, "data__val_fraction": 0.1, "data__test_fraction": 0.1}


def test_compare_ranks_runs_at_different_data_ranges_apart(tracking_uri):
    """12-bit data scored at 65535 read 24 dB higher: that run must not top the 4095 run."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    wrong = fake_run(client, experiment, "d" * 64, 32.7, data__range=65535.0, **SPLIT)
    right = fake_run(client, experiment, "d" * 64, 30.6, data__range=4095.0, **SPLIT)
    text = cli("compare").stdout
    assert text.count("Runs by test_psnr on data dddddddddddd") == 2
    assert "range 65535, test split seed 0 val 0.1 test 0.1" in text
    assert "range 4095, test split seed 0 val 0.1 test 0.1" in text
    assert "scored at different data ranges (65535, 4095)" in text
    assert "pass the same --data-range" in text
    found = json.loads(cli("compare", "--json").stdout)
    tables = {t["data_range"]: t["runs"] for t in found["tables"]}
    assert tables == {"65535": [wrong], "4095": [right]}
    # Other seeds hold out other test images: apart too, and said so.
    fake_run(client, experiment, "d" * 64, 30.0, data__range=4095.0, **{**SPLIT, "seed": 1})
    text = cli("compare").stdout
    assert text.count("Runs by test_psnr on data dddddddddddd") == 3
    assert "on different test splits (seed 0 val 0.1 test 0.1, seed 1 val 0.1 test 0.1)" in text


def test_baselines_of_the_same_range_and_split_join_a_run_when_it_is_shown(tracking_uri):
    """Computed when shown: baselines logged later, in any experiment, of the same data,
    split and range are ranked beside a run; others are not."""
    from daeflow.track import comparable, queries

    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    elsewhere = client.create_experiment("baselines")
    run = fake_run(client, experiment, "e" * 64, 28.0, data__range=4095.0, **SPLIT)
    same = fake_run(client, elsewhere, "e" * 64, 29.5, "baseline", data__range=4095.0, **SPLIT)
    fake_run(client, elsewhere, "e" * 64, 52.0, "baseline", data__range=65535.0, **SPLIT)
    fake_run(client, elsewhere, "e" * 64, 31.0, "baseline", data__range=4095.0, seed=1,
             data__val_fraction=0.1, data__test_fraction=0.1)  # fmt: skip
    wanted = comparable.of_run(mlflow.get_run(run))
    assert [b["run_id"] for b in queries.baselines_for(wanted)] == [same]
    found = json.loads(cli("compare", "--json").stdout)
    (table,) = found["tables"]
    assert [b["run_id"] for b in table["baselines_from_store"]] == [same]
    text = cli("compare").stdout
    assert text.index(same[:8]) < text.index(run[:8])  # ranked in, above the run
    assert "With 1 classical baseline(s) of the same data, test split and data range" in text


def test_compare_keeps_runs_on_different_data_apart(tracking_uri):
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    a = fake_run(client, experiment, "a" * 64, 25.0)
    fake_run(client, experiment, "a" * 64, 27.0)
    b = fake_run(client, experiment, "b" * 64, 31.0)
    table = cli("compare").stdout
    assert "used 2 different datasets" in table
    assert table.count("Runs by test_psnr on data") == 2
    assert "on data aaaaaaaaaaaa" in table and "on data bbbbbbbbbbbb" in table
    same = json.loads(cli("compare", "--data", f"same-as:{a[:8]}", "--json").stdout)
    assert [r["test_psnr"] for r in same["runs"]] == [27.0, 25.0] and same["datasets"] == ["a" * 64]
    only_b = json.loads(cli("compare", "--data", "bbbb", "--json").stdout)
    assert [r["run_id"] for r in only_b["runs"]] == [b]


def test_compare_reads_runs_logged_with_the_old_names(tracking_uri):
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    run = client.create_run(experiment)
    for name, value in (("test_psnr", 24.0), ("train_seconds", 12.0), ("inference_ms", 3.0)):
        client.log_metric(run.info.run_id, name, value)
    (row,) = json.loads(cli("compare", "--json").stdout)["runs"]
    assert (row["test_psnr"], row["train_seconds"], row["inference_ms"]) == (24.0, 12.0, 3.0)


@pytest.mark.parametrize("metric", ["test_psnr", "test/psnr"])
def test_compare_ranks_by_either_name_of_a_metric(tracking_uri, metric):
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    fake_run(client, experiment, "c" * 64, 20.0)
    fake_run(client, experiment, "c" * 64, 30.0)
    rows = json.loads(cli("compare", "--metric", metric, "--json").stdout)["runs"]
    assert [r["test_psnr"] for r in rows] == [30.0, 20.0]


def test_compare_sets_supervised_and_self_supervised_runs_on_one_test_file_in_one_table(
    tracking_uri,
):
    """Each trained on other data (pairs, noisy images alone), all scored on one --test-data
    file: one table with their objective; r2r's --noise names its images' noise, drawn on
    nothing, so it does not set r2r apart."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    test = {"data__range": 255.0, "seed": 0}
    alone = {"data__clean_use": "test scores only", **test}
    supervised = fake_run(client, experiment, "a" * 64, 29.0, **test)  # logged before objectives
    n2v = fake_run(client, experiment, "b" * 64, 27.5, objective="noise2void", **alone)
    r2r = fake_run(client, experiment, "b" * 64, 28.5, objective="r2r", data__noise="gaussian",
                   noise__sigma=25.0, **alone)  # fmt: skip
    n2n = fake_run(client, experiment, "c" * 64, 28.8, objective="noise2noise", **alone)
    for run in (supervised, n2v, r2r, n2n):
        client.set_tag(run, "data.test.sha256", "f" * 64)
    found = json.loads(cli("compare", "--json").stdout)
    (table,) = found["tables"]
    assert table["runs"] == [supervised, n2n, r2r, n2v]
    assert (table["split"], table["noise"], table["data"]) == ("file ffffffffffff", "", "any")
    objectives = {r["run_id"]: r["objective"] for r in found["runs"]}
    assert objectives == {supervised: "supervised", n2v: "noise2void", r2r: "r2r",
                          n2n: "noise2noise"}  # fmt: skip
    text = cli("compare").stdout
    assert text.count("Runs by test_psnr") == 1
    assert "on one test file, whatever they trained on: range 255, test split file" in text
    for name in ("supervised", "noise2void", "r2r", "noise2noise"):
        assert name in text


def test_compare_shows_a_dash_for_runs_without_test_psnr_and_ranks_them_last(tracking_uri):
    """A run without clean test images logs its objective's test loss, no PSNR."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("daeflow")
    tags = {"daeflow.command": "run", "data.train.sha256": "d" * 64}
    unscored = client.create_run(experiment, tags=tags).info.run_id
    for name, value in {"arch": "conv_baseline", "objective": "noise2void", **SPLIT}.items():
        client.log_param(unscored, name.replace("__", "."), value)
    client.log_metric(unscored, "test/objective_loss", 0.01)
    client.set_terminated(unscored)
    low = fake_run(client, experiment, "d" * 64, 5.0, **SPLIT)
    high = fake_run(client, experiment, "d" * 64, 21.0, **SPLIT)
    found = json.loads(cli("compare", "--json").stdout)
    assert [r["run_id"] for r in found["runs"]] == [high, low, unscored]
    assert found["runs"][-1]["test_psnr"] is None
    assert found["runs"][-1]["objective"] == "noise2void"
    text = cli("compare").stdout
    (row,) = [line for line in text.splitlines() if unscored[:8] in line]
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[cells.index("noise2void") + 2] == "-"  # objective, params, PSNR
