"""Runs that survive: kill -9 and resume, SIGTERM and Ctrl-C, tracking servers that go away,
a full disk, and many runs writing to one store. Real processes, real signals, real servers."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time

import mlflow
import pytest
from conftest import Process, cli

pytestmark = pytest.mark.slow

EPOCHS = 6
# A resumed run trains the same batches from the same weights and optimizer state: on the
# CPUs measured its test PSNR equals an uninterrupted run's to the last digit. This is
# the tolerance a test allows (see docs/long-runs.md, "Long runs and teams").
TOLERANCE_DB = 0.01


def data_args(pair_files, **kwargs) -> list[str]:
    clean, noisy = pair_files(n=24, size=16, **kwargs)
    return ["--clean", str(clean), "--noisy", str(noisy), "--batch-size", "8", "--seed", "3"]


def steps(run_id: str, key: str, uri: str | None = None) -> list[int]:
    client = mlflow.MlflowClient(uri)
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def the_run(uri: str | None = None):
    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, filter_string="tags.`daeflow.command` = 'run'")
    return run


def logged_models(run, uri: str | None = None) -> list:
    return mlflow.MlflowClient(uri).search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    )


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def assert_complete(run_id: str, epochs: int, uri: str | None = None) -> None:
    """Every epoch's metrics once, at steps 1..epochs."""
    for key in ("epoch/loss", "epoch/val_psnr", "epoch/val_ssim"):
        assert steps(run_id, key, uri) == list(range(1, epochs + 1)), key


@pytest.mark.parametrize("averaged", [[], ["--ema-momentum", "0.9"]], ids=["plain", "ema"])
def test_a_run_killed_at_a_random_epoch_resumes_to_the_same_result(
    averaged, tracking_uri, pair_files
):
    # with --ema-momentum a checkpoint holds the averaged weights in the model and the
    # trained ones in the optimizer: a resume that mixed them up would end elsewhere
    args = [*data_args(pair_files), *averaged]
    straight = cli("run", *args, "--epochs", EPOCHS, "--run-name", "straight")
    straight_psnr = float(re.search(r"test PSNR ([\d.]+)", straight.stdout).group(1))
    mlflow.MlflowClient().delete_run(the_run().info.run_id)

    epoch = random.randint(1, EPOCHS - 2)
    # Checkpoints every other epoch: a run killed in epoch 1 has none and trains again from
    # the start; an epoch logged after the last checkpoint is trained
    # again on resume and must not be logged twice.
    killed = Process("run", *args, "--epochs", EPOCHS, "--checkpoint-every", "2")
    killed.wait_for(f"epoch {epoch:>3}/")
    killed.process.send_signal(signal.SIGKILL)
    killed.finish()
    run_id = the_run().info.run_id

    (listed,) = json.loads(cli("runs", "--json").stdout)
    assert listed["state"] == "RUNNING, process gone", f"killed after epoch {epoch}"
    assert listed["next_command"] == f"daeflow run --resume {run_id[:8]}"

    resumed = cli("run", "--resume", run_id[:8])
    run = the_run()
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert_complete(run_id, EPOCHS)
    assert len(logged_models(run)) == 1
    assert run.data.tags["daeflow.resumed"] == "1"
    resumed_psnr = float(re.search(r"test PSNR ([\d.]+)", resumed.stdout).group(1))
    assert abs(resumed_psnr - straight_psnr) <= TOLERANCE_DB, (epoch, resumed_psnr, straight_psnr)
    assert abs(run.data.metrics["test/psnr"] - straight_psnr) <= TOLERANCE_DB


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT], [signal.SIGINT] * 3])
def test_a_stopped_run_keeps_its_best_model_and_resumes(signals, tracking_uri, pair_files):
    args = data_args(pair_files)
    process = Process("run", *args, "--epochs", "1000")
    process.wait_for("epoch   2/")
    for number in signals:
        process.process.send_signal(number)
        time.sleep(0.3)
    code, stderr = process.finish()

    assert code == 130, stderr[-3000:]
    (line,) = error_lines(stderr)
    name = "SIGTERM" if signals[0] == signal.SIGTERM else "Ctrl-C"
    done = int(re.search(rf"Stopped by {name} after epoch (\d+);", line).group(1))
    run = the_run()
    assert f"run {run.info.run_id} is marked KILLED, its best model (epoch" in line
    assert line.endswith(f"Resume it with: daeflow run --resume {run.info.run_id[:8]}")
    assert run.info.status == "KILLED"
    assert run.data.tags["stop_reason"] == "interrupted"
    assert len(logged_models(run)) == 1
    if len(signals) > 1:
        acknowledged = [line for line in process.lines if line.startswith("Stopping:")]
        assert 1 <= len(acknowledged) <= len(signals) - 1

    if signals == [signal.SIGINT]:
        return  # stopped as by SIGTERM: resumed by the other two
    cli("run", "--resume", run.info.run_id, "--epochs", done + 1)
    run = the_run()
    assert run.info.status == "FINISHED"
    assert_complete(run.info.run_id, done + 1)
    assert run.data.tags["daeflow.resume_changes"] == f"--epochs 1000 -> {done + 1}"


def test_a_server_gone_at_the_end_keeps_the_results_for_sync(mlflow_server, pair_files, tmp_path):
    # No long waits for a server that stays away: 5 s at the end, no retries of each request.
    fast = {"DAEFLOW_FLUSH_WAIT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    process = Process(
        "run", *data_args(pair_files), "--epochs", "4", "--tracking-uri", mlflow_server.url,
        cwd=tmp_path, env=fast,
    )  # fmt: skip
    process.wait_for("epoch   3/")
    mlflow_server.stop()
    code, stderr = process.finish()

    assert code == 1
    (line,) = error_lines(stderr)
    run_id = the_run_id(line)
    assert f"When the server is back, upload them with: daeflow sync {run_id[:8]}" in line
    mlflow_server.start()
    synced = cli("sync", run_id[:8])
    assert "results and model" in synced.stdout and "FINISHED" in synced.stdout
    run = the_run(mlflow_server.url)
    assert run.info.status == "FINISHED" and run.info.run_id.startswith(run_id[:8])
    assert_complete(run.info.run_id, 4, mlflow_server.url)
    assert len(logged_models(run, mlflow_server.url)) == 1
    assert "test/psnr" in run.data.metrics


def the_run_id(line: str) -> str:
    return re.search(r"daeflow sync ([0-9a-f]{8})", line).group(1)


def mount_small_disk(command: list[str], mountpoint, full=False, kept=False) -> list[str]:
    """`command` in its own mount namespace, with a 16 MiB tmpfs mounted on `mountpoint`.

    With `kept`, the tmpfs starts with the folder's files and, when the command has ended,
    the file `filler` is deleted and the rest copied back into the folder, as if space had
    been freed on that disk. With `full`, the disk is full before the command starts.
    """
    if not kept:
        script = f'mount -t tmpfs -o size=16m tmpfs "{mountpoint}" && exec "$@"'
    else:
        fill = 'dd if=/dev/zero of="$M/filler" bs=1M 2>/dev/null; ' if full else ""
        script = (
            f'M="{mountpoint}"; S="$(mktemp -d)"; cp -a "$M/." "$S/" && '
            f'mount -t tmpfs -o size=16m tmpfs "$M" && cp -a "$S/." "$M/" && {{ {fill}"$@"; '
            'code=$?; rm -f "$M/filler"; rm -rf "$S"; mkdir "$S"; cp -a "$M/." "$S/"; '
            'umount "$M" && cp -a "$S/." "$M/"; rm -rf "$S"; exit $code; }'
        )
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", *command]


def small_disk_or_skip(mountpoint) -> None:
    probe = subprocess.run(mount_small_disk(["true"], mountpoint), capture_output=True)
    if probe.returncode != 0 or not shutil.which("unshare"):
        pytest.skip(f"cannot mount a small tmpfs here: {probe.stderr.decode().strip()}")


def fill_up(process, mountpoint) -> None:
    """Fill the small disk of `process` to the last byte, as another program would."""
    with open(f"/proc/{process.pid}/root{mountpoint}/filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * (1 << 20))
                filler.flush()
        except OSError:
            pass


def run_on_small_disk(args, mountpoint, env, fill_after=None, full=False):
    """`daeflow ARGS` with `mountpoint` on a small disk, filled when a line starting with
    `fill_after` is printed (or `full` from the start); (exit code, stdout, stderr)."""
    import sys

    command = [sys.executable, "-m", "daeflow", *map(str, args)]
    process = subprocess.Popen(
        mount_small_disk(command, mountpoint, full=full, kept=True), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )  # fmt: skip
    lines = []
    if fill_after is not None:
        deadline = time.monotonic() + 180
        for line in process.stdout:
            lines.append(line)
            if line.startswith(fill_after) or time.monotonic() > deadline:
                break
        fill_up(process, mountpoint)
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, "".join(lines) + stdout, stderr


def the_only_line(stderr: str) -> str:
    """stderr is one "Error:" line and nothing else: no traceback, no MLflow log lines."""
    assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr[-3000:]
    return lines[0]


def test_a_full_run_folder_during_training_ends_in_one_line_and_resumes(
    tracking_uri, pair_files, tmp_path, monkeypatch
):
    disk = tmp_path / "disk"
    disk.mkdir()
    small_disk_or_skip(disk)
    monkeypatch.setenv("DAEFLOW_HOME", str(disk / "home"))
    args = ["run", *data_args(pair_files), "--epochs", "3"]
    code, stdout, stderr = run_on_small_disk(args, disk, {}, fill_after="epoch   1/")

    assert code == 1, stderr[-3000:]
    line = the_only_line(stderr)
    run = the_run()
    run_id = run.info.run_id
    assert f"The local run folder at {disk / 'home' / 'runs' / run_id} is full (" in line
    assert line.endswith(f"Free some space there, then run: daeflow run --resume {run_id[:8]}")
    assert run.info.status == "FAILED"
    (listed,) = json.loads(cli("runs", "--json").stdout)
    assert listed["next_command"] == f"daeflow run --resume {run_id[:8]}"
    # Space is back: sync sends what the journal kept and leaves the run to resume.
    assert "kept in" in cli("sync", run_id[:8]).stdout
    cli("run", "--resume", run_id[:8])
    run = the_run()
    assert run.info.status == "FINISHED"
    assert_complete(run_id, 3)


def test_a_store_filled_mid_run_keeps_the_results_and_sync_finishes_it(
    migrated_store, pair_files, tmp_path, monkeypatch
):
    disk = tmp_path / "store"
    disk.mkdir()
    small_disk_or_skip(disk)
    shutil.copy(migrated_store, disk / "mlflow.db")
    uri = f"sqlite:///{disk}/mlflow.db"
    mlflow.MlflowClient(uri).create_experiment("small", artifact_location=str(disk / "artifacts"))
    monkeypatch.chdir(tmp_path)
    args = ["run", *data_args(pair_files), "--epochs", "4", "--experiment", "small"]
    env = {"MLFLOW_TRACKING_URI": uri, "DAEFLOW_FLUSH_WAIT": "5"}
    code, stdout, stderr = run_on_small_disk(args, disk, env, fill_after="epoch   2/")

    assert code == 1, stderr[-3000:]
    line = the_only_line(stderr)
    run = the_run(uri)
    run_id = run.info.run_id
    full = (f"The sqlite file {disk / 'mlflow.db'} is full", f"The artifact folder {disk}")
    assert line.startswith(tuple(f"Error: {start}" for start in full)), line
    assert line.endswith(f"Free some space there, then upload them with: daeflow sync {run_id[:8]}")
    # What MLflow and the journal thread said of the failure went to the run's log file,
    # not to the terminal (which of them met it first depends on timing; tests/test_disks.py
    # shows MLflow's own lines going to the file).
    kept = tmp_path / "daeflow-home" / "runs" / run_id
    said = (kept / "daeflow.log").read_text()
    assert "No space left on device" in said or "database or disk is full" in said, said[-2000:]
    # The store could not take the run's end; `daeflow runs` and sync know what to do.
    assert run.info.status in ("RUNNING", "FAILED")
    (listed,) = json.loads(cli("runs", "--json", "--tracking-uri", uri).stdout)
    assert listed["next_command"] == f"daeflow sync {run_id[:8]}"
    assert "FINISHED" in cli("sync", run_id[:8]).stdout
    run = the_run(uri)
    assert run.info.status == "FINISHED"
    assert_complete(run_id, 4, uri)
    assert len(mlflow.MlflowClient(uri).get_metric_history(run_id, "test/psnr")) == 1
    assert len(logged_models(run, uri)) == 1
    assert not kept.exists()


def test_a_store_full_before_the_run_is_refused_in_one_line(migrated_store, pair_files, tmp_path):
    disk = tmp_path / "store"
    disk.mkdir()
    small_disk_or_skip(disk)
    shutil.copy(migrated_store, disk / "mlflow.db")
    uri = f"sqlite:///{disk}/mlflow.db"
    args = ["run", *data_args(pair_files), "--epochs", "1"]
    code, _, stderr = run_on_small_disk(args, disk, {"MLFLOW_TRACKING_URI": uri}, full=True)

    assert code == 1
    line = the_only_line(stderr)
    assert line.startswith(f"Error: The sqlite file {disk / 'mlflow.db'} is full (")
    assert line.endswith("Free some space there, then run the same command again.")
    client = mlflow.MlflowClient(uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_stops_during_the_final_evaluation_and_the_model_logging_say_what_finishes_the_run(
    tracking_uri, pair_files, monkeypatch
):
    from conftest import one_error_line

    from daeflow.runtime.signals import TEST_STOP_AT

    monkeypatch.setenv(TEST_STOP_AT, "final-evaluation")
    stopped = cli("run", *data_args(pair_files), "--epochs", "2", code=130)
    run = the_run()
    run_id = run.info.run_id
    line = one_error_line(stopped, 130, "Stopped by SIGTERM during the final test evaluation")
    assert f"run {run_id} is marked KILLED, its best model (epoch" in line
    assert line.endswith(f"Resume it with: daeflow run --resume {run_id[:8]}")
    assert run.info.status == "KILLED" and len(logged_models(run)) == 1
    (listed,) = json.loads(cli("runs", "--json").stdout)
    assert listed["next_command"] == f"daeflow run --resume {run_id[:8]}"

    # Resumed after its last epoch, the run goes straight to the test; stopped again while
    # its results and model go to the store, it keeps them for sync.
    monkeypatch.setenv(TEST_STOP_AT, "model-logging")
    stopped = cli("run", "--resume", run_id[:8], code=130)
    line = one_error_line(stopped, 130, "while the results and the model were logged")
    assert line.endswith(f"Upload its results and model with: daeflow sync {run_id[:8]}")
    assert the_run().info.status == "KILLED"
    (listed,) = json.loads(cli("runs", "--json").stdout)
    assert listed["next_command"] == f"daeflow sync {run_id[:8]}"

    monkeypatch.delenv(TEST_STOP_AT)
    assert "FINISHED" in cli("sync", run_id[:8]).stdout
    run = the_run()
    assert run.info.status == "FINISHED"
    assert_complete(run_id, 2)
    assert len(mlflow.MlflowClient().get_metric_history(run_id, "test/psnr")) == 1
    assert len(logged_models(run)) == 2  # the best model at the first stop, the final one


def test_a_full_disk_at_the_end_keeps_the_model_for_sync(tracking_uri, pair_files, tmp_path):
    import sys

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    probe = subprocess.run(mount_small_disk(["true"], artifacts), capture_output=True)
    if probe.returncode != 0 or not shutil.which("unshare"):
        pytest.skip(f"cannot mount a small tmpfs here: {probe.stderr.decode().strip()}")
    mlflow.MlflowClient().create_experiment("small-disk", artifact_location=f"file://{artifacts}")
    command = [sys.executable, "-m", "daeflow", "run", *data_args(pair_files)]
    command += ["--epochs", "3", "--experiment", "small-disk"]
    process = subprocess.Popen(
        mount_small_disk(command, artifacts), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "DAEFLOW_FLUSH_WAIT": "5"},
    )  # fmt: skip
    # When the last epoch is printed, fill the disk as another program would.
    deadline = time.monotonic() + 180
    for line in process.stdout:
        if line.startswith("epoch   3/") or time.monotonic() > deadline:
            break
    fill_up(process, artifacts)
    _, stderr = process.communicate(timeout=300)

    assert process.returncode == 1
    (line,) = error_lines(stderr)
    assert "No space left on device" in line or "OSError" in line, line
    run_id = the_run_id(line)
    (kept,) = (tmp_path / "daeflow-home" / "runs").glob(f"{run_id}*")
    assert (kept / "model" / "MLmodel").is_file() and (kept / "final.json").is_file()
    # The small disk is gone with its namespace; the store's own folder has room.
    synced = cli("sync", run_id)
    assert "FINISHED" in synced.stdout
    run = the_run()
    assert run.info.status == "FINISHED"
    assert len(logged_models(run)) == 1
    assert not kept.exists()


def test_four_first_runs_on_a_fresh_sqlite_store_all_finish(tmp_path, pair_files):
    """They would race MLflow's schema migration; daeflow creates the schema once, locked."""
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    args = [*data_args(pair_files), "--epochs", "1", "--tracking-uri", uri]
    processes = [Process("run", *args, cwd=tmp_path) for _ in range(4)]
    results = [p.finish() for p in processes]
    assert [code for code, _ in results] == [0] * 4, results
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4


def test_eight_runs_into_a_postgresql_server_restarted_midway(team_server, pair_files, tmp_path):
    """Training goes on while the server is away; when it is back, it gets every step."""
    epochs = 6
    args = [*data_args(pair_files), "--epochs", epochs, "--tracking-uri", team_server.url]
    processes = [Process("run", *args, cwd=tmp_path) for _ in range(8)]
    for process in processes:
        process.wait_for("epoch   1/")  # every run has started and logged its parameters
    team_server.stop()  # PostgreSQL and MLflow both
    away = [process.epochs() for process in processes]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trained = [p.epochs() - before for p, before in zip(processes, away, strict=True)]
        if all(n >= 2 or p.epochs() == epochs for n, p in zip(trained, processes, strict=True)):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"training stalled without its server: {away} -> {trained} epochs")
    team_server.start()
    results = [p.finish() for p in processes]

    assert [code for code, _ in results] == [0] * 8, results
    assert all(error_lines(stderr) == [] for _, stderr in results)
    client = mlflow.MlflowClient(team_server.url)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 8
    for run in runs:
        assert_complete(run.info.run_id, epochs, team_server.url)
        assert "test/psnr" in run.data.metrics
        assert len(logged_models(run, team_server.url)) == 1


def test_a_run_ends_finished_when_its_server_restarts_as_it_ends(mlflow_server, monkeypatch):
    """mlflow.end_run forgets the run before sending its status: a retry must not."""
    import threading

    from daeflow.track import runs

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the first attempt fails at once
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server.url)
    restart = threading.Timer(0.5, mlflow_server.start)
    try:
        with runs.tracked_run("restarts", None, {}) as run:
            mlflow_server.stop()
            restart.start()
    finally:
        mlflow.set_tracking_uri(before)
        restart.join()
    status = mlflow.MlflowClient(mlflow_server.url).get_run(run.info.run_id).info.status
    assert status == "FINISHED"


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_swallowed_where_the_signal_landed_still_stops_training(number):
    # A handler raises in whatever runs when the signal comes: in a __del__ or a finalizer,
    # Python prints the exception and goes on. The trainer must stop all the same.
    import keras
    import numpy as np

    from daeflow.errors import Interrupted
    from daeflow.runtime.signals import StopSignals
    from daeflow.train.callbacks import SignalCheck

    class Swallowing(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                try:
                    signal.raise_signal(number)
                    time.sleep(0.05)
                except BaseException:
                    pass

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((8, 4), "float32")
    history = keras.callbacks.History()
    expected = KeyboardInterrupt if number == signal.SIGINT else Interrupted
    with StopSignals(), pytest.raises(expected):
        model.fit(
            x, x[:, :1], epochs=20, verbose=0, callbacks=[Swallowing(), SignalCheck(), history]
        )
    assert history.epoch == [0]  # stopped at the end of the second epoch, before History
