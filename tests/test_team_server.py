"""The team server lets in only its team: accounts (MLflow's basic-auth) kept in the server's
folder, an admin password given or generated once, clients' credentials checked in one line."""

import os
import stat

import mlflow
import pytest
import requests
from conftest import TEAM_ADMIN, cli, one_error_line

from daeflow.errors import UsageError
from daeflow.track import auth


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_first_start_generates_the_admin_password_once_for_the_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("DAEFLOW_ADMIN_PASSWORD", raising=False)
    printed: list[str] = []
    env = auth.server_environment(tmp_path, printed.append)

    password = env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    kept = tmp_path / "admin-password"
    assert kept.read_text().strip() == password and len(password) >= 12
    assert [mode(tmp_path / name) for name in ("admin-password", "auth.db", "auth.ini")] == [
        0o600
    ] * 3
    assert sum(password in line for line in printed) == 1
    assert password not in (tmp_path / "auth.ini").read_text()
    config = (tmp_path / "auth.ini").read_text()
    assert "default_permission = READ" in config
    assert "auth_cache_ttl_seconds = 60" in config  # a login hashed once a minute, not per request
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(tmp_path / "auth.ini")

    again: list[str] = []  # a restart: the same password, not printed again
    assert auth.server_environment(tmp_path, again.append)["MLFLOW_AUTH_ADMIN_PASSWORD"] == password
    assert not any(password in line for line in again)


def test_a_given_admin_password_is_used_and_written_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("DAEFLOW_ADMIN_PASSWORD", "given-password-123")
    env = auth.server_environment(tmp_path, print)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "given-password-123"
    assert not (tmp_path / "admin-password").exists()
    assert "given-password-123" not in (tmp_path / "auth.ini").read_text()
    monkeypatch.setenv("DAEFLOW_ADMIN_PASSWORD", "short")
    with pytest.raises(UsageError, match="at least 12"):
        auth.server_environment(tmp_path / "other", print)


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.0.1.1", True), ("localhost", True), ("::1", True),
     ("0.0.0.0", False), ("192.168.1.5", False), ("ml-box", False), ("::", False)],
)  # fmt: skip
def test_loopback_hosts(host, loopback):
    assert auth.is_loopback(host) is loopback


def test_a_short_admin_password_is_refused_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("DAEFLOW_ADMIN_PASSWORD", "short")
    folder = tmp_path / "server"
    result = cli("server", "--dir", folder, "--store", "postgresql://nobody@/x", code=2)
    one_error_line(result, 2, "DAEFLOW_ADMIN_PASSWORD is 5 characters long", "at least 12")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("app", [["--app-name", "other"], ["--app-name=other"]])
def test_an_app_of_ones_own_needs_no_auth(tmp_path, app):
    args = ["server", "--dir", tmp_path / "server", *app]
    one_error_line(cli(*args, code=2), 2, "--app-name", "--no-auth")
    assert not (tmp_path / "server").exists()


@pytest.mark.slow  # starts PostgreSQL and MLflow's server (about 20 s); trains nothing
def test_the_team_server_lets_in_only_its_team(team_server, pair_files, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    search = f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=TEAM_ADMIN, timeout=10).status_code == 200

    # The admin adds a user with MLflow's own API and makes an experiment of its own.
    get_app_client("basic-auth", tracking_uri=team_server.url).create_user(
        "alice", "alice-password-1"
    )
    admin = mlflow.MlflowClient(team_server.url)
    team = admin.create_experiment("team")

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "alice-password-1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    alice = mlflow.MlflowClient(team_server.url)
    assert alice.get_experiment(team).name == "team"  # everyone reads
    with pytest.raises(MlflowException) as refused:
        alice.create_run(team)  # no one writes without a grant
    assert refused.value.get_http_status_code() == 403
    clean, noisy = pair_files(n=12, size=16)
    data = ["--clean", clean, "--noisy", noisy, "--epochs", "1"]
    result = cli("run", *data, "--experiment", "team", "--tracking-uri", team_server.url, code=2)
    one_error_line(result, 2, "refused user 'alice' permission", "(403)", "--experiment")
    assert admin.search_runs([team]) == []

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-her-password")
    result = cli("runs", "--tracking-uri", team_server.url, code=2)
    one_error_line(result, 2, "refused the login of user 'alice'", "MLFLOW_TRACKING_PASSWORD")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    result = cli("runs", "--tracking-uri", team_server.url, code=2)
    one_error_line(result, 2, "asks for a login (401)", "MLFLOW_TRACKING_USERNAME")

    # PostgreSQL's data and socket, and the accounts, are the server's user's only.
    folder = team_server.folder
    assert [mode(folder / name) for name in ("pgdata", "socket")] == [0o700, 0o700]
    assert mode(folder / "socket" / ".s.PGSQL.5432") == 0o700
    assert mode(folder / "auth.db") == 0o600
    assert not (folder / "admin-password").exists()  # DAEFLOW_ADMIN_PASSWORD was given
