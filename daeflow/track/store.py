"""The tracking store: which one, whether it can be reached, and a safe first use of sqlite."""

import contextlib
import fcntl
import logging
import os
import urllib.parse
from pathlib import Path

import mlflow

from daeflow.errors import CredentialsError, TrackingError

REACH_TIMEOUT = 5.0  # seconds; MLflow's own client retries for minutes
RETRIES = {  # MLflow's HTTP client: 3 retries, 1-2-4 s apart, 30 s per request
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def use_tracking_uri(uri: str | None) -> str:
    """Set the tracking URI when given; check it can be used; return the one in force."""
    if uri:
        mlflow.set_tracking_uri(uri)
    uri = mlflow.get_tracking_uri()
    check_store(uri)
    return uri


def tracking_uri() -> str:
    """The tracking URI in force, without credentials (safe to write down)."""
    return without_credentials(mlflow.get_tracking_uri())


def check_store(uri: str) -> None:
    """Fail fast, in one line, on a server that does not answer or a sqlite file that cannot be."""
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("http", "https"):
        # Fail in seconds, not minutes: daeflow retries in the background itself (journal).
        for name, value in RETRIES.items():
            os.environ.setdefault(name, value)
        # daeflow prints its own link, one that opens the runs table (workflowType).
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        check_reachable(uri)
    elif scheme == "sqlite":
        prepare_sqlite(uri)


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT) -> None:
    """Ask the server for one experiment as MLflow's client would, giving up after `timeout`.

    Refused, each in one line: a server that cannot be connected to, and one that asks for
    a login it was not given or refuses the one it was (401, 403). Any other answer, even
    an error status, is left to MLflow. Credentials and TLS follow MLflow's settings
    (MLFLOW_TRACKING_USERNAME/PASSWORD or ~/.mlflow/credentials, MLFLOW_TRACKING_TOKEN,
    MLFLOW_TRACKING_INSECURE_TLS, MLFLOW_TRACKING_SERVER_CERT_PATH); credentials in the URI
    are never printed.
    """
    import requests
    from mlflow.utils.credentials import read_mlflow_creds

    verify: bool | str = True
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        verify = False
    elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        verify = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    login = read_mlflow_creds()
    auth = (login.username, login.password) if login.username and login.password else None
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = requests.get(
            uri.rstrip("/") + PROBE,
            params={"max_results": 1},
            auth=auth,
            headers=headers,
            timeout=timeout,
            verify=verify,
        )
    except requests.exceptions.SSLError:
        return  # it answered; certificates are MLflow's business, with its own message
    except requests.exceptions.RequestException as exc:
        kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "no connection"
        raise TrackingError(
            f"Cannot reach the MLflow tracking server at {without_credentials(uri)} ({kind} "
            f"within {timeout:g} s). Start it (e.g. mlflow server --host 127.0.0.1 --port "
            "5000) or pass another --tracking-uri."
        ) from None
    # Other ways of signing requests (an auth plugin, AWS SigV4) are MLflow's to judge.
    other = os.environ.get("MLFLOW_TRACKING_AUTH") or os.environ.get("MLFLOW_TRACKING_AWS_SIGV4")
    if answer.status_code in REFUSALS and not other:
        raise CredentialsError(refused(REFUSALS[answer.status_code], uri))


PROBE = "/api/2.0/mlflow/experiments/search"  # any account may search (default permission)
REFUSALS = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}  # MLflow's error codes


def refusal(exc: Exception) -> str | None:
    """The line for an MLflow error that is a refusal by the tracking server (None if not)."""
    import re

    code = getattr(exc, "error_code", None)
    if code not in REFUSALS.values():
        return None
    endpoint = re.search(r"endpoint (/\S+)", str(exc))
    return refused(code, endpoint=endpoint.group(1) if endpoint else None)


def refused(code: str, uri: str | None = None, endpoint: str | None = None) -> str:
    """One line for a request the tracking server refused (MLflow's error `code`): whose
    login, and which variables to set or whom to ask."""
    from mlflow.utils.credentials import read_mlflow_creds

    server = without_credentials(uri or mlflow.get_tracking_uri())
    user = read_mlflow_creds().username
    if code == "UNAUTHENTICATED" and not user:
        return (
            f"The MLflow tracking server at {server} asks for a login (401). Set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to your account on it "
            "(its admin creates accounts)."
        )
    if code == "UNAUTHENTICATED":
        return (
            f"The MLflow tracking server at {server} refused the login of user {user!r} "
            "(401: wrong user name or password). Check MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD, or ask the server's admin to reset the password."
        )
    what = f" to {endpoint}" if endpoint else ""
    who = f"user {user!r}" if user else "this request"
    return (
        f"The MLflow tracking server at {server} refused {who} permission{what} (403). Ask "
        "its admin for EDIT on the experiment (or the model), or use one of your own "
        "(--experiment NEW_NAME)."
    )


def when_back(action, seconds: float):
    """Call `action`; while it fails as an unreachable or restarting tracking server makes
    it fail, try again (1 s apart, doubling up to 15 s) for at most `seconds`."""
    import time

    remote = urllib.parse.urlparse(mlflow.get_tracking_uri()).scheme in ("http", "https")
    deadline, wait = time.monotonic() + seconds, 1.0
    while True:
        try:
            return action()
        except Exception as exc:
            if not (remote and _outage(exc)) or time.monotonic() + wait > deadline:
                raise
            time.sleep(wait)
            wait = min(15.0, wait * 2)


OUTAGE_CODES = ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")


def _outage(exc: Exception) -> bool:
    """Whether the error is one a server that is away or restarting gives (not a refusal)."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code in OUTAGE_CODES
    return isinstance(exc, OSError)  # requests' connection errors and timeouts among them


def without_credentials(uri: str) -> str:
    """The URI with any user:password@ taken out, for messages."""
    parsed = urllib.parse.urlparse(uri)
    if not (parsed.username or parsed.password):
        return uri
    return parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]).geturl()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for in-memory databases)."""
    path = uri.split("sqlite:///", 1)[-1] if uri.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


def prepare_sqlite(uri: str) -> None:
    """Create the folder of a new sqlite store, and its schema once, under a lock.

    Several processes starting on a fresh file would race MLflow's schema migration
    and leave it half-migrated for good; the first one to take the folder's lock
    creates the schema while the others wait.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError as exc:
        raise TrackingError(
            f"Cannot create the folder of the MLflow store {uri}: {exc.strerror} "
            f"({path.parent}). Pass a --tracking-uri in a writable folder."
        ) from None
    try:
        # Always under the lock: a file that exists may still be half-way through its
        # migration by another process. On a finished store this is one quick query.
        with _locked(folder), quiet("mlflow.store.db.utils", "alembic"):
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
    finally:
        os.close(folder)


@contextlib.contextmanager
def quiet(*names: str, below: int = logging.WARNING):
    """Hold back these loggers' lines below a level (by default INFO lines such as
    "Creating initial MLflow database tables...")."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(below)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _locked(fd: int):
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def check_artifact_location(location: str, experiment: str) -> None:
    """Refuse, before any work, an experiment whose local artifact folder cannot be written."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme not in ("", "file"):
        return  # remote stores and the server's proxy check their own permissions
    folder = Path(urllib.parse.unquote(parsed.path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise TrackingError(
            f"The artifact location of experiment {experiment!r} is not writable: "
            f"{exc.strerror} ({folder}). Fix its permissions or use another --experiment."
        ) from None


def places() -> list:
    """Where the active run's store writes on this machine: its sqlite file and its local
    artifact folder (disks.Place), those that are local files."""
    from daeflow.runtime import disks

    found = []
    path = sqlite_path(mlflow.get_tracking_uri())
    if path is not None:
        found.append(disks.Place(disks.SQLITE, path.resolve()))
    run = mlflow.active_run()
    parsed = urllib.parse.urlparse(run.info.artifact_uri) if run else None
    if parsed is not None and parsed.scheme in ("", "file"):
        # <experiment's artifact location>/<run id>/artifacts: name the experiment's folder
        artifacts = Path(urllib.parse.unquote(parsed.path)).parents[1]
        found.append(disks.Place(disks.ARTIFACTS, artifacts))
    return found
