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
    "conv_baseline", "conv_deep", "conv_transpose", "resunet", "baseline-nlm", "baseline-tv",
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


def browse(chromium: str, url: str, name: str, tmp_path: Path) -> str:
    """Load `url` in headless Chromium; save its screenshot and DOM as ci-artifacts/NAME.*.

    One call both dumps the DOM and takes the screenshot, which halves the test's time.
    """
    CI_ARTIFACTS.mkdir(exist_ok=True)
    screenshot = CI_ARTIFACTS / f"{name}.png"
    screenshot.unlink(missing_ok=True)
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp_path / name}",
        "--virtual-time-budget=20000", "--window-size=1600,1000",
        "--dump-dom", f"--screenshot={screenshot}", url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (CI_ARTIFACTS / f"{name}.html").write_text(result.stdout)
    assert screenshot.read_bytes().startswith(PNG)
    return result.stdout


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
        probes = probe_images(ui, run_id)
        assert probes, f"{info['run_name']} logged no probe images under images/"
        for path in ("worst_test_images.png", probes[-1]):
            assert artifact(ui, run_id, path).startswith(PNG), (info["run_name"], path)


def test_compare_page_renders_every_run(chromium, ui, runs, tmp_path):
    experiment_id, infos = runs
    query = urllib.parse.urlencode(
        {
            "runs": json.dumps(sorted(i["run_id"] for i in infos.values())),
            "experiments": json.dumps([experiment_id]),
        }
    )
    dom = browse(chromium, f"{ui.url}/#/compare-runs?{query}", "compare-runs", tmp_path)
    assert f"Comparing {len(RUN_NAMES)} Runs" in dom
    missing = sorted(name for name in RUN_NAMES if name not in dom)
    assert not missing, f"run names missing from the comparison page: {missing}"


def test_run_page_shows_the_probe_image(chromium, ui, runs, tmp_path):
    experiment_id, infos = runs
    run_id = infos["resunet"]["run_id"]
    probe = probe_images(ui, run_id)[-1]  # the last epoch's grid
    route = f"/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{probe}"
    dom = browse(chromium, ui.url + route, "probe-image", tmp_path)
    # The viewer fetches the PNG through the artifact proxy and shows it from a blob: URL.
    shown = [
        unescape(src)
        for alt, src in re.findall(r'<img\b[^>]*?\balt="([^"]*)"[^>]*?\bsrc="([^"]*)"', dom)
        if unescape(alt) == probe
    ]
    assert shown and shown[0].startswith(f"blob:{ui.url}/"), images(dom)
    assert (run_id, probe) in served_artifacts(ui), "the browser did not fetch the probe image"
    assert artifact(ui, run_id, probe).startswith(PNG)
