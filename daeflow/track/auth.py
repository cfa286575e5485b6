"""Who may use the team server: MLflow's basic-auth app, its accounts kept in the server's folder.

The accounts and their per-experiment permissions live in a sqlite file in the folder
(`auth.db`, readable by the server's user only). On first start MLflow creates the
`admin` account with the password in DAEFLOW_ADMIN_PASSWORD or, without it, a generated
one that is written to `admin-password` (mode 0600) and printed once. The password
reaches `mlflow server` through its environment, never a configuration file. Accounts
and permissions are then managed with MLflow's own API
(`mlflow.server.get_app_client("basic-auth", uri)`) or the admin pages of its UI.
"""

import importlib.metadata
import importlib.util
import ipaddress
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from daeflow.errors import UsageError

APP = "basic-auth"  # the name of MLflow's authentication app (`mlflow server --app-name`)
ADMIN = "admin"
# An account without a grant reads every experiment and model, and writes only to what it
# created or was granted: teammates can compare runs but not overwrite one another's.
DEFAULT_PERMISSION = "READ"
DATABASE, CONFIG, PASSWORD_FILE = "auth.db", "auth.ini", "admin-password"
PASSWORD_VARIABLE = "DAEFLOW_ADMIN_PASSWORD"
MIN_PASSWORD = 12  # MLflow refuses shorter passwords
# MLflow checks a login by hashing the password (scrypt, about 0.1 s of CPU): once per
# request, that made logging 200 metrics take 42-58 s instead of 2-3 s. A worker remembers
# a login it has checked for this long; a password changed or an account deleted through
# another worker is refused there only after it.
LOGIN_CACHE_SECONDS = 60
MLFLOW_NEEDED = (3, 17)  # no default admin password; MLFLOW_AUTH_ADMIN_PASSWORD

_CONFIG_TEXT = """\
# Written by `daeflow server` at every start; the admin password is not kept here.
[mlflow]
default_permission = {permission}
database_uri = sqlite:///{database}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = {cache_seconds}
"""


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_available() -> None:
    """Refuse, in one line, an MLflow that cannot run its authentication as daeflow sets it up."""
    version = importlib.metadata.version("mlflow")
    found = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if found < MLFLOW_NEEDED:
        needed = ".".join(map(str, MLFLOW_NEEDED))
        raise UsageError(
            f"The server's accounts need MLflow {needed} or newer; found {version}. "
            "Run: pip install 'daeflow[server]' (or pass --no-auth, on a trusted network only)."
        )
    if importlib.util.find_spec("flask_wtf") is None:
        raise UsageError(
            "MLflow's authentication needs Flask-WTF, which is not installed. Run: pip install "
            "'daeflow[server]' (or pass --no-auth, on a trusted network only)."
        )


def server_environment(folder: Path, write: Callable[[str], object]) -> dict[str, str]:
    """Prepare the accounts' database and configuration in `folder`; the variables that
    `mlflow server --app-name basic-auth` needs."""
    folder = Path(folder).resolve()
    database = folder / DATABASE
    first_start = not database.is_file() or database.stat().st_size == 0
    password = _admin_password(folder, first_start, write)
    _create_private(database)  # sqlite takes an empty file as a new database, keeping its mode
    config = folder / CONFIG
    config.unlink(missing_ok=True)
    _create_private(
        config,
        _CONFIG_TEXT.format(
            permission=DEFAULT_PERMISSION,
            database=database,
            admin=ADMIN,
            cache_seconds=LOGIN_CACHE_SECONDS,
        ),
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
        # Signs the form of MLflow's sign-up page; one key for all the server's workers.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
        or secrets.token_hex(32),
    }
    if password:
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
    return env


def _admin_password(folder: Path, first_start: bool, write: Callable[[str], object]) -> str:
    """The password the admin account is created with (MLflow ignores it once it exists)."""
    given = os.environ.get(PASSWORD_VARIABLE, "")
    if given:
        if len(given) < MIN_PASSWORD:
            raise UsageError(
                f"{PASSWORD_VARIABLE} is {len(given)} characters long; MLflow needs at least "
                f"{MIN_PASSWORD}. Set a longer one, or unset it to have one generated."
            )
        if not first_start:
            write(
                f"The {ADMIN!r} account exists already: {PASSWORD_VARIABLE} is not used. "
                "Change its password with MLflow's update_user_password (see docs/long-runs.md)."
            )
        return given
    kept = folder / PASSWORD_FILE
    if kept.is_file():  # generated at an earlier start
        return kept.read_text().strip()
    if not first_start:
        return ""
    password = secrets.token_urlsafe(18)
    _create_private(kept, password + "\n")
    write(f"Account {ADMIN!r} created, password: {password}")
    write(f"(printed this once; kept in {kept}, readable by you only)")
    return password


def _create_private(path: Path, text: str | None = None) -> None:
    """Create `path` readable and writable by its owner only (unless it exists), with `text`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        if text:
            file.write(text)
