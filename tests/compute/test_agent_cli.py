"""`cloudd host add|list|remove`, `cloudd agent` and the local agent of `cloudd serve`,
run as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import stat
import subprocess
import sys

import bcrypt
import pytest
import requests
from sqlalchemy import select

from cloudd.db import Database
from cloudd.db import tables as t
from cloudd.testing.agents import AgentProcess
from cloudd.testing.poll import wait
from cloudd.testing.process import CloudProcess
from tests.conftest import BACKENDS, backend_env


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def cloudd(data_dir, env, *args, check=True):
    res = subprocess.run([sys.executable, "-m", "cloudd", "--data-dir", str(data_dir), *args],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def stored_hashes(data_dir, env) -> dict[str, str]:
    url = env.get("CLOUDD_DATABASE__URL") or f"sqlite+aiosqlite:///{data_dir / 'cloudd.db'}"

    async def read():
        db = Database(url)
        try:
            async with db.read() as conn:
                rows = await conn.execute(select(t.agent_credential))
                return {r.host: r.secret_hash for r in rows}
        finally:
            await db.close()
    return asyncio.run(read())


def host_states(data_dir, env) -> dict[str, str]:
    out = cloudd(data_dir, env, "host", "list").stdout.splitlines()[1:]
    return {line.split()[0]: line[31:45].strip() for line in out}


def wait_until(predicate, timeout=20.0):
    return wait(predicate, "the agent", timeout, interval=0.1)


def test_host_add_shows_the_credential_once_and_stores_a_hash(request, tmp_path, backend):
    env = {**CloudProcess(tmp_path).env(), **backend_env(request, backend)}
    data = tmp_path / "data"
    out = cloudd(data, env, "host", "add", "edge1").stdout
    secret = out.splitlines()[1].strip()
    assert len(secret) >= 40 and "cloudd agent" in out
    path = tmp_path / "edge2.key"
    out = cloudd(data, env, "host", "add", "edge2", "--output", str(path)).stdout
    assert str(path) in out and "0600" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hashes = stored_hashes(data, env)
    assert set(hashes) == {"edge1", "edge2"}
    assert secret not in hashes["edge1"]
    assert bcrypt.checkpw(secret.encode(), hashes["edge1"].encode())
    assert bcrypt.checkpw(path.read_text().strip().encode(), hashes["edge2"].encode())
    assert host_states(data, env) == {"edge1": "never seen", "edge2": "never seen"}
    assert cloudd(data, env, "host", "remove", "edge1").returncode == 0
    res = cloudd(data, env, "host", "remove", "edge1", check=False)
    assert res.returncode == 1 and "no credential for host edge1" in res.stderr
    assert set(stored_hashes(data, env)) == {"edge2"}
    res = cloudd(data, env, "host", "add", "bad:name", check=False)
    assert res.returncode == 2 and "invalid host name" in res.stderr


def admin_token(proc: CloudProcess) -> str:
    auth = proc.admin_auth()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "domain": {"id": "default"}, "password": auth["password"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = requests.post(proc.url + "/identity/v3/auth/tokens", json=body, timeout=30)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def test_serve_runs_a_local_agent_and_remote_agents_join(request, tmp_path, backend):
    env = backend_env(request, backend)
    env.update({"CLOUDD_COMPUTE__LOCAL_AGENT": "fake", "CLOUDD_COMPUTE__HEARTBEAT_INTERVAL": "0.5",
                "CLOUDD_FAKE_DRIVER__VCPUS": "6"})
    proc = CloudProcess(tmp_path / "data", env=env).start()
    agent = bad = None
    try:
        admin_env = {**proc.env()}
        me = socket.gethostname()
        wait_until(lambda: host_states(proc.data_dir, admin_env).get(me) == "up")
        h = {"X-Auth-Token": admin_token(proc), "OpenStack-API-Version": "placement 1.39"}
        rps = requests.get(f"{proc.url}/placement/resource_providers?name={me}",
                           headers=h).json()["resource_providers"]
        assert len(rps) == 1
        inv = requests.get(f"{proc.url}/placement/resource_providers/{rps[0]['uuid']}"
                           "/inventories", headers=h).json()["inventories"]
        assert inv["VCPU"]["total"] == 6
        # A remote agent with its own credential joins, then stops cleanly on SIGTERM.
        agent = AgentProcess(proc, "edge1").start()
        wait_until(lambda: host_states(proc.data_dir, admin_env).get("edge1") == "up")
        assert agent.stop() == 0, agent.log_text()
        # An agent with a wrong credential gives up with a clear message.
        bad = AgentProcess(proc, "edge2")
        bad.dir.mkdir(parents=True)
        bad.credential_file.write_text("not-the-secret\n")
        bad.credential_file.chmod(0o600)
        bad.start()
        assert bad.proc.wait(30) == 1
        assert "rejected the credential for host 'edge2' (401)" in bad.log_text()
    finally:
        for a in (agent, bad):
            if a is not None:
                a.stop()
        assert proc.stop() == 0, proc.log_text()[-3000:]
