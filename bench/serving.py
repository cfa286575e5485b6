"""The registered model served: latency and requests/s of `mlflow models serve`, and the pyfunc's
peak memory on large uint16 images.

    .venv/bin/python bench/serving.py --sizes 256 2048 --requests 20 --pyfunc-sizes 2048 8192

Trains `residual_fast` on 64x64 patches of synthetic uint16 images (one short `daeflow run
--register bench`), moves the alias `champion` onto it with `daeflow register`, then:
1. for each PYFUNC_SIZE, in a fresh process under /usr/bin/time -v,
   `mlflow.pyfunc.load_model("models:/bench@champion").predict(image)` on one uint16 image of
   that size: seconds and peak memory (bounded: it grows with the image, not the activations);
2. `mlflow models serve -m models:/bench@champion --env-manager local` on 127.0.0.1, and for each
   SIZE a SIZE x SIZE uint8 image posted as MLflow's JSON tensor body ({"inputs": [[...]],
   "params": {"dtype": "uint8"}}) and as a base64 .npy ({"inputs": "...", "params":
   {"encoding": "npy_base64"}}): latency of REQUESTS sequential requests (after one warm-up),
   requests/s with 1 and 2 clients at once, and the in-process pyfunc time for the same image
   (the rest is JSON and HTTP).
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYFUNC = """
import sys, time, numpy as np, mlflow
model = mlflow.pyfunc.load_model("models:/bench@champion")
image = np.random.default_rng(1).integers(0, 65535, (SIZE, SIZE), dtype=np.uint16)
start = time.perf_counter()
out = model.predict(image)
print(f"predict {time.perf_counter() - start:.1f} s, {out.dtype} {out.shape}")
"""


def daeflow(*args, folder: Path) -> str:
    command = [str(BIN / "daeflow"), *map(str, args)]
    print("$", shlex.join(command), flush=True)
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=folder).stdout


def train_and_register(folder: Path, arch: str, store: str) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    waves = [
        0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(1, 4) * xx + rng.uniform(1, 4) * yy))
        for _ in range(64)
    ]
    np.save(folder / "clean.npy", np.rint(np.stack(waves) * 65535).astype(np.uint16))
    out = daeflow("run", "--arch", arch, "--clean", "clean.npy", "--noise", "gaussian",
                  "--noise-param", "sigma=3000", "--patch-size", "64", "--patches-per-image",
                  "4", "--epochs", "2", "--register", "bench", "--tracking-uri", store,
                  folder=folder)  # fmt: skip
    run_id = re.search(r"MLflow run (\w+)", out).group(1)
    daeflow("register", run_id, "--name", "bench", "--alias", "champion", "--tracking-uri", store,
            folder=folder)  # fmt: skip


def pyfunc_memory(folder: Path, size: int, env: dict) -> None:
    script = PYFUNC.replace("SIZE", str(size))
    command = ["/usr/bin/time", "-v", sys.executable, "-c", script]
    print(f"$ python -c <pyfunc predict of a {size}x{size} uint16 image>", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env)
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1]) / 1024
    image_mib = size * size * 2 / 2**20
    print(
        f"pyfunc {size}x{size} uint16: {done.stdout.strip()}; peak memory {peak:.0f} MiB "
        f"(input and output {image_mib:.0f} MiB each)",
        flush=True,
    )


def post(url: str, body: bytes) -> float:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as answer:
        json.load(answer)
    return time.perf_counter() - start


def requests_per_second(url: str, body: bytes, clients: int, each: int) -> float:
    def client():
        for _ in range(each):
            post(url, body)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * each / (time.perf_counter() - start)


def bodies(image: np.ndarray) -> dict[str, bytes]:
    """The request for `image` as JSON lists (MLflow's tensor format) and as a base64 .npy."""
    import base64
    import io

    buffer = io.BytesIO()
    np.save(buffer, image)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return {
        "JSON lists": json.dumps({"inputs": image.tolist(), "params": {"dtype": "uint8"}}),
        "npy_base64": json.dumps({"inputs": encoded, "params": {"encoding": "npy_base64"}}),
    }


def serve(folder: Path, sizes: list[int], count: int, env: dict) -> None:
    import mlflow

    port = 5000 + os.getpid() % 1000
    command = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/bench@champion",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    print("$", shlex.join(command), flush=True)
    log = open(folder / "serve.log", "w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)  # fmt: skip
    start = time.perf_counter()
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.perf_counter() - start > 300:
                sys.exit((folder / "serve.log").read_text()[-3000:])
            time.sleep(0.2)
    print(f"serving after {time.perf_counter() - start:.1f} s", flush=True)
    model = mlflow.pyfunc.load_model("models:/bench@champion")
    url = f"http://127.0.0.1:{port}/invocations"
    try:
        for size in sizes:
            image = np.random.default_rng(2).integers(0, 256, (size, size), dtype=np.uint8)
            local = min(_timed(model.predict, image) for _ in range(3))
            print(f"{size}x{size} uint8: pyfunc predict in process {local * 1000:.0f} ms")
            for kind, text in bodies(image).items():
                body = text.encode()
                post(url, body)  # warm-up
                latencies = sorted(post(url, body) for _ in range(count))
                two = requests_per_second(url, body, 2, max(1, count // 2))
                p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
                print(
                    f"{size}x{size} uint8, {kind} ({len(body) / 2**20:.1f} MiB): latency median "
                    f"{statistics.median(latencies) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
                    f"{1 / statistics.mean(latencies):.2f} requests/s with 1 client, {two:.2f} "
                    "with 2",
                    flush=True,
                )
    finally:
        os.killpg(server.pid, 15)
        server.wait()


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--pyfunc-sizes", type=int, nargs="*", default=[2048, 8192])
    parser.add_argument("--serve", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--arch", default="residual_fast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = f"sqlite:///{folder / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": f"{BIN}:{os.environ['PATH']}"}
        os.environ["MLFLOW_TRACKING_URI"] = store
        train_and_register(folder, args.arch, store)
        for size in args.pyfunc_sizes:
            pyfunc_memory(folder, size, env)
        if args.serve:
            serve(folder, args.sizes, args.requests, env)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
