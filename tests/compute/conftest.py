"""Shared fixtures for in-process Compute API tests, on SQLite and PostgreSQL.

``api`` is an aiohttp TestClient on the compute listener of a noauth2 Cloud
(no local agent), with the Cloud as ``api.cloud``. ``call`` sends one request
with a noauth2 token and a compute microversion:

    resp, body = await call(api, "GET", "/v2.1/flavors", status=200)
    await call(api, "POST", "/v2.1/os-keypairs", {...}, token="alice:p1", version="2.92")

Tokens: "admin" is an admin; "USER:PROJECT" is a plain project user, sent with
``X-Roles: member,reader`` (Nova's secure-RBAC member) unless ``headers``
gives X-Roles itself (``headers={"X-Roles": ""}`` for a user with no role).
Tests needing other config use the ``make_api`` factory:
``api = await make_api({"quota": {"instances": 2}})``.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from cloudd.config import Config
from cloudd.server import Cloud
from cloudd.web.app import build_listener
from tests.compute.conductor_sim import Sim

BACKENDS = ["sqlite", "postgresql"]
# Public, active images every compute API test cloud has (uploaded through
# the image API): servers boot from them.
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
IMAGE_ALT = "9bd7e8d3-5b46-4a3f-bb57-5d3c2f0c5a11"


async def _upload_images(cloud) -> None:
    images = TestClient(TestServer(build_listener(cloud, "image")))
    await images.start_server()
    try:
        for image_id, name in ((IMAGE, "test-image"), (IMAGE_ALT, "test-image-alt")):
            resp = await images.post("/v2/images", headers={"X-Auth-Token": "admin"}, json={
                "id": image_id, "name": name, "disk_format": "raw",
                "container_format": "bare", "visibility": "public"})
            assert resp.status == 201, await resp.text()
            resp = await images.put(f"/v2/images/{image_id}/file", data=b"\0" * 65536,
                                    headers={"X-Auth-Token": "admin",
                                             "Content-Type": "application/octet-stream"})
            assert resp.status == 204, await resp.text()
    finally:
        await images.close()


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def make_api(backend, database_url, tmp_path):
    """A factory: ``await make_api(extra_config)`` -> started TestClient (closed
    at teardown). Several calls give several clouds on separate databases."""
    started: list[tuple[TestClient, Cloud]] = []

    async def make(extra: dict | None = None) -> TestClient:
        data = tmp_path / f"data{len(started)}"
        cfg = Config.model_validate(_merge({
            "server": {"data_dir": str(data)},
            "database": {"url": database_url(backend, data)},
            "auth": {"strategy": "noauth2"},
            "identity": {"password_hash_rounds": 4},
            "compute": {"local_agent": "none"}}, extra or {}))
        cloud = Cloud(cfg)
        await cloud.start()
        await _upload_images(cloud)
        client = TestClient(TestServer(build_listener(cloud, "compute")))
        await client.start_server()
        client.cloud = cloud
        client.backend = backend
        started.append((client, cloud))
        return client

    yield make
    for client, cloud in reversed(started):
        await client.close()
        await cloud.stop(5)


@pytest_asyncio.fixture
async def api(make_api):
    """A compute API with the default configuration."""
    return await make_api()


async def call(api, method, path, body=None, *, token="admin", version="2.1",
               status=None, headers=None):
    """Send one request; returns (response, parsed JSON body or None)."""
    hdrs = {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}
    if token != "admin":
        hdrs["X-Roles"] = "member,reader"
    hdrs.update(headers or {})
    resp = await api.request(method, path, json=body, headers=hdrs)
    data = await resp.json() if resp.content_type == "application/json" else None
    if status is not None:
        assert resp.status == status, (resp.status, data)
    return resp, data


async def sim_cloud(make_api, config: dict | None = None, network=None):
    """(api, sim): builds are woken into ``api.woken`` (run them with the
    simulated agents of ``sim``, host1 added); ``network`` stands in for the
    cloud's network service when given."""
    api = await make_api({"runtime": {"sync_cast": True}, **(config or {})})
    await api.cloud.supervisor.quiesce()
    api.woken = []
    api.cloud.compute.wake = api.woken.append
    if network is not None:
        api.cloud.network = network
    sim = Sim(api.cloud)
    await sim.add_host("host1")
    return api, sim


@pytest_asyncio.fixture
async def real(make_api):
    """(api, sim, neutron): a cloud with its own network service, builds run
    by the conductor with the simulated agent of host1 (``sim``), and its
    Neutron API as ``neutron`` (a client on the same cloud's network
    listener)."""
    api, sim = await sim_cloud(make_api)
    neutron = TestClient(TestServer(build_listener(api.cloud, "network")))
    await neutron.start_server()
    yield api, sim, neutron
    await neutron.close()
