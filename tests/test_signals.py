"""A run stopped by SIGTERM is marked KILLED, never left RUNNING, and says so in one line."""

import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest


@pytest.mark.slow
def test_sigterm_marks_the_run_killed(tracking_uri, pair_files, tmp_path):
    clean, noisy = pair_files(n=24, size=16)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daeflow",
            "run",
            "--clean",
            str(clean),
            "--noisy",
            str(noisy),
            "--epochs",
            "10000",
            "--batch-size",
            "8",
            "--tracking-uri",
            tracking_uri,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("epoch"):
            break
    else:
        process.kill()
        pytest.fail("training never started")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert lines == ["Error: Stopped by signal SIGTERM; the run is marked KILLED."]
    assert "Traceback" not in stderr
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
