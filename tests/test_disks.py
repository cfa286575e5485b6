"""Full disks without training: which place is full, a background thread that fills one, and
MLflow's own log lines kept off the terminal."""

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_resilience import mount_small_disk, small_disk_or_skip

from daeflow.runtime import disks

JOURNAL_ON_A_FULL_DISK = """
import os, sys, time
from pathlib import Path
import mlflow
from daeflow.track.journal import Journal

disk, uri = Path(sys.argv[1]), sys.argv[2]
mlflow.set_tracking_uri(uri)
journal = Journal(mlflow.MlflowClient().create_run("0").info.run_id, disk / "journal")
journal.tags({"a": "1"})
while journal.pending():
    time.sleep(0.05)
filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(filler, bytes(4096))
except OSError:
    pass
journal.tags({"b": "2"})  # fits in the journal's last page; the worker's count file does not
journal.worker.join(60)
try:
    journal.tags({"c": "3"})
except OSError as exc:
    print("raised in the training thread:", exc.errno, exc.filename)
"""


def test_a_journal_thread_on_a_full_disk_prints_nothing_and_the_training_thread_raises(
    tmp_path, migrated_store
):
    disk = tmp_path / "disk"
    disk.mkdir()
    small_disk_or_skip(disk)
    shutil.copy(migrated_store, tmp_path / "mlflow.db")
    command = [sys.executable, "-c", JOURNAL_ON_A_FULL_DISK, str(disk)]
    command.append(f"sqlite:///{tmp_path}/mlflow.db")
    done = subprocess.run(
        mount_small_disk(command, disk), capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )  # fmt: skip

    assert "Traceback" not in done.stderr and "Exception in thread" not in done.stderr, done.stderr
    assert f"raised in the training thread: 28 {disk}/journal/" in done.stdout, done.stdout


def test_the_place_that_is_full_is_named_by_the_file_or_by_sqlite():
    local = disks.Place(disks.LOCAL, Path("/runs/abc"))
    sqlite = disks.Place(disks.SQLITE, Path("/srv/mlflow.db"))
    artifacts = disks.Place(disks.ARTIFACTS, Path("/srv/artifacts"))
    places = [local, sqlite, artifacts]
    full = OSError(28, "No space left on device", "/srv/artifacts/1/x/model.keras")
    assert disks.full_place(full, places) == artifacts
    assert disks.full_place(OSError(28, "No space left on device", "/runs/abc"), places) == local
    wrapped = RuntimeError("(sqlite3.OperationalError) database or disk is full [SQL: INSERT]")
    assert disks.full_place(wrapped, places) == sqlite
    assert disks.reason(wrapped) == "database or disk is full"
    assert disks.full_place(OSError(13, "Permission denied", "/runs/abc"), places) is None
    assert str(sqlite) == "the sqlite file /srv/mlflow.db"
    assert sqlite.subject() == "The sqlite file /srv/mlflow.db"


def test_a_full_disk_oserror_without_a_file_name_gets_the_path():
    with pytest.raises(OSError) as raised, disks.naming("/runs/abc/journal.jsonl"):
        raise OSError(28, "No space left on device")
    assert raised.value.filename == "/runs/abc/journal.jsonl"


@pytest.mark.parametrize("debug", ["", "1"])
def test_mlflow_log_lines_go_to_the_run_log_file_not_the_terminal(
    tmp_path, capfd, monkeypatch, debug
):
    from daeflow.track import log_file

    monkeypatch.setenv("DAEFLOW_DEBUG", debug)
    with log_file.off_terminal(tmp_path / "daeflow.log"):
        logging.getLogger("mlflow.store.db.utils").error("the database is full")
        logging.getLogger("daeflow.journal").info("sending a record failed")
    said = capfd.readouterr().err
    if debug:
        assert "the database is full" in said  # DAEFLOW_DEBUG=1 shows everything
        return
    assert said == ""
    written = (tmp_path / "daeflow.log").read_text()
    assert "ERROR mlflow.store.db.utils" in written and "sending a record failed" in written
    # Outside a run, MLflow's loggers are as MLflow set them, but for daeflow's background
    # threads: one still sending after the run failed says nothing on the terminal.
    logging.getLogger("mlflow.store.db.utils").error("after the run")
    assert "after the run" in capfd.readouterr().err
    from daeflow.runtime.workers import Worker

    late = Worker(lambda: logging.getLogger("mlflow.store.db.utils").error("late"), "journal")
    late.start()
    late.join()
    assert "late" not in capfd.readouterr().err
