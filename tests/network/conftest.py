"""In-process Network API tests, on SQLite and PostgreSQL.

``api`` is an aiohttp TestClient on the network listener of a noauth2 Cloud
(no local agent), with the Cloud as ``api.cloud``. ``call`` sends one request
as "admin" or as a project member "USER:PROJECT" (roles member,reader):

    resp, body = await call(api, "POST", "/v2.0/networks", {...}, status=201)
"""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from cloudd.config import Config
from cloudd.server import Cloud
from cloudd.web.app import build_listener

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def make_api(backend, database_url, tmp_path):
    started: list[tuple[TestClient, Cloud]] = []

    async def make(network: dict | None = None) -> TestClient:
        data = tmp_path / f"data{len(started)}"
        cfg = Config.model_validate({
            "server": {"data_dir": str(data)},
            "database": {"url": database_url(backend, data)},
            "auth": {"strategy": "noauth2"},
            "identity": {"password_hash_rounds": 4},
            "compute": {"local_agent": "none"},
            "network": network or {}})
        cloud = Cloud(cfg)
        await cloud.start()
        client = TestClient(TestServer(build_listener(cloud, "network")))
        await client.start_server()
        client.cloud = cloud
        started.append((client, cloud))
        return client

    yield make
    for client, cloud in reversed(started):
        await client.close()
        await cloud.stop(5)


@pytest_asyncio.fixture
async def api(make_api):
    return await make_api()


def headers_for(token: str) -> dict:
    hdrs = {"X-Auth-Token": token, "Accept": "application/json"}
    if token != "admin":
        hdrs["X-Roles"] = "member,reader"
    return hdrs


async def call(api, method, path, body=None, *, token="admin", status=None):
    hdrs = headers_for(token)
    data = None
    if body is not None:
        data = json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    resp = await api.request(method, path, data=data, headers=hdrs)
    raw = await resp.read()
    parsed = json.loads(raw) if raw and resp.content_type == "application/json" else None
    if status is not None:
        assert resp.status == status, (resp.status, parsed or raw[:300])
    return resp, parsed


async def error_of(api, method, path, body=None, *, token="admin", status):
    """The NeutronError body of a failing request: (type, message)."""
    _, body = await call(api, method, path, body, token=token, status=status)
    err = body["NeutronError"]
    assert set(err) == {"type", "message", "detail"}
    return err["type"], err["message"]


async def network(api, token="admin", **attrs):
    _, body = await call(api, "POST", "/v2.0/networks", {"network": attrs}, token=token,
                         status=201)
    return body["network"]


async def subnet(api, network_id, cidr, token="admin", **attrs):
    attrs.setdefault("ip_version", 6 if ":" in cidr else 4)
    _, body = await call(api, "POST", "/v2.0/subnets",
                         {"subnet": {"network_id": network_id, "cidr": cidr, **attrs}},
                         token=token, status=201)
    return body["subnet"]


async def port(api, network_id, token="admin", **attrs):
    _, body = await call(api, "POST", "/v2.0/ports",
                         {"port": {"network_id": network_id, **attrs}}, token=token,
                         status=201)
    return body["port"]
