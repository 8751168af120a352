"""A cloudd process over its life: graceful SIGTERM, restarts, lockout, start-up errors."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
import requests

from cloudd.testing.process import CloudProcess
from tests.conftest import BACKENDS, backend_env


def password_token(url: str, user: str, password: str, project: str | None = "admin"):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}}}
    if project:
        body["auth"]["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    return requests.post(url + "/identity/v3/auth/tokens", json=body, timeout=60)


def admin_token(proc: CloudProcess) -> str:
    auth = proc.admin_auth()
    r = password_token(proc.url, auth["username"], auth["password"])
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def test_sigterm_finishes_the_request_in_flight(request, tmp_path, backend):
    env = backend_env(request, backend)
    env["CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS"] = "14"   # about a second per hash
    proc = CloudProcess(tmp_path / "data", env=env).start()
    token = admin_token(proc)
    result = {}

    def slow_create():
        r = requests.post(proc.url + "/identity/v3/users", headers={"X-Auth-Token": token},
                          json={"user": {"name": "slow", "password": "pw"}}, timeout=60)
        result["status"] = r.status_code

    worker = threading.Thread(target=slow_create)
    worker.start()
    time.sleep(0.3)                      # the request is now hashing the password
    proc.proc.send_signal(signal.SIGTERM)
    worker.join(30)
    assert result.get("status") == 201
    assert proc.stop() == 0
    # The user created during shutdown is there after a restart.
    proc.start()
    try:
        r = requests.get(proc.url + "/identity/v3/users?name=slow",
                         headers={"X-Auth-Token": admin_token(proc)})
        assert [u["name"] for u in r.json()["users"]] == ["slow"]
    finally:
        assert proc.stop() == 0


def test_restart_keeps_projects_users_credentials_and_tokens(request, tmp_path, backend):
    proc = CloudProcess(tmp_path / "data", env=backend_env(request, backend)).start()
    url = proc.url
    h = {"X-Auth-Token": admin_token(proc)}
    project = requests.post(url + "/identity/v3/projects", headers=h,
                            json={"project": {"name": "keep"}}).json()["project"]
    user = requests.post(url + "/identity/v3/users", headers=h, json={"user": {
        "name": "kept", "password": "kept-pw"}}).json()["user"]
    member = requests.get(url + "/identity/v3/roles?name=member", headers=h).json()["roles"][0]
    assert requests.put(f"{url}/identity/v3/projects/{project['id']}/users/{user['id']}"
                        f"/roles/{member['id']}", headers=h).status_code == 204
    r = password_token(url, "kept", "kept-pw", "keep")
    user_token = r.headers["X-Subject-Token"]
    cred = requests.post(f"{url}/identity/v3/users/{user['id']}/application_credentials",
                         headers={"X-Auth-Token": user_token},
                         json={"application_credential": {"name": "kc"}}).json()
    cred = cred["application_credential"]
    assert proc.stop() == 0

    proc.start()
    try:
        # The token issued before the restart still validates (keys persisted).
        check = requests.get(url + "/identity/v3/auth/tokens", headers={
            "X-Auth-Token": user_token, "X-Subject-Token": user_token})
        assert check.status_code == 200
        assert check.json()["token"]["project"]["name"] == "keep"
        assert password_token(url, "kept", "kept-pw", "keep").status_code == 201
        body = {"auth": {"identity": {"methods": ["application_credential"],
                                      "application_credential": {"id": cred["id"],
                                                                 "secret": cred["secret"]}}}}
        r = requests.post(url + "/identity/v3/auth/tokens", json=body)
        assert r.status_code == 201 and r.json()["token"]["project"]["id"] == project["id"]
    finally:
        assert proc.stop() == 0


def test_files_holding_secrets_are_private(tmp_path):
    proc = CloudProcess(tmp_path / "data", env={"CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4"})
    proc.start()
    try:
        data = proc.data_dir
        for path in [data / "clouds.yaml", data / "cloudd.db",
                     *sorted((data / "fernet-keys").iterdir())]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE((data / "fernet-keys").stat().st_mode) == 0o700
        # The admin password is printed once to the terminal, never logged.
        password = proc.admin_auth()["password"]
        lines = [line for line in proc.log_text().splitlines() if password in line]
        assert len(lines) == 1 and "Admin password" in lines[0] and "level=" not in lines[0]
        first_start = proc.log_text()
    finally:
        assert proc.stop() == 0
    # Bootstrapping is done once: a restart prints no new password.
    proc.start()
    try:
        assert proc.log_text().count("Admin password") == first_start.count("Admin password")
    finally:
        assert proc.stop() == 0


def test_lockout_after_failed_logins(tmp_path):
    env = {"CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4",
           "CLOUDD_IDENTITY__LOCKOUT_FAILURE_ATTEMPTS": "2",
           "CLOUDD_IDENTITY__LOCKOUT_DURATION": "2"}
    proc = CloudProcess(tmp_path / "data", env=env).start()
    try:
        password = proc.admin_auth()["password"]
        for _ in range(2):
            assert password_token(proc.url, "admin", "wrong").status_code == 401
        locked = password_token(proc.url, "admin", password)
        assert locked.status_code == 401 and "locked" in locked.json()["error"]["message"]
        time.sleep(2.2)
        assert password_token(proc.url, "admin", password).status_code == 201
    finally:
        assert proc.stop() == 0


def test_token_key_rotation_keeps_old_tokens_valid(tmp_path):
    proc = CloudProcess(tmp_path / "data", env={"CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4"})
    proc.start()
    try:
        before = admin_token(proc)
        subprocess.run([sys.executable, "-m", "cloudd", "--data-dir", str(proc.data_dir),
                        "token-keys", "rotate"], check=True, capture_output=True,
                       env=proc.env())
        after = admin_token(proc)
        assert after != before
        for tok in (before, after):
            r = requests.get(proc.url + "/identity/v3/auth/tokens",
                             headers={"X-Auth-Token": after, "X-Subject-Token": tok})
            assert r.status_code == 200
    finally:
        assert proc.stop() == 0


def test_refuses_a_database_newer_than_itself(tmp_path):
    proc = CloudProcess(tmp_path / "data", env={"CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4"})
    proc.start()
    assert proc.stop() == 0
    import sqlite3
    with sqlite3.connect(proc.data_dir / "cloudd.db") as db:
        db.execute("UPDATE schema_version SET version = version + 100")
    res = subprocess.run([sys.executable, "-m", "cloudd", "--data-dir", str(proc.data_dir),
                          "serve", "--listen", f"127.0.0.1:{proc.port}"],
                         capture_output=True, text=True, timeout=30, env=proc.env())
    assert res.returncode != 0
    assert "newer than this cloudd" in res.stderr
    assert "Traceback" not in res.stderr
    assert os.path.exists(proc.data_dir / "cloudd.db")


def test_an_api_on_its_own_listener(tmp_path):
    from cloudd.testing.postgres import free_port
    port = free_port()
    env = {"CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4",
           "CLOUDD_LISTENERS__IDENTITY": f"127.0.0.1:{port}"}
    proc = CloudProcess(tmp_path / "data", env=env).start()
    try:
        root = requests.get(f"http://127.0.0.1:{port}/")
        assert root.status_code == 300
        href = root.json()["versions"]["values"][0]["links"][0]["href"]
        assert href == f"http://127.0.0.1:{port}/v3/"
        auth = proc.admin_auth()
        r = password_token(f"http://127.0.0.1:{port}", auth["username"], auth["password"])
        # password_token adds /identity: on its own port identity is at the root.
        assert r.status_code == 404 and r.json()["error"]["code"] == 404
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": auth["password"]}}}}}
        r = requests.post(f"http://127.0.0.1:{port}/v3/auth/tokens", json=body)
        assert r.status_code == 201 and r.headers["x-openstack-request-id"]
    finally:
        assert proc.stop() == 0
