"""A run's folder and its lease: one process per run, and resumes that fall back to the next
whole checkpoint. Real processes, real locks, real checkpoints and a real MLflow store."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import Process, cli
from test_resilience import assert_complete, data_args, error_lines, logged_models, the_run

from daeflow.errors import UsageError
from daeflow.workflow.run_folder import RunFolder, write_atomically

HOLD = """
import sys, time
from daeflow.workflow.run_folder import RunFolder
held = RunFolder("feedc0de" * 4).take_lease()
print("held", flush=True)
time.sleep(120)
"""


def hold_in_another_process() -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_held_lease_is_refused_naming_the_host_and_pid_and_freed_when_its_process_dies():
    holder = hold_in_another_process()
    folder = RunFolder("feedc0de" * 4)
    try:
        with pytest.raises(UsageError) as refused:
            folder.take_lease()
        message = str(refused.value)
        assert f"process {holder.pid} on {socket.gethostname()}" in message
        assert "\n" not in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with folder:  # the system freed the lock of the killed process
        assert folder.holds_lease()
        assert folder.holder().pid == os.getpid()
    assert not folder.holds_lease()


def test_files_are_written_whole_or_not_at_all(tmp_path):
    target = tmp_path / "final.json"
    write_atomically(target, json.dumps({"a": 1}))

    with pytest.raises(TypeError):
        write_atomically(target, object())  # fails while writing the temporary file
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["final.json"]


def stopped_run(args, epochs: int, after: int, signal_number) -> str:
    """The id of a run of `epochs` epochs stopped by `signal_number` after epoch `after`."""
    process = Process("run", *args, "--epochs", epochs)
    process.wait_for(f"epoch {after:>3}/")
    process.process.send_signal(signal_number)
    process.finish()
    return the_run().info.run_id


@pytest.mark.slow
def test_two_resumes_of_one_run_at_once_train_it_once(tracking_uri, pair_files):
    run_id = stopped_run(data_args(pair_files), 8, 2, signal.SIGKILL)

    started = time.monotonic()
    first, second = Process("run", "--resume", run_id[:8]), Process("run", "--resume", run_id)
    deadline = time.monotonic() + 120
    while first.process.poll() is None and second.process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    refused_after = time.monotonic() - started
    loser, winner = (first, second) if first.process.poll() is not None else (second, first)
    code, stderr = loser.finish()
    assert code == 2, stderr
    (line,) = error_lines(stderr)
    assert f"Run {run_id[:8]} is held by process {winner.process.pid} on " in line, line
    assert socket.gethostname() in line
    assert winner.process.poll() is None  # refused while the other trains
    code, stderr = winner.finish()
    assert code == 0, stderr[-3000:]
    run = the_run()
    assert run.info.status == "FINISHED"
    assert_complete(run_id, 8)
    assert len(logged_models(run)) == 1
    print(f"the second resume was refused {refused_after:.1f} s after both started")


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_runs_artifact(tracking_uri, pair_files):
    # SIGTERM, not SIGKILL: the stopped run waits for its uploads, so the run's artifact
    # checkpoints/last is whole (a kill could land in the middle of that upload).
    run_id = stopped_run(data_args(pair_files), 6, 3, signal.SIGTERM)
    checkpoints = RunFolder(run_id).checkpoints
    newest = (checkpoints / "latest").read_text().strip()
    # Truncate every local checkpoint's model: only the run's artifacts are whole.
    for model in checkpoints.glob("epoch-*/model.keras"):
        model.write_bytes(model.read_bytes()[:100])
    (checkpoints / newest / "state.json").write_text("{broken")

    resumed = cli("run", "--resume", run_id[:8])
    said = resumed.stdout
    assert f"Checkpoint {newest} cannot be read (its state.json: JSONDecodeError" in said
    # Each local checkpoint is set aside in one line of its own; then the artifact is used.
    assert said.count("cannot be read") == said.count("; set aside as unreadable-epoch-")
    assert "(the run's checkpoints/last)" in said, said
    run = the_run()
    assert run.info.status == "FINISHED"
    assert_complete(run_id, 6)
    assert run.data.tags["daeflow.resumed"] == "1"
