"""Full disks said in one line: which place is full (the run's folder on this machine, the
sqlite file, the artifact folder) and what to type once there is room again; for `daeflow
run` and `--resume`, before the run and while it trains."""

import contextlib

from daeflow.workflow.run_folder import RunFolder, runs_root


@contextlib.contextmanager
def full_disks_said(folder: RunFolder | None, then):
    """Within the block, an error that says a disk is full becomes DiskFull naming which (the
    run's folder, the sqlite file, the artifact folder) and what to type next: `then()`."""
    from daeflow.errors import DaeflowError, DiskFull
    from daeflow.runtime import disks
    from daeflow.track import store

    try:
        yield
    except DaeflowError:
        raise  # one line already
    except Exception as exc:
        local = [disks.Place(disks.LOCAL, folder.path)] if folder is not None else []
        place = disks.full_place(exc, [*local, *store.places()])
        if place is None:
            raise
        raise DiskFull(
            f"{place.subject()} is full ({disks.reason(exc)}). Free some space there, then {then()}"
        ) from exc


def refuse_full_disks() -> None:
    """Refuse in one line, before any work, a run whose folder or store has no room left."""
    from daeflow.runtime import disks
    from daeflow.track import store

    local = disks.Place(disks.LOCAL, runs_root())
    disks.refuse_full([local, *store.places()], same_command_again())


def same_command_again() -> str:
    """What to type once there is room again, for a run that failed before it trained."""
    return "run the same command again."
