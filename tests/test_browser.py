"""The example store in a real browser: `daeflow ui` on a copy of mlruns.example, headless Chromium.

The copy sits in another folder than the checkout, so the tests also show that the store's
artifact links are relative to it. Each page's screenshot and DOM go to ci-artifacts/ at the
repository root. Without Chromium the browser tests skip, unless DAEFLOW_REQUIRE_BROWSER=1
(as in CI), which makes them fail.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from html import unescape
from pathlib import Path
from typing import NamedTuple

import pytest


def example_store():
    """scripts/make_example_store.py as a module: its server shutdown serves the test too."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "make_example_store.py"
    spec = importlib.util.spec_from_file_location("make_example_store", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "mlruns.example"
CI_ARTIFACTS = ROOT / "ci-artifacts"
EXPERIMENT = "daeflow-demo"
RUN_NAMES = {
    "conv_baseline", "conv_deep", "conv_transpose", "residual_fast", "resunet",
    "baseline-nlm", "baseline-tv", "sweep",
    "conv_baseline learning_rate=0.003 seed=0", "conv_baseline learning_rate=0.001 seed=0",
}  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"
# A local viewer needs neither MLflow's 4 server workers nor its job runner; both slow the start.
LEAN_SERVER = {"MLFLOW_WORKERS": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path; skips the test without it unless DAEFLOW_REQUIRE_BROWSER=1."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    message = "Chromium is not installed (apt-get install chromium)"
    if os.environ.get("DAEFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message}, and DAEFLOW_REQUIRE_BROWSER=1 requires it.")
    pytest.skip(f"{message}; set DAEFLOW_REQUIRE_BROWSER=1 to fail instead.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UI(NamedTuple):
    url: str
    log: Path  # the server's output, access log included


def fetch(url: str, data: dict | None = None) -> bytes:
    """GET `url`, or POST `data` as JSON."""
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def artifact(ui: UI, run_id: str, path: str) -> bytes:
    """An artifact's bytes through the UI's artifact proxy, as the MLflow UI asks for it."""
    query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
    return fetch(f"{ui.url}/get-artifact?{query}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`daeflow ui` serving a copy of mlruns.example from another folder."""
    if not (STORE / "mlflow.db").is_file():
        pytest.fail("mlruns.example/ is missing; regenerate it with 'make example-store'.")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    copy = elsewhere / "store"
    shutil.copytree(STORE, copy)
    port = free_port()
    daeflow = Path(sys.executable).parent / "daeflow"
    log_path = elsewhere / "ui.log"
    env = {**os.environ, **LEAN_SERVER, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as log:
        # A process group of its own: `daeflow ui` runs `mlflow ui`, which runs uvicorn.
        server = subprocess.Popen(
            [str(daeflow), "ui", "--store", str(copy), "--port", str(port)],
            cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log_path.read_text(errors="replace")
            try:
                fetch(f"{url}/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "daeflow ui did not answer within 90 s"
                time.sleep(0.5)
        yield UI(url, log_path)
    finally:
        example_store().stop(server)


@pytest.fixture(scope="module")
def runs(ui):
    """Experiment id and {run name: run info} of the example store, through the REST API."""
    query = urllib.parse.urlencode({"experiment_name": EXPERIMENT})
    experiment = json.loads(fetch(f"{ui.url}/api/2.0/mlflow/experiments/get-by-name?{query}"))
    experiment_id = experiment["experiment"]["experiment_id"]
    search = {"experiment_ids": [experiment_id], "max_results": 100}
    found = json.loads(fetch(f"{ui.url}/api/2.0/mlflow/runs/search", search))["runs"]
    return experiment_id, {r["info"]["run_name"]: r["info"] for r in found}


@pytest.fixture(scope="module")
def browser(chromium):
    """Headless Chromium (Debian's) driven through Playwright, which waits in real time."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("DAEFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail("playwright is not installed (pip install -e '.[test]').")
        pytest.skip("playwright is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


def visit(browser, url: str):
    """A new 1600x1000 page at `url`."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(url)
    return page


def keep(page, name: str) -> str:
    """Save the page's screenshot and DOM as ci-artifacts/NAME.*; return the DOM."""
    CI_ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(CI_ARTIFACTS / f"{name}.png"))
    dom = page.content()
    (CI_ARTIFACTS / f"{name}.html").write_text(dom)
    assert (CI_ARTIFACTS / f"{name}.png").read_bytes().startswith(PNG)
    return dom


def images(dom: str) -> list[str]:
    """The src of every <img> in a DOM dump."""
    return [unescape(src) for src in re.findall(r'<img\b[^>]*?\bsrc="([^"]*)"', dom)]


def probe_images(ui: UI, run_id: str) -> list[str]:
    """The run's probe grids (mlflow.log_image(key="probe", step=epoch)), in step order."""
    query = urllib.parse.urlencode({"run_id": run_id, "path": "images"})
    listing = json.loads(fetch(f"{ui.url}/api/2.0/mlflow/artifacts/list?{query}"))
    paths = [f["path"] for f in listing.get("files", []) if f["path"].endswith(".png")]
    return sorted(paths, key=lambda p: int(re.search(r"\+step\+(\d+)\+", p).group(1)))


def served_artifacts(ui: UI) -> set[tuple[str, str]]:
    """(run id, path) of every artifact the UI's proxy answered with 200 so far."""
    requests = re.findall(r'"GET /get-artifact\?(\S+) HTTP/[\d.]+" 200', ui.log.read_text())
    served = set()
    for query in requests:
        fields = dict(urllib.parse.parse_qsl(query))
        served.add((fields.get("run_uuid"), fields.get("path")))
    return served


def test_rest_api_and_artifact_proxy_serve_a_copied_store(ui, runs):
    _, infos = runs
    assert set(infos) == RUN_NAMES
    for info in infos.values():
        assert info["status"] == "FINISHED"
        assert info["artifact_uri"].startswith("mlflow-artifacts:/")  # relative to the store
        run_id = info["run_id"]
        assert artifact(ui, run_id, "report.html").startswith(b"<!DOCTYPE html>")
        if info["run_name"] == "sweep":
            continue  # the parent trains nothing itself
        probes = probe_images(ui, run_id)
        assert probes, f"{info['run_name']} logged no probe images under images/"
        for path in ("worst_test_images.png", probes[-1]):
            assert artifact(ui, run_id, path).startswith(PNG), (info["run_name"], path)


def test_compare_page_renders_every_run(browser, ui, runs):
    experiment_id, infos = runs
    query = urllib.parse.urlencode(
        {
            "runs": json.dumps(sorted(i["run_id"] for i in infos.values())),
            "experiments": json.dumps([experiment_id]),
        }
    )
    page = visit(browser, f"{ui.url}/#/compare-runs?{query}")
    page.get_by_text(f"Comparing {len(infos)} Runs").wait_for(timeout=30_000)
    dom = keep(page, "compare-runs")
    missing = sorted(name for name in RUN_NAMES if name not in dom)
    assert not missing, f"run names missing from the comparison page: {missing}"


def printed_experiment_page(ui: UI) -> str:
    """The URL `daeflow ui` printed for the example experiment."""
    found = re.search(rf"{EXPERIMENT}: (http://\S+)", ui.log.read_text(errors="replace"))
    assert found, ui.log.read_text(errors="replace")[:2000]
    return found.group(1)


def test_the_experiment_opens_on_its_runs_table_sorted_by_test_psnr(browser, ui, runs):
    """The link `daeflow ui` prints (and `daeflow run` against a server) opens daeflow's view."""
    from daeflow.cli.training import ui_hint
    from daeflow.track import view

    experiment_id, infos = runs
    query = urllib.parse.urlencode({"experiment_id": experiment_id})
    experiment = json.loads(fetch(f"{ui.url}/api/2.0/mlflow/experiments/get?{query}"))
    tags = {t["key"]: t["value"] for t in experiment["experiment"].get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    url = printed_experiment_page(ui)
    assert url.endswith("&viewStateShareKey=daeflow")
    any_run = infos["conv_deep"]["run_id"]
    assert ui_hint(ui.url, experiment_id, any_run).splitlines()[1].endswith(f": {url}")
    page = visit(browser, url)
    page.get_by_role("link", name="residual_fast", exact=True).wait_for(timeout=30_000)
    header = page.locator(f".ag-header-cell[col-id='{view.PSNR}']")
    header.wait_for(timeout=30_000)
    dom = keep(page, "runs-table")
    assert page.locator("h2", has_text="Runs").count() == 1
    assert page.locator("h2", has_text="Overview").count() == 0  # not the GenAI overview
    assert view.VIEW_NAME in dom  # the UI's "Views" menu names the view it shows
    # The view's columns, left to right, all on the first screen beside the UI's assistant
    # panel (which it opens on a first visit); `objective` appears once runs log one.
    columns = [name for name, _ in view.SHOWN if view.OBJECTIVE not in name]
    boxes = [page.locator(f".ag-header-cell[col-id='{c}']").bounding_box() for c in columns]
    assert all(b is not None for b in boxes), columns
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
    assert max(b["x"] + b["width"] for b in boxes) <= 1600
    # Rows by test PSNR, best first; the sweep's parent has none and comes last.
    psnr = psnr_by_run(ui, experiment_id)
    shown = []
    for row in range(len(infos)):
        cell = page.locator(f".ag-row[row-index='{row}'] [col-id='attributes.`Run Name`']")
        shown.append(cell.locator("a").first.inner_text().strip())  # the run's link
    assert shown == sorted(psnr, key=psnr.get, reverse=True) + ["sweep"], shown


def psnr_by_run(ui: UI, experiment_id: str) -> dict[str, float]:
    """{run name: test/psnr} of the runs that have one, through the REST API."""
    search = {"experiment_ids": [experiment_id], "max_results": 100}
    found = json.loads(fetch(f"{ui.url}/api/2.0/mlflow/runs/search", search))["runs"]
    return {
        r["info"]["run_name"]: m["value"]
        for r in found
        for m in r["data"].get("metrics", [])
        if m["key"] == "test/psnr"
    }


def test_a_runs_page_shows_its_test_numbers_first(browser, ui, runs):
    """The run's page as `daeflow run` links it: its headline before the metrics list."""
    from daeflow.track.queries import ui_page

    experiment_id, infos = runs
    run_id = infos["residual_fast"]["run_id"]
    query = urllib.parse.urlencode({"run_id": run_id})
    run = json.loads(fetch(f"{ui.url}/api/2.0/mlflow/runs/get?{query}"))["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    bold = re.match(r"\*\*(.+?)\*\*", tags["mlflow.note.content"]).group(1)
    assert bold.startswith("test PSNR 28.81 dB")
    page = visit(browser, ui_page(ui.url, experiment_id, run_id))
    headline = page.locator("strong", has_text=bold)  # the markdown, rendered
    headline.wait_for(timeout=30_000)
    metrics = page.get_by_text(re.compile(r"^Metrics \(\d+\)$"))
    metrics.wait_for(timeout=30_000)
    keep(page, "run-overview")
    box = headline.bounding_box()
    assert box is not None and box["y"] + box["height"] < 1000, "the headline is below the fold"
    assert box["y"] < metrics.bounding_box()["y"]


def test_a_runs_first_metrics_screen_shows_validation_psnr(browser, ui, runs):
    experiment_id, infos = runs
    run_id = infos["residual_fast"]["run_id"]
    route = f"/#/experiments/{experiment_id}/runs/{run_id}/model-metrics"
    page = visit(browser, f"{ui.url}{route}?workflowType=machine_learning")
    start = time.monotonic()
    chart = page.locator("[data-testid*='chart'], div").filter(has_text="val_psnr").last
    chart.wait_for(timeout=30_000)
    page.locator("svg.main-svg").first.wait_for(timeout=30_000)  # a drawn plotly chart
    drawn = time.monotonic() - start
    keep(page, "run-metrics")
    # The chart sections, top to bottom: the per-epoch curves first, then the rest.
    headers = page.get_by_text(re.compile(r"^(epoch|model|test|train)$"), exact=True)
    titles = [h.inner_text() for h in headers.all()]
    assert titles[0] == "epoch" and {"model", "test", "train"} <= set(titles), titles
    assert drawn < 30
    box = page.get_by_text("val_psnr", exact=True).first.bounding_box()
    assert box is not None and box["y"] < 1000, "val_psnr is below the first screen"


def test_the_probe_grid_is_readable_and_labelled(browser, ui, runs):
    experiment_id, infos = runs
    run_id = infos["resunet"]["run_id"]
    probe = probe_images(ui, run_id)[-1]  # the last epoch's grid
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(artifact(ui, run_id, probe))) as picture:
        width, height = picture.size
    assert width >= 4 * 256 and height >= 4 * 256, (width, height)  # 4 columns, 4 rows
    route = f"/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{probe}"
    page = visit(browser, f"{ui.url}{route}?workflowType=machine_learning")
    shown = page.locator(f"img[alt='{probe}']")
    shown.wait_for(timeout=30_000)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=shown.element_handle()
    )
    keep(page, "probe-image")
    assert shown.get_attribute("src").startswith(f"blob:{ui.url}/")
    assert (run_id, probe) in served_artifacts(ui), "the browser did not fetch the probe image"


@pytest.mark.parametrize("run_name", ["residual_fast", "baseline-nlm", "sweep"])
def test_report_html_loads_with_its_pictures(browser, ui, runs, run_name):
    """The page as the UI's artifact view shows it (fetched through the artifact endpoint)."""
    experiment_id, infos = runs
    run_id = infos[run_name]["run_id"]
    route = f"/#/experiments/{experiment_id}/runs/{run_id}/artifacts/report.html"
    page = visit(browser, f"{ui.url}{route}?workflowType=machine_learning")
    page.locator("iframe").first.wait_for(timeout=30_000)
    report = next(f for f in page.frames if f != page.main_frame)
    report.locator("h1").wait_for(timeout=30_000)
    report.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    loaded = report.evaluate("() => [...document.images].map(i => i.naturalWidth > 0)")
    charts = report.locator("svg").count()
    keep(page, f"report-{run_name.replace('-', '_')}")
    assert (run_id, "report.html") in served_artifacts(ui)
    if run_name == "sweep":
        assert charts == 1 and report.get_by_text("Every run").count() == 1
    else:
        assert len(loaded) == 2 and all(loaded), loaded  # probe grid and worst test images
        assert charts == (2 if run_name == "residual_fast" else 0)
        assert report.get_by_text("noisy input").count() >= 1


def test_a_registered_version_shows_its_model_card(browser, ui, runs):
    """`daeflow register` against the UI's server; the version page renders the card's table."""
    from conftest import cli

    _, infos = runs
    run_id = infos["residual_fast"]["run_id"]
    cli("register", run_id, "--name", "denoiser", "--alias", "champion", "--tracking-uri", ui.url)
    page = visit(browser, f"{ui.url}/#/models/denoiser/versions/1")
    cell = page.locator("table td", has_text="this model")
    cell.wait_for(timeout=30_000)
    dom = keep(page, "model-version")
    assert page.locator("table td", has_text="noisy input").count() == 1
    assert "champion" in dom and "residual_fast" in dom
    box = cell.bounding_box()
    assert box is not None and box["y"] < 1000, "the card's table is below the first screen"
