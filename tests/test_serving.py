"""From a run to a served model: the registry through a real `mlflow server`, the pyfunc on raw
images, `daeflow serve` (MLflow's scoring server) answering like `daeflow denoise`, and exports
checked against Keras.
"""

import base64
import io
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import Server, cli, free_port, one_error_line

pytestmark = pytest.mark.slow
NAME = "denoiser"


def photo(dtype=np.uint8) -> np.ndarray:
    """A real photograph (scikit-learn's sample), 96 x 128 x 3, noisy, in `dtype`."""
    from sklearn.datasets import load_sample_images

    image = load_sample_images().images[0][100:196, 200:328].astype(np.float64)
    scale = 257.0 if dtype == np.uint16 else 1.0
    noisy = image * scale + np.random.default_rng(1).normal(0, 25 * scale, image.shape)
    return np.clip(np.rint(noisy), 0, 255 * scale).astype(dtype)


@pytest.fixture(scope="module")
def registry(tmp_path_factory, migrated_store):
    """A store where `run --register` made version 1 and `register --alias` version 2.

    Built once for all xdist workers (the first takes a lock, the others wait and share it):
    training and registering cost 20-30 s, and module fixtures may be built per worker.
    """
    import fcntl

    base = tmp_path_factory.getbasetemp()
    tmp = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "serving"
    uri = f"sqlite:///{tmp}/mlflow.db"
    tmp.mkdir(exist_ok=True)
    with open(tmp / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tmp / "run_id").is_file():
            shutil.copy(migrated_store, tmp / "mlflow.db")
            here = os.getcwd()
            os.chdir(tmp)  # MLflow's local artifacts go beside the store
            try:
                out = cli("run", "--epochs", "2", "--register", NAME, "--tracking-uri", uri).output
                run_id = out.split("MLflow run ")[1].split()[0]
                assert f"as models:/{NAME}/1." in out
                done = cli("register", run_id[:8], "--name", NAME, "--alias", "champion",
                           "--tracking-uri", uri)  # fmt: skip
                assert f"models:/{NAME}@champion" in done.output
            finally:
                os.chdir(here)
            (tmp / "run_id").write_text(run_id)
    return uri, (tmp / "run_id").read_text(), tmp


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def test_the_registered_model_has_versions_an_alias_and_a_model_card(registry):
    """Through a real `mlflow server`'s REST API, as the MLflow UI reads it."""
    uri, run_id, tmp = registry
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--backend-store-uri", uri]
    with open(tmp / "server.log", "ab") as log:
        server = Server(command, port, log).start()
        try:
            check_registry_over_rest(f"{server.url}/api/2.0/mlflow", run_id)
        finally:
            server.stop()


def check_registry_over_rest(api: str, run_id: str) -> None:
    model = get_json(f"{api}/registered-models/get?name={NAME}")["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "2"}]
    assert "model card" in model["description"]
    for version in ("1", "2"):
        found = get_json(f"{api}/model-versions/get?name={NAME}&version={version}")
        entry = found["model_version"]
        assert entry["run_id"] == run_id
        card = entry["description"]
        assert card.startswith(f"# {NAME}: `conv_baseline` denoiser")
        assert "| this model |" in card and "| noisy input |" in card
        assert "data range 255" in card and "SHA-256" in card and "precision" in card
        tags = {t["key"]: t["value"] for t in entry["tags"]}
        assert tags["arch"] == "conv_baseline" and tags["data.dtype"] == "uint8"
        assert tags["daeflow.model_check"] == "passed"
        assert float(tags["test_psnr"]) > 0
    assert f"models:/{NAME}@champion" in card


def denoise_cli(image: np.ndarray, folder: Path, uri: str, tracking_uri: str) -> np.ndarray:
    np.save(folder / "in.npy", image)
    cli("denoise", folder / "in.npy", "-o", folder / "out.npy", "--model", uri,
        "--tracking-uri", tracking_uri)  # fmt: skip
    return np.load(folder / "out.npy")


def test_the_pyfunc_takes_uint16_images_and_returns_uint16(registry, tmp_path, monkeypatch):
    import mlflow

    uri, _, _ = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    image = photo(np.uint16)
    denoised = model.predict(image)
    assert denoised.dtype == np.uint16 and denoised.shape == image.shape
    expected = denoise_cli(image, tmp_path, f"models:/{NAME}@champion", uri)
    assert np.array_equal(denoised, expected)
    # Smaller tiles give the same image: no seams.
    tiled = model.predict(image, params={"tile": 32})
    assert np.abs(tiled.astype(int) - expected).max() <= 1
    # JSON gives int64: the dtype is named, or the model's training dtype is taken.
    as_json = np.asarray(image.tolist())
    assert np.array_equal(model.predict(as_json, params={"dtype": "uint16"}), expected)
    as_uint8 = model.predict(np.asarray(photo().tolist()))
    assert as_uint8.dtype == np.uint8


def post(
    url: str, body: bytes, chunked: bool = False, content_type: str = "application/json"
) -> tuple[int, dict]:
    """POST `body`, with its Content-Length or (chunked) as a stream of 64 KiB pieces."""
    data = (body[i : i + 2**16] for i in range(0, len(body), 2**16)) if chunked else body
    request = urllib.request.Request(
        f"{url}/invocations", data=data, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        reply = error.read()
        assert len(reply) < 1000, reply[:300]  # one sentence: no echo, no stack trace
        answer = json.loads(reply)
        assert set(answer) == {"error_code", "message"}, answer
        assert "Traceback" not in answer["message"], answer["message"]
        return error.code, answer


def npy_base64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, image)
    return base64.b64encode(buffer.getvalue()).decode()


LIAR = base64.b64encode(  # a .npy header claiming 37 GiB, and no data
    b"\x93NUMPY\x01\x00v\x00"
    + b"{'descr': '|u1', 'fortran_order': False, 'shape': (1, 200000, 200000, 1), }".ljust(117)
    + b"\n"
).decode()
MALFORMED = [
    (b"{not json", "valid JSON"),
    (b'{"inputs": "a string"}', "non-empty numeric"),
    (b'{"inputs": [[1, 2], [3]]}', "inhomogeneous"),
    (json.dumps({"inputs": np.zeros((4, 8, 8, 1)).tolist()}).encode(), "3-channel"),
    (b'{"inputs": [[[1, 2, 3]]], "params": {"dtype": "int7"}}', "int7"),
    (b'{"inputs": [[[-5, 2, 3]]], "params": {"dtype": "uint8"}}', "does not fit"),
    (b'{"inputs": "bm90IG5weQ==", "params": {"encoding": "npy_base64"}}', "not a base64"),
    (b'{"inputs": [[[1, 2, 3]]], "params": {"encoding": "png"}}', "'encoding' must be"),
    # A header claiming 37 GiB in a 300-byte request, and 5 MB that are no .npy file:
    # one sentence each, no stack trace, the request not echoed back.
    (json.dumps({"inputs": LIAR, "params": {"encoding": "npy_base64"}}).encode(), "max_bytes"),
    (b'{"inputs": "' + b"A" * 5 * 2**20 + b'", "params": {"encoding": "npy_base64"}}', "magic"),
    # MLflow's own refusals, before daeflow's predict: its JSON error puts the whole body
    # into the message ("Input: ..."), its params check the whole input ("Failed to
    # predict data '...'"); a body nested deeper than json.loads can go is no 500.
    (b"{" + b"x" * 2 * 2**20, "property name enclosed"),
    (json.dumps({"inputs": "A" * 2**20, "params": {"max_bytes": "lots"}}).encode(), "lots"),
    (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"inputs": "' + b"\xff" * 2**20 + b'"}', "not UTF-8 text"),
]
MAX_BODY = 8 * 10**6  # above the 5 MB requests of MALFORMED


@pytest.fixture(scope="module")
def scorer(registry):
    """`daeflow serve models:/denoiser@champion --max-body 8 MB` (MLflow's scoring app on
    the checked copy, behind daeflow's guard) from a venv that is not activated."""
    uri, _, tmp = registry
    port = free_port()
    command = [sys.executable, "-m", "daeflow", "serve", f"models:/{NAME}@champion",
               "--tracking-uri", uri, "--host", "127.0.0.1", "--port", str(port),
               "--max-body", str(MAX_BODY)]  # fmt: skip
    log_file = tmp / f"serve-{port}.log"
    with pytest.MonkeyPatch.context() as patch, open(log_file, "ab") as log:
        patch.setenv("PATH", "/usr/bin:/bin")  # no venv: its uvicorn and mlflow are not here
        assert shutil.which("uvicorn") is None and shutil.which("mlflow") is None
        server = Server(command, port, log).start()
    server.log_file = log_file
    yield server
    server.stop()


def test_daeflow_serve_answers_as_daeflow_denoise(registry, scorer, tmp_path):
    """uint8 and uint16 images as MLflow's JSON tensors and as a base64 .npy give what
    `daeflow denoise` gives, bit for bit."""
    uri, _, _ = registry
    for dtype in (np.uint8, np.uint16):
        image = photo(dtype)
        expected = denoise_cli(image, tmp_path, f"models:/{NAME}@champion", uri)
        params = {"dtype": np.dtype(dtype).name}
        status, answer = post(
            scorer.url, json.dumps({"inputs": image.tolist(), "params": params}).encode()
        )
        assert status == 200, answer
        served = np.asarray(answer["predictions"])
        assert served.shape == image.shape and np.array_equal(served, expected), dtype
        body = {"inputs": npy_base64(image), "params": {"encoding": "npy_base64"}}
        status, answer = post(scorer.url, json.dumps(body).encode(), chunked=dtype == np.uint16)
        assert status == 200, answer
        served = np.load(io.BytesIO(base64.b64decode(answer["predictions"])))
        assert served.dtype == dtype and np.array_equal(served, expected), dtype


@pytest.mark.parametrize(
    "body, fragment", MALFORMED, ids=[f"{i}-{m.split()[0]}" for i, (_, m) in enumerate(MALFORMED)]
)
def test_daeflow_serve_answers_a_bad_request_with_400_and_one_sentence(scorer, body, fragment):
    """HTTP 400, {"error_code", "message"}: under 1000 bytes, no stack trace, no echo."""
    status, answer = post(scorer.url, body)
    assert status == 400, (body[:40], status, answer)
    assert fragment in answer["message"], (fragment, answer["message"])
    for copied in ("AAAAAAAAAA", "xxxxxxxxxx", "xffxffxff"):
        assert copied not in answer["message"], answer["message"]


def test_a_bad_csv_body_gets_400_without_mlflows_stack_trace(scorer):
    status, answer = post(scorer.url, b'a,b\n1,2,3,4\n"' + b"z" * 5000, content_type="text/csv")
    assert status == 400 and "CSV-formatted" in answer["message"], answer


def test_the_servers_log_has_what_the_client_is_not_told(scorer):
    post(scorer.url, b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    log = scorer.log_file.read_text(errors="replace")
    assert "RecursionError" in log and "Traceback" in log


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_daeflow_serve_refuses_a_body_over_its_limit_with_413(scorer, chunked):
    body = b'{"inputs": "' + b"A" * (MAX_BODY + 10**6) + b'"}'
    status, answer = post(scorer.url, body, chunked=chunked)
    assert status == 413, (status, answer)
    assert "larger than the 7.6 MiB this server takes" in answer["message"], answer
    assert post(scorer.url, b"{not json")[0] == 400  # the connection and server still serve


@pytest.mark.parametrize("fmt, name", [("savedmodel", "exported"), ("onnx", "model.onnx")])
def test_export_matches_keras_on_a_real_image(registry, tmp_path, fmt, name):
    from daeflow.infer.loading import load_denoiser
    from daeflow.workflow.export import run_exported

    uri, _, _ = registry
    target = tmp_path / name
    done = cli("export", f"models:/{NAME}@champion", "--format", fmt, "-o", target,
               "--tracking-uri", uri)  # fmt: skip
    assert "differs from Keras's by at most" in done.output
    image = (photo().astype(np.float32) / 255)[None]
    denoiser = load_denoiser(f"models:/{NAME}@champion")
    expected = np.asarray(denoiser.model.predict_on_batch(image))
    actual, _ = run_exported(fmt, target, image)
    assert np.abs(actual - expected).max() < 1e-4
    metadata_file = (
        target / "daeflow.json" if fmt == "savedmodel" else Path(f"{target}.daeflow.json")
    )
    metadata = json.loads(metadata_file.read_text())
    assert metadata["data_range"] == 255 and metadata["tile_margin"] == 32
    assert metadata["channels"] == 3 and metadata["data_dtype"] == "uint8"
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(target)).metadata_props}
        assert json.loads(props["daeflow.data_range"]) == 255
    again = cli("export", f"models:/{NAME}@champion", "--format", fmt, "-o", target,
                "--tracking-uri", uri, code=2)  # fmt: skip
    one_error_line(again, 2, "exists", "--force")
