"""Shared fixtures for in-process Image API tests, on SQLite and PostgreSQL.

``api`` is an aiohttp TestClient on the image listener of a noauth2 Cloud
(no local agent), with the Cloud as ``api.cloud``. ``call`` sends one request
as "admin" or as a plain project user "USER:PROJECT" (with X-Roles
member,reader, Glance's secure-RBAC project member) and asks for JSON errors:

    resp, body = await call(api, "POST", "/v2/images", {...}, status=201)
"""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from tests.inprocess import Clouds

BACKENDS = ["sqlite", "postgresql"]
PATCH = "application/openstack-images-v2.1-json-patch"


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def make_api(backend, database_url, tmp_path):
    clouds = Clouds(backend, database_url, tmp_path)

    async def make(extra_image: dict | None = None) -> TestClient:
        client = await clouds.start("image", {"image": extra_image or {}})
        client.store_dir = client.cloud.config.data_dir / "images"
        return client

    yield make
    await clouds.close()


@pytest_asyncio.fixture
async def api(make_api):
    return await make_api()


def headers_for(token: str, extra: dict | None = None) -> dict:
    hdrs = {"X-Auth-Token": token, "Accept": "application/json"}
    if token != "admin":
        hdrs["X-Roles"] = "member,reader"
    hdrs.update(extra or {})
    return hdrs


async def call(api, method, path, body=None, *, token="admin", status=None, headers=None,
               data=None):
    hdrs = headers_for(token, headers)
    if body is not None and data is None:
        data = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    resp = await api.request(method, path, data=data, headers=hdrs)
    raw = await resp.read()
    parsed = json.loads(raw) if resp.content_type == "application/json" and raw else None
    if status is not None:
        assert resp.status == status, (resp.status, parsed or raw[:300])
    return resp, parsed


async def patch(api, image_id, ops, *, token="admin", status=200):
    return await call(api, "PATCH", f"/v2/images/{image_id}", ops, token=token,
                      status=status, headers={"Content-Type": PATCH})


async def create(api, token="admin", **body):
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    _, image = await call(api, "POST", "/v2/images", body, token=token, status=201)
    return image


async def upload(api, image_id, data: bytes, *, token="admin", status=204):
    return await call(api, "PUT", f"/v2/images/{image_id}/file", data=data, token=token,
                      status=status, headers={"Content-Type": "application/octet-stream"})
