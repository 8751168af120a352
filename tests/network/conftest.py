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
from aiohttp.test_utils import TestClient

from tests.inprocess import Clouds

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def make_api(backend, database_url, tmp_path):
    clouds = Clouds(backend, database_url, tmp_path)

    async def make(network: dict | None = None) -> TestClient:
        return await clouds.start("network", {"network": network or {}})

    yield make
    await clouds.close()


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
