"""Tempest's compute API tests against `cloudd serve` with two fake-driver agents.

Tempest (from PyPI, in `.tempest-venv`, made by `make test`) runs its own
tests with its own response schemas, with the network service on (servers
boot on the shared ``default`` network; Tempest skips what needs a Neutron
extension cloudd does not list); this module starts the cloud, writes
the tempest.conf, runs the selection and reports the pass/skip/fail counts
and every skip reason (printed at the end of the run by tests/summaries.py).
Run on SQLite: the compute code paths are the same on PostgreSQL, which the
compute CLI test covers.
"""

from __future__ import annotations

import collections
import json
import os
import time
import urllib.request

import pytest

from cloudd.services.network import extensions
from cloudd.testing import tempest
from cloudd.testing.agents import AgentProcess
from cloudd.testing.process import DIRECT, CloudProcess
from tests.conftest import FAST

SELECTION = (r"^tempest\.api\.compute\.(servers|flavors|keypairs|admin|limits|"
             r"test_versions|test_quotas)\.")
# Tests Tempest runs although they use a feature tempest.conf disables:
# UnshelveToHostMultiNodesTest shelves without checking
# [compute-feature-enabled] shelve (cloudd has no shelve yet).
EXCLUDE = r"^tempest\.api\.compute\.admin\.test_servers_on_multinodes\.UnshelveToHostMultiNodesTest\."
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


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not tempest.TEMPEST.exists():
        msg = f"Tempest is not installed in {tempest.VENV} (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    base = tmp_path_factory.mktemp("tempest")
    cloud = CloudProcess(base / "data", env={
        **FAST, "CLOUDD_COMPUTE__LOCAL_AGENT": "none",
        "CLOUDD_COMPUTE__HEARTBEAT_INTERVAL": "2"}).start()
    agents = [AgentProcess(cloud, host).start() for host in HOSTS]
    try:
        wait_for_hosts(cloud, len(HOSTS))
        workspace = base / "workspace"
        tempest.init_workspace(workspace)
        tempest.write_conf(workspace, url=cloud.url, admin=cloud.admin_auth(),
                           image_ref=upload_image(cloud, "tempest-image"),
                           image_ref_alt=upload_image(cloud, "tempest-image-alt"),
                           min_compute_nodes=len(HOSTS),
                           network_extensions=[e[0] for e in extensions.EXTENSIONS])
        yield tempest.run(workspace, SELECTION, exclude=EXCLUDE)
    finally:
        for agent in agents:
            agent.stop()
        cloud.stop()


def _report(res: tempest.Results) -> str:
    lines = [res.summary()]
    by_reason = collections.defaultdict(list)
    for name, reason in res.skipped.items():
        by_reason[reason.splitlines()[0] if reason else "(no reason given)"].append(name)
    for reason, names in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  skipped {len(names):3d}: {reason}")
    for name, detail in sorted(res.failed.items()):
        lines.append(f"  FAILED {name}")
        lines += ["      " + line for line in detail.splitlines()[-15:]]
    return "\n".join(lines)


def test_tempest_compute_api_passes(results, record_property):
    # Printed at the end of the run (tests/summaries.py), pass or fail.
    record_property("tempest_summary", _report(results))
    assert not results.failed, (
        f"{results.summary()}; failed: " + ", ".join(sorted(results.failed)))


def test_tempest_ran_the_compute_api(results):
    """The selection really ran: most of it passes rather than being skipped."""
    assert len(results.passed) > len(results.skipped), results.summary()
