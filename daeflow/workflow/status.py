"""`daeflow runs`: runs with their state, and the RUNNING ones whose process is gone."""

import os
import socket
import time

from daeflow.config import run_folder

STALE = 30 * 60  # seconds without a heartbeat after which a run elsewhere looks dead


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
    host, pid = tags.get("daeflow.host"), tags.get("daeflow.pid")
    if host == socket.gethostname() and pid and pid.isdigit() and not _alive(int(pid)):
        return "RUNNING, process gone"
    beat = float(tags.get("daeflow.heartbeat", run.info.start_time / 1000))
    if (now or time.time()) - beat > STALE:
        return f"RUNNING, silent for {((now or time.time()) - beat) / 60:.0f} min"
    return status


def rows(runs) -> list[dict]:
    """One dict per run, newest first, with the command that resumes it where that applies."""
    from daeflow.track.names import value

    table = []
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if tags.get("daeflow.command") != "run":
            continue
        state = state_of(run)
        resumable = state not in ("RUNNING", "FINISHED")
        then = f"daeflow run --resume {run.info.run_id[:8]}" if resumable else ""
        if resumable and (run_folder(run.info.run_id) / "final.json").is_file():
            then = f"daeflow sync {run.info.run_id[:8]}"  # trained; its results wait here
        table.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "state": state,
                "arch": params.get("arch", "?"),
                "epochs": f"{tags.get('daeflow.epochs_done', '0')}/"
                f"{tags.get('daeflow.epochs', params.get('epochs', '?'))}",
                "best_val_psnr": value(run.data.metrics, "best_val_psnr"),
                "host": tags.get("daeflow.host", "?"),
                "next_command": then,
            }
        )
    return table
