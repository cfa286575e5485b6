"""`daeflow runs`: runs with their state, and the RUNNING ones whose process is gone."""

import os
import socket
import time

from daeflow.errors import UsageError
from daeflow.track.names import (
    TAG_COMMAND,
    TAG_EPOCHS,
    TAG_EPOCHS_DONE,
    TAG_HEARTBEAT,
    TAG_HOST,
    TAG_PID,
)
from daeflow.workflow.run_folder import RunFolder

STALE = 30 * 60  # seconds without a heartbeat before a run's first epoch ends: looks dead
LEAST = 5 * 60  # ... after its first epoch, at least this long
INTERVALS = 3  # ... and at least this many of its checkpoint intervals, at its own pace


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_of(run, now: float | None = None) -> str:
    """RUNNING, FINISHED, FAILED, KILLED, or 'RUNNING, process gone' / 'RUNNING, silent'."""
    status, tags = run.info.status, run.data.tags
    if status != "RUNNING":
        return status
    host, pid = tags.get(TAG_HOST), tags.get(TAG_PID)
    if host == socket.gethostname() and pid and pid.isdigit() and not _alive(int(pid)):
        return "RUNNING, process gone"
    beat = float(tags.get(TAG_HEARTBEAT, run.info.start_time / 1000))
    if (now or time.time()) - beat > silence_allowed(run):
        return f"RUNNING, silent for {((now or time.time()) - beat) / 60:.0f} min"
    return status


def silence_allowed(run) -> float:
    """Seconds without a heartbeat after which a RUNNING run of another machine looks dead
    (and its lease may be taken over): INTERVALS checkpoint intervals at the pace of its
    epochs so far, at least LEAST; STALE until its first epoch has ended."""
    from daeflow.config import parse_duration

    tags = run.data.tags
    done, beat = tags.get(TAG_EPOCHS_DONE, "0"), tags.get(TAG_HEARTBEAT)
    if beat is None or not done.isdigit() or int(done) == 0:
        return STALE
    per_epoch = max(0.0, float(beat) - run.info.start_time / 1000) / int(done)
    every = str(run.data.params.get("checkpoint_every", "1")).strip()
    try:
        interval = per_epoch * int(every)
    except ValueError:
        try:
            interval = max(per_epoch, parse_duration(every) or 0.0)
        except UsageError:
            interval = per_epoch
    return max(LEAST, INTERVALS * interval)


def next_step(run_id: str, state: str) -> tuple[str, str]:
    """What takes a run in `state` further, in words and as the command: resume a stopped
    one, sync one whose results wait on this machine; ('', '') for a running or finished run."""
    if state in ("RUNNING", "FINISHED"):
        return "", ""
    if RunFolder(run_id).has_ended_training():  # trained; its results wait here
        return "Upload its results and model with", f"daeflow sync {run_id[:8]}"
    return "Resume it with", f"daeflow run --resume {run_id[:8]}"


def next_command(run_id: str, state: str) -> str:
    """The command `daeflow runs` shows for a run in `state` ('' if there is none)."""
    return next_step(run_id, state)[1]


def rows(runs) -> list[dict]:
    """One dict per run, newest first, with the command that resumes it where that applies."""
    from daeflow.track.names import value

    table = []
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if tags.get(TAG_COMMAND) != "run":
            continue
        state = state_of(run)
        then = next_command(run.info.run_id, state)
        table.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "state": state,
                "arch": params.get("arch", "?"),
                "epochs": f"{tags.get(TAG_EPOCHS_DONE, '0')}/"
                f"{tags.get(TAG_EPOCHS, params.get('epochs', '?'))}",
                "best_val_psnr": value(run.data.metrics, "best_val_psnr"),
                "host": tags.get(TAG_HOST, "?"),
                "next_command": then,
            }
        )
    return table
