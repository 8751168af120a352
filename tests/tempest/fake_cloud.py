"""The cloud Tempest runs against: `cloudd serve` with two fake-driver agents
and a tempest.conf for it (network service on)."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudd.services.network import extensions
from cloudd.testing import tempest
from cloudd.testing.agents import AgentProcess
from cloudd.testing.process import DIRECT, CloudProcess
from tests.conftest import FAST

HOSTS = ("compute1", "compute2")


def _token(cloud: CloudProcess) -> str:
    auth = cloud.admin_auth()
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "password": auth["password"],
        "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": auth["project_name"], "domain": {"name": "Default"}}}}}
    req = urllib.request.Request(cloud.url + "/identity/v3/auth/tokens",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with DIRECT.open(req, timeout=10) as resp:
        return resp.headers["X-Subject-Token"]


def upload_image(cloud: CloudProcess, name: str) -> str:
    """A small public raw image through the image API; its id."""
    token = _token(cloud)
    body = json.dumps({"name": name, "disk_format": "raw", "container_format": "bare",
                       "visibility": "public"}).encode()
    req = urllib.request.Request(cloud.url + "/image/v2/images", data=body, headers={
        "X-Auth-Token": token, "Content-Type": "application/json"})
    with DIRECT.open(req, timeout=30) as resp:
        image = json.load(resp)
    req = urllib.request.Request(f"{cloud.url}/image/v2/images/{image['id']}/file",
                                 method="PUT", data=b"\0" * 1024 * 1024, headers={
                                     "X-Auth-Token": token,
                                     "Content-Type": "application/octet-stream"})
    DIRECT.open(req, timeout=60).close()
    return image["id"]


def wait_for_hosts(cloud: CloudProcess, count: int, timeout: float = 60) -> None:
    token = _token(cloud)
    deadline = time.monotonic() + timeout
    services = []
    while time.monotonic() < deadline:
        req = urllib.request.Request(cloud.url + "/compute/v2.1/os-services?binary=nova-compute",
                                     headers={"X-Auth-Token": token})
        with DIRECT.open(req, timeout=10) as resp:
            services = json.load(resp)["services"]
        if sum(1 for s in services if s["state"] == "up") >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"compute hosts did not come up: {services}")


@contextlib.contextmanager
def tempest_cloud(base: Path) -> Iterator[tuple[Path, Path]]:
    """(workspace, tempest.conf) of a running cloud with HOSTS as fake agents;
    everything stopped afterwards. A missing Tempest fails on CI, skips
    elsewhere."""
    if not tempest.TEMPEST.exists():
        msg = f"Tempest is not installed in {tempest.VENV} (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    cloud = CloudProcess(base / "data", env={
        **FAST, "CLOUDD_COMPUTE__LOCAL_AGENT": "none",
        "CLOUDD_COMPUTE__HEARTBEAT_INTERVAL": "2"}).start()
    agents = [AgentProcess(cloud, host).start() for host in HOSTS]
    try:
        wait_for_hosts(cloud, len(HOSTS))
        workspace = base / "workspace"
        tempest.init_workspace(workspace)
        conf = tempest.write_conf(workspace, url=cloud.url, admin=cloud.admin_auth(),
                                  image_ref=upload_image(cloud, "tempest-image"),
                                  image_ref_alt=upload_image(cloud, "tempest-image-alt"),
                                  min_compute_nodes=len(HOSTS),
                                  network_extensions=[e[0] for e in extensions.EXTENSIONS])
        yield workspace, conf
    finally:
        for agent in agents:
            agent.stop()
        cloud.stop()
