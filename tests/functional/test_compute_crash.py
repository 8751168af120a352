"""Crash safety of builds: the database is the truth, whatever dies.

`kill -9` of `cloudd serve` while 100 servers build, then a restart; the
same for an agent; and a retryable spawn failure on one host rescheduled
to the other. Afterwards every server is ACTIVE, or ERROR with a fault,
none stays in BUILD, and placement holds exactly one allocation per live
server.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from cloudd.testing.agents import AgentProcess
from cloudd.testing.poll import wait
from cloudd.testing.process import DIRECT, CloudProcess
from tests.conftest import BACKENDS, backend_env


class Api:
    """Just enough of a client: admin token, JSON in and out."""

    def __init__(self, cloud: CloudProcess) -> None:
        self.cloud = cloud
        self.token = ""

    def login(self) -> None:
        auth = self.cloud.admin_auth()
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "password": auth["password"],
            "domain": {"name": "Default"}}}}, "scope": {"project": {
                "name": auth["project_name"], "domain": {"name": "Default"}}}}}
        req = urllib.request.Request(self.cloud.url + "/identity/v3/auth/tokens",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with DIRECT.open(req, timeout=30) as resp:
            self.token = resp.headers["X-Subject-Token"]

    def __call__(self, method: str, path: str, body: dict | None = None,
                 version: str = "2.latest") -> dict:
        headers = {"X-Auth-Token": self.token, "Content-Type": "application/json"}
        if path.startswith("/compute"):
            headers["OpenStack-API-Version"] = "compute " + version.replace("2.latest",
                                                                            "latest")
        if path.startswith("/placement"):
            headers["OpenStack-API-Version"] = "placement 1.39"
        req = urllib.request.Request(self.cloud.url + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body else None)
        with DIRECT.open(req, timeout=60) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else {}


def _wait(check, what: str, timeout: float = 120.0):
    """``check()`` polled while the cloud may be down (restarting)."""
    return wait(check, what, timeout, ignore=(urllib.error.URLError, ConnectionError))


def _hosts_up(api: Api, count: int) -> bool:
    services = api("GET", "/compute/v2.1/os-services?binary=nova-compute")["services"]
    return sum(s["state"] == "up" for s in services) >= count


def _settled(api: Api) -> list[dict] | None:
    servers = api("GET", "/compute/v2.1/servers/detail")["servers"]
    return None if any(s["status"] == "BUILD" for s in servers) else servers


def _check_outcome(api: Api, servers: list[dict], expected: int) -> None:
    assert len(servers) == expected
    for server in servers:
        assert server["status"] in ("ACTIVE", "ERROR"), server["status"]
        if server["status"] == "ERROR":
            assert server.get("fault", {}).get("message"), server
    live = {s["id"] for s in servers if s["status"] == "ACTIVE"}
    holders = set()
    for rp in api("GET", "/placement/resource_providers")["resource_providers"]:
        allocs = api("GET", f"/placement/resource_providers/{rp['uuid']}/allocations")
        for consumer in allocs["allocations"]:
            assert consumer not in holders, f"{consumer} holds allocations twice"
            holders.add(consumer)
    assert holders == live


def _create_many(api: Api, count: int, name: str) -> None:
    api("POST", "/compute/v2.1/servers", {"server": {
        "name": name, "imageRef": _image(api), "flavorRef": "1", "networks": "none",
        "min_count": count, "max_count": count}})


def _image(api: Api) -> str:
    images = api("GET", "/image/v2/images?name=tiny")["images"]
    if images:
        return images[0]["id"]
    image = api("POST", "/image/v2/images", {"name": "tiny", "disk_format": "raw",
                                             "container_format": "bare",
                                             "visibility": "public"})
    req = urllib.request.Request(f"{api.cloud.url}/image/v2/images/{image['id']}/file",
                                 method="PUT", data=b"\0" * 65536,
                                 headers={"X-Auth-Token": api.token,
                                          "Content-Type": "application/octet-stream"})
    DIRECT.open(req, timeout=60).close()
    return image["id"]


def _delete_all(api: Api) -> None:
    for server in api("GET", "/compute/v2.1/servers")["servers"]:
        api("DELETE", f"/compute/v2.1/servers/{server['id']}")
    _wait(lambda: not api("GET", "/compute/v2.1/servers")["servers"], "servers deleted")


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"crash-{request.param}")
    cloud = CloudProcess(base / "data", env={
        **backend_env(request, request.param), "CLOUDD_COMPUTE__LOCAL_AGENT": "none",
        # As in Nova, a controller outage shorter than service_down_time leaves
        # the hosts up: a restart under load can take several seconds, and the
        # agents reconnect with backoff.
        "CLOUDD_COMPUTE__HEARTBEAT_INTERVAL": "1", "CLOUDD_COMPUTE__SERVICE_DOWN_TIME": "30",
        "CLOUDD_QUOTA__INSTANCES": "-1", "CLOUDD_QUOTA__CORES": "-1",
        "CLOUDD_QUOTA__RAM": "-1"}).start()
    slow = {"CLOUDD_FAKE_DRIVER__DELAY": "0.2", "CLOUDD_FAKE_DRIVER__VCPUS": "64",
            "CLOUDD_FAKE_DRIVER__MEMORY_MB": "131072"}
    agents = {h: AgentProcess(cloud, h, env=slow).start() for h in ("compute1", "compute2")}
    api = Api(cloud)
    api.login()
    _wait(lambda: _hosts_up(api, 2), "two hosts up")
    yield api, cloud, agents
    for agent in agents.values():
        agent.stop()
    cloud.stop()


@pytest.fixture(autouse=True)
def _no_servers_left(env):
    """Each test starts with no servers, whatever the one before it did."""
    yield
    _delete_all(env[0])


def test_controller_killed_mid_build(env):
    api, cloud, _ = env
    _create_many(api, 100, "crash")
    time.sleep(1.0)
    cloud.stop(sig=signal.SIGKILL)
    cloud.start()
    api.login()
    servers = _wait(lambda: _settled(api), "no server in BUILD", timeout=180)
    _check_outcome(api, servers, 100)
    assert sum(s["status"] == "ACTIVE" for s in servers) == 100


def test_agent_killed_mid_build(env):
    api, _, agents = env
    _create_many(api, 40, "agent-crash")
    time.sleep(1.0)
    agents["compute1"].stop(sig=signal.SIGKILL)
    time.sleep(1.0)
    agents["compute1"].start()
    servers = _wait(lambda: _settled(api), "no server in BUILD", timeout=180)
    _check_outcome(api, servers, 40)


def test_retryable_spawn_failure_reschedules(env):
    api, cloud, agents = env
    agents["compute1"].stop()
    failing = AgentProcess(cloud, "compute1", env={
        "CLOUDD_FAKE_DRIVER__RETRYABLE_FAILURE": "true",
        "CLOUDD_FAKE_DRIVER__MEMORY_MB": "262144", "CLOUDD_FAKE_DRIVER__VCPUS": "64"}).start()
    agents["compute1"] = failing
    _wait(lambda: _hosts_up(api, 2), "two hosts up")
    _create_many(api, 4, "resched")
    servers = _wait(lambda: _settled(api), "builds settled")
    _check_outcome(api, servers, 4)
    for server in servers:
        assert server["status"] == "ACTIVE"
        assert server["OS-EXT-SRV-ATTR:host"] == "compute2"
