"""Provider-side Placement API, in process, on SQLite and PostgreSQL.

What the gabbi files do not pin down: racing writers get clean 409s, renaming
a custom class in use keeps its inventory, bodiless responses carry no
content type, usages grouped by consumer type, and tree re-parenting moving
a whole subtree's root.
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from cloudd.config import Config
from cloudd.db import tables as t
from cloudd.server import Cloud
from cloudd.services.placement.util import utcnow
from cloudd.web.app import build_listener

BACKENDS = ["sqlite", "postgresql"]
HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement latest"}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def api(backend, database_url, tmp_path):
    data = tmp_path / "data"
    cfg = Config.model_validate({
        "server": {"data_dir": str(data)},
        "database": {"url": database_url(backend, data)},
        "auth": {"strategy": "noauth2"},
        "identity": {"password_hash_rounds": 4}})
    cloud = Cloud(cfg)
    await cloud.start()
    client = TestClient(TestServer(build_listener(cloud, "placement")))
    await client.start_server()
    client.cloud = cloud
    yield client
    await client.close()
    await cloud.stop(5)


async def call(api, method, path, body=None, version="latest", status=None):
    headers = dict(HEADERS, **{"openstack-api-version": f"placement {version}"})
    resp = await api.request(method, path, json=body, headers=headers)
    data = await resp.json() if resp.content_type == "application/json" else None
    if status is not None:
        assert resp.status == status, (resp.status, data)
    return resp, data


async def provider(api, name, parent=None) -> str:
    body = {"name": name, **({"parent_provider_uuid": parent} if parent else {})}
    _, data = await call(api, "POST", "/resource_providers", body, status=200)
    return data["uuid"]


async def allocate(api, rp: str, rc: str, used: int, consumer_type: str | None = None,
                   project="p1", user="u1") -> str:
    """Write an allocation row directly (the allocation API is tested elsewhere)."""
    consumer = str(uuidlib.uuid4())
    async with api.cloud.db.write() as conn:
        if consumer_type:
            exists = (await conn.execute(t.consumer_type.select().where(
                t.consumer_type.c.name == consumer_type))).first()
            if not exists:
                await conn.execute(t.consumer_type.insert().values(
                    name=consumer_type, created_at=utcnow()))
        await conn.execute(t.consumer.insert().values(
            uuid=consumer, project_id=project, user_id=user, generation=0,
            consumer_type=consumer_type, created_at=utcnow()))
        await conn.execute(t.allocation.insert().values(
            resource_provider_uuid=rp, consumer_uuid=consumer, resource_class=rc,
            used=used, created_at=utcnow()))
    return consumer


@pytest.mark.asyncio
async def test_racing_inventory_writes_one_wins_rest_409(api):
    rp = await provider(api, "cn")

    async def put(total: int):
        return await call(api, "PUT", f"/resource_providers/{rp}/inventories",
                          {"resource_provider_generation": 0,
                           "inventories": {"VCPU": {"total": total}}})

    results = await asyncio.gather(*(put(n) for n in range(1, 9)))
    statuses = sorted(r.status for r, _ in results)
    assert statuses == [200] + [409] * 7
    for resp, body in results:
        if resp.status == 409:
            assert body["errors"][0]["code"] == "placement.concurrent_update"
    _, inv = await call(api, "GET", f"/resource_providers/{rp}/inventories", status=200)
    assert inv["resource_provider_generation"] == 1


@pytest.mark.asyncio
async def test_bodiless_responses_have_no_content_type(api):
    resp, _ = await call(api, "PUT", "/resource_classes/CUSTOM_X", status=201)
    assert "Content-Type" not in resp.headers
    assert resp.headers["Location"].endswith("/resource_classes/CUSTOM_X")
    resp, _ = await call(api, "POST", "/resource_providers", {"name": "old"},
                         version="1.19", status=201)
    assert "Content-Type" not in resp.headers
    resp, _ = await call(api, "GET", "/traits/HW_CPU_X86_SSE", status=204)
    assert "Content-Type" not in resp.headers


@pytest.mark.asyncio
async def test_rename_custom_class_keeps_inventory_and_allocations(api):
    rp = await provider(api, "cn")
    await call(api, "PUT", "/resource_classes/CUSTOM_GOLD", status=201)
    await call(api, "PUT", f"/resource_providers/{rp}/inventories",
               {"resource_provider_generation": 0,
                "inventories": {"CUSTOM_GOLD": {"total": 5}}}, status=200)
    await allocate(api, rp, "CUSTOM_GOLD", 2)
    _, body = await call(api, "PUT", "/resource_classes/CUSTOM_GOLD",
                         {"name": "CUSTOM_SILVER"}, version="1.6", status=200)
    assert body["name"] == "CUSTOM_SILVER"
    _, inv = await call(api, "GET", f"/resource_providers/{rp}/inventories", status=200)
    assert list(inv["inventories"]) == ["CUSTOM_SILVER"]
    _, usage = await call(api, "GET", f"/resource_providers/{rp}/usages", status=200)
    assert usage["usages"] == {"CUSTOM_SILVER": 2}
    await call(api, "GET", "/resource_classes/CUSTOM_GOLD", status=404)
    _, err = await call(api, "DELETE", "/resource_classes/CUSTOM_SILVER", status=409)
    assert "Class is in use in inventory" in err["errors"][0]["detail"]


@pytest.mark.asyncio
async def test_inventory_in_use_and_capacity_rules(api):
    rp = await provider(api, "cn")
    await call(api, "PUT", f"/resource_providers/{rp}/inventories",
               {"resource_provider_generation": 0,
                "inventories": {"DISK_GB": {"total": 100}, "VCPU": {"total": 8}}},
               status=200)
    await allocate(api, rp, "VCPU", 6)
    await allocate(api, rp, "DISK_GB", 10)
    _, err = await call(api, "DELETE", f"/resource_providers/{rp}/inventories", status=409)
    assert err["errors"][0]["code"] == "placement.inventory.inuse"
    assert f"Inventory for 'VCPU, DISK_GB' on resource provider '{rp}' in use" in \
        err["errors"][0]["detail"]
    _, err = await call(api, "PUT", f"/resource_providers/{rp}/inventories",
                        {"resource_provider_generation": 1,
                         "inventories": {"VCPU": {"total": 8}}}, status=409)
    assert err["errors"][0]["code"] == "placement.inventory.inuse"
    # Shrinking below what is used is allowed (as in Placement).
    await call(api, "PUT", f"/resource_providers/{rp}/inventories/VCPU",
               {"resource_provider_generation": 1, "total": 4}, status=200)
    _, err = await call(api, "DELETE", f"/resource_providers/{rp}", status=409)
    assert err["errors"][0]["code"] == "placement.resource_provider.inuse"


@pytest.mark.asyncio
async def test_reparenting_moves_the_subtree_root(api):
    a, b = await provider(api, "a"), await provider(api, "b")
    c = await provider(api, "c", parent=a)
    d = await provider(api, "d", parent=c)
    await call(api, "PUT", f"/resource_providers/{c}",
               {"name": "c", "parent_provider_uuid": b}, version="1.36", status=400)
    _, body = await call(api, "PUT", f"/resource_providers/{c}",
                         {"name": "c", "parent_provider_uuid": b}, status=200)
    assert body["root_provider_uuid"] == b
    _, body = await call(api, "GET", f"/resource_providers/{d}", status=200)
    assert (body["parent_provider_uuid"], body["root_provider_uuid"]) == (c, b)
    _, body = await call(api, "PUT", f"/resource_providers/{c}",
                         {"name": "c", "parent_provider_uuid": None}, status=200)
    _, body = await call(api, "GET", f"/resource_providers/{d}", status=200)
    assert body["root_provider_uuid"] == c
    _, err = await call(api, "PUT", f"/resource_providers/{c}",
                        {"name": "c", "parent_provider_uuid": d}, status=400)
    assert "creating loop in the provider tree is not allowed" in err["errors"][0]["detail"]
    _, err = await call(api, "DELETE", f"/resource_providers/{c}", status=409)
    assert err["errors"][0]["code"] == "placement.resource_provider.cannot_delete_parent"


@pytest.mark.asyncio
async def test_traits_and_aggregates_bump_generation_only_on_change(api):
    rp = await provider(api, "cn")
    body = {"resource_provider_generation": 0, "traits": ["HW_CPU_X86_SSE"]}
    _, out = await call(api, "PUT", f"/resource_providers/{rp}/traits", body, status=200)
    assert out["resource_provider_generation"] == 1
    body["resource_provider_generation"] = 1
    _, out = await call(api, "PUT", f"/resource_providers/{rp}/traits", body, status=200)
    assert out["resource_provider_generation"] == 1          # no change, no bump
    agg = str(uuidlib.uuid4())
    _, out = await call(api, "PUT", f"/resource_providers/{rp}/aggregates",
                        {"resource_provider_generation": 1, "aggregates": [agg]},
                        status=200)
    assert out["resource_provider_generation"] == 2
    _, out = await call(api, "PUT", f"/resource_providers/{rp}/aggregates", [agg],
                        version="1.18", status=200)
    assert out == {"aggregates": [agg]}
    _, out = await call(api, "GET", f"/resource_providers/{rp}", status=200)
    assert out["generation"] == 2                           # pre-1.19: never bumps


@pytest.mark.asyncio
async def test_usages_by_consumer_type(api):
    rp = await provider(api, "cn")
    await call(api, "PUT", f"/resource_providers/{rp}/inventories",
               {"resource_provider_generation": 0,
                "inventories": {"VCPU": {"total": 64}, "MEMORY_MB": {"total": 4096}}},
               status=200)
    await allocate(api, rp, "VCPU", 2, "INSTANCE")
    await allocate(api, rp, "VCPU", 1, "MIGRATION")
    await allocate(api, rp, "MEMORY_MB", 512)
    await allocate(api, rp, "VCPU", 9, project="other")
    _, out = await call(api, "GET", "/usages?project_id=p1", version="1.37", status=200)
    assert out == {"usages": {"VCPU": 3, "MEMORY_MB": 512}}
    _, out = await call(api, "GET", "/usages?project_id=p1", status=200)
    assert out["usages"] == {
        "INSTANCE": {"VCPU": 2, "consumer_count": 1},
        "MIGRATION": {"VCPU": 1, "consumer_count": 1},
        "unknown": {"MEMORY_MB": 512, "consumer_count": 1}}
    _, out = await call(api, "GET", "/usages?project_id=p1&consumer_type=all", status=200)
    assert out["usages"] == {"all": {"VCPU": 3, "MEMORY_MB": 512, "consumer_count": 3}}
    _, out = await call(api, "GET", "/usages?project_id=p1&consumer_type=unknown",
                        status=200)
    assert out["usages"] == {"unknown": {"MEMORY_MB": 512, "consumer_count": 1}}
    _, out = await call(api, "GET", "/usages?project_id=p1&consumer_type=INSTANCE",
                        status=200)
    assert out["usages"] == {"INSTANCE": {"VCPU": 2, "consumer_count": 1}}
