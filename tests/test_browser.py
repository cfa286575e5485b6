"""The example store in a real browser: `daeflow ui` on a copy of mlruns.example, headless Chromium.

The copy sits in another folder, so the test also proves that the store's artifact links are
relative to it. Screenshots go to ci-artifacts/ at the repository root.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from html import unescape
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "mlruns.example"
SCREENSHOTS = ROOT / "ci-artifacts"
EXPERIMENT = "daeflow-demo"
RUN_NAMES = {
    "conv_baseline", "conv_deep", "conv_transpose", "resunet", "baseline-nlm", "baseline-tv",
}  # fmt: skip
PNG = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    """Chromium's path; skips the test without it unless DAEFLOW_REQUIRE_BROWSER=1."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    message = "Chromium is not installed (apt-get install chromium)."
    if os.environ.get("DAEFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message} DAEFLOW_REQUIRE_BROWSER=1 requires it.")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, data: dict | None = None) -> bytes:
    """GET `url`, or POST `data` as JSON."""
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`daeflow ui` serving a copy of mlruns.example from another folder; yields its URL."""
    if not (STORE / "mlflow.db").is_file():
        pytest.fail("mlruns.example/ is missing: regenerate it with 'make example-store'.")
    copy = tmp_path_factory.mktemp("elsewhere") / "store"
    shutil.copytree(STORE, copy)
    port = free_port()
    daeflow = Path(sys.executable).parent / "daeflow"
    command = [str(daeflow), "ui", "--store", str(copy), "--port", str(port)]
    log = (copy.parent / "ui.log").open("wb")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    # Its own process group: `daeflow ui` runs `mlflow ui`, which runs uvicorn workers.
    server = subprocess.Popen(
        command, cwd=copy.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (copy.parent / "ui.log").read_text()
            try:
                get(f"{url}/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "daeflow ui did not answer within 60 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def runs(ui):
    """Experiment id and {run name: run id} of the example store, through the REST API."""
    query = urllib.parse.urlencode({"experiment_name": EXPERIMENT})
    experiment = json.loads(get(f"{ui}/api/2.0/mlflow/experiments/get-by-name?{query}"))
    experiment_id = experiment["experiment"]["experiment_id"]
    found = json.loads(
        get(f"{ui}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})
    )["runs"]
    assert {r["info"]["status"] for r in found} == {"FINISHED"}
    return experiment_id, {r["info"]["run_name"]: r["info"]["run_id"] for r in found}


def browse(browser: str, url: str, tmp_path: Path, screenshot: str | None = None) -> str:
    """The DOM of `url` after the page settled in headless Chromium; optionally a screenshot."""
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1600,1000",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
    ]  # fmt: skip
    if screenshot:
        SCREENSHOTS.mkdir(exist_ok=True)
        flags.append(f"--screenshot={SCREENSHOTS / screenshot}")
    else:
        flags.append("--dump-dom")
    result = subprocess.run([*flags, url], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_artifacts_are_served_from_a_copied_store(ui, runs):
    _, ids = runs
    assert set(ids) == RUN_NAMES
    run_id = ids["conv_baseline"]
    listing = json.loads(
        get(f"{ui}/ajax-api/2.0/mlflow/artifacts/list?run_id={run_id}&path=images")
    )
    probes = [f["path"] for f in listing["files"] if f["path"].endswith(".png")]
    assert probes, listing
    for path in ("worst_test_images.png", probes[0]):
        query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
        assert get(f"{ui}/get-artifact?{query}").startswith(PNG), path


def test_compare_page_renders_the_runs(ui, runs, tmp_path):
    browser = chromium()
    experiment_id, ids = runs
    route = "/#/compare-runs?" + urllib.parse.urlencode(
        {"runs": json.dumps(sorted(ids.values())), "experiments": json.dumps([experiment_id])}
    )
    dom = browse(browser, ui + route, tmp_path)
    missing = [name for name in RUN_NAMES if name not in dom]
    assert not missing, f"run names not rendered: {missing}\n{dom[-3000:]}"
    browse(browser, ui + route, tmp_path, screenshot="compare-runs.png")


def test_probe_images_render(ui, runs, tmp_path):
    browser = chromium()
    experiment_id, ids = runs
    route = f"/#/experiments/{experiment_id}?compareRunsMode=CHART"
    dom = browse(browser, ui + route, tmp_path)
    sources = [unescape(s) for s in re.findall(r'<img[^>]*\bsrc="([^"]+)"', dom)]
    probes = [s for s in sources if "get-artifact" in s and "images%2Fprobe" in s]
    assert probes, f"no probe <img> in the chart view; <img> sources: {sources}"
    assert get(urllib.parse.urljoin(ui + "/", probes[0])).startswith(PNG)
    browse(browser, ui + route, tmp_path, screenshot="probe-images.png")
