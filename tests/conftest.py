"""Shared fixtures: a throwaway PostgreSQL, and real `cloudd serve` processes.

Every functional test runs against both databases. On CI (CI=true) a missing
PostgreSQL is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cloudd.testing.postgres import PostgresServer, PostgresUnavailable
from cloudd.testing.process import CloudProcess

pytest_plugins = ["tests.summaries"]

BACKENDS = ["sqlite", "postgresql"]
OPENSTACK = str(Path(sys.executable).parent / "openstack")
# Fast hashes in tests; the default cost is what users get.
FAST = {"CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4"}


@pytest.fixture(scope="session")
def postgres():
    try:
        server = PostgresServer().start()
    except (PostgresUnavailable, subprocess.CalledProcessError, FileNotFoundError) as e:
        detail = getattr(e, "stderr", b"") or b""
        msg = f"PostgreSQL unavailable: {e} {detail.decode(errors='replace')}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    yield server
    server.stop()


@pytest.fixture
def database_url(request):
    """A fresh, empty database URL for the backend named by the test's param."""
    def make(backend: str, tmp: Path) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp / 'cloudd.db'}"
        pg = request.getfixturevalue("postgres")
        return pg.create_database(f"t_{uuid.uuid4().hex[:12]}")
    return make


def backend_env(request, backend: str) -> dict[str, str]:
    env = dict(FAST)
    if backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        env["CLOUDD_DATABASE__URL"] = pg.create_database(f"t_{uuid.uuid4().hex[:12]}")
    return env


@pytest.fixture(scope="module", params=BACKENDS)
def cloud(request, tmp_path_factory):
    """A running cloudd shared by one test module, once per database backend."""
    data = tmp_path_factory.mktemp(f"cloud-{request.param}") / "data"
    proc = CloudProcess(data, env=backend_env(request, request.param)).start()
    proc.backend = request.param
    yield proc
    code = proc.stop()
    assert code == 0, proc.log_text()[-3000:]


class Osc:
    """The real `openstack` CLI against one cloud."""

    def __init__(self, cloud: CloudProcess) -> None:
        self.cloud = cloud

    def env(self, **auth: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        if auth:
            env.update({f"OS_{k.upper()}": v for k, v in auth.items()})
            env.setdefault("OS_AUTH_URL", self.cloud.url + "/identity")
            env.setdefault("OS_IDENTITY_API_VERSION", "3")
        else:
            env["OS_CLIENT_CONFIG_FILE"] = str(self.cloud.clouds_yaml)
            env["OS_CLOUD"] = "cloudd"
        return env

    def run(self, *args: str, auth: dict | None = None, check: bool = True):
        """Run a command; with -f json in args the output is parsed."""
        res = subprocess.run([OPENSTACK, *args], env=self.env(**(auth or {})),
                             capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} failed ({res.returncode}):\n"
                                 f"{res.stdout}\n{res.stderr}")
        if check and "json" in args:
            return json.loads(res.stdout) if res.stdout.strip() else None
        return res

    def json(self, *args: str, auth: dict | None = None):
        return self.run(*args, "-f", "json", auth=auth)


@pytest.fixture(scope="module")
def osc(cloud):
    return Osc(cloud)


def user_auth(username: str, password: str, project: str | None = "demo") -> dict:
    auth = {"username": username, "password": password, "user_domain_name": "Default"}
    if project:
        auth.update(project_name=project, project_domain_name="Default")
    return auth
