"""Quota sets, quota classes, limits, and quota enforcement under races."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from cloudd.db import tables as t
from cloudd.services.compute import quota_store
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError
from tests.compute.conftest import call

pytestmark = pytest.mark.asyncio
ALICE = "alice:p1"


async def add_instance(conn, project="p1", vcpus=1, ram=512) -> None:
    await conn.execute(t.instance.insert().values(
        uuid=str(uuid.uuid4()), display_name="vm", project_id=project, user_id="alice",
        flavor=json.dumps({"vcpus": vcpus, "memory_mb": ram}), vm_state="building",
        reservation_id="r-1", created_at=utcnow()))


async def test_show_defaults_and_fields_by_version(api):
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p1", token=ALICE, status=200)
    qs = body["quota_set"]
    assert qs["id"] == "p1" and qs["instances"] == 10 and qs["cores"] == 20
    assert qs["ram"] == 51200 and qs["fixed_ips"] == -1 and qs["injected_files"] == 5
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p1", token=ALICE, version="2.36")
    assert "floating_ips" not in body["quota_set"] and "injected_files" in body["quota_set"]
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p1", token=ALICE, version="2.57")
    assert set(body["quota_set"]) == {
        "id", "instances", "cores", "ram", "metadata_items", "key_pairs",
        "server_groups", "server_group_members"}
    # another project's quotas are not a member's business
    _, err = await call(api, "GET", "/v2.1/os-quota-sets/p2", token=ALICE, status=403)
    assert "os-quota-sets:show" in err["forbidden"]["message"]
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p2/defaults", token=ALICE,
                         status=200)
    assert body["quota_set"]["instances"] == 10


async def test_update_detail_delete(api):
    await call(api, "PUT", "/v2.1/os-quota-sets/p1", {"quota_set": {"instances": 3}},
               token=ALICE, status=403)
    _, body = await call(api, "PUT", "/v2.1/os-quota-sets/p1",
                         {"quota_set": {"instances": 3, "cores": "-1"}}, status=200)
    assert "id" not in body["quota_set"]
    assert (body["quota_set"]["instances"], body["quota_set"]["cores"]) == (3, -1)
    await call(api, "PUT", "/v2.1/os-quota-sets/p1", {"quota_set": {"instances": -2}},
               status=400)
    await call(api, "PUT", "/v2.1/os-quota-sets/p1", {"quota_set": {"floating_ips": 1}},
               version="2.36", status=400)
    async with api.cloud.db.write() as conn:
        await add_instance(conn, vcpus=2, ram=1024)
        await add_instance(conn, vcpus=2, ram=1024)
    _, err = await call(api, "PUT", "/v2.1/os-quota-sets/p1", {"quota_set": {"instances": 1}},
                        status=400)
    assert err["badRequest"]["message"] == ("Quota limit 1 for instances must be greater "
                                            "than or equal to already used and reserved 2.")
    await call(api, "PUT", "/v2.1/os-quota-sets/p1",
               {"quota_set": {"instances": 1, "force": True}}, status=200)
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p1/detail", token=ALICE,
                         status=200)
    qs = body["quota_set"]
    assert qs["instances"] == {"in_use": 2, "limit": 1, "reserved": 0}
    assert qs["cores"] == {"in_use": 4, "limit": -1, "reserved": 0}
    assert qs["ram"]["in_use"] == 2048
    _, body = await call(api, "GET", "/v2.1/limits", token=ALICE, status=200)
    absolute = body["limits"]["absolute"]
    assert (absolute["maxTotalInstances"], absolute["totalInstancesUsed"]) == (1, 2)
    assert absolute["totalCoresUsed"] == 4 and absolute["maxImageMeta"] == 128
    await call(api, "DELETE", "/v2.1/os-quota-sets/p1", token=ALICE, status=403)
    await call(api, "DELETE", "/v2.1/os-quota-sets/p1", status=202)
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p1", token=ALICE)
    assert body["quota_set"]["instances"] == 10


async def test_quota_class_default_feeds_projects(api):
    await call(api, "GET", "/v2.1/os-quota-class-sets/default", token=ALICE, status=403)
    _, body = await call(api, "GET", "/v2.1/os-quota-class-sets/default", status=200)
    qc = body["quota_class_set"]
    assert qc["id"] == "default" and "server_groups" not in qc and "floating_ips" in qc
    _, body = await call(api, "GET", "/v2.1/os-quota-class-sets/default", version="2.57")
    assert "server_groups" in body["quota_class_set"]
    assert "floating_ips" not in body["quota_class_set"]
    _, body = await call(api, "PUT", "/v2.1/os-quota-class-sets/default",
                         {"quota_class_set": {"instances": 4}}, version="2.50", status=200)
    assert body["quota_class_set"]["instances"] == 4 and "id" not in body["quota_class_set"]
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p9", token="carol:p9")
    assert body["quota_set"]["instances"] == 4
    _, body = await call(api, "GET", "/v2.1/os-quota-sets/p9/defaults", token="carol:p9")
    assert body["quota_set"]["instances"] == 4
    _, body = await call(api, "GET", "/v2.1/limits", token="carol:p9")
    assert body["limits"]["absolute"]["maxTotalInstances"] == 4


async def test_limits_fields_by_version_and_other_project(api):
    _, body = await call(api, "GET", "/v2.1/limits", token=ALICE, status=200)
    absolute = body["limits"]["absolute"]
    assert body["limits"]["rate"] == []
    assert {"maxSecurityGroups", "maxTotalFloatingIps", "maxPersonality",
            "totalFloatingIpsUsed", "totalServerGroupsUsed"} <= set(absolute)
    _, body = await call(api, "GET", "/v2.1/limits", token=ALICE, version="2.57")
    assert set(body["limits"]["absolute"]) == {
        "maxTotalInstances", "maxTotalCores", "maxTotalRAMSize", "maxServerMeta",
        "maxTotalKeypairs", "maxServerGroups", "maxServerGroupMembers",
        "totalInstancesUsed", "totalCoresUsed", "totalRAMUsed", "totalServerGroupsUsed"}
    await call(api, "GET", "/v2.1/limits?tenant_id=p2", token=ALICE, status=403)
    await call(api, "PUT", "/v2.1/os-quota-sets/p2", {"quota_set": {"cores": 7}}, status=200)
    _, body = await call(api, "GET", "/v2.1/limits?tenant_id=p2", status=200)
    assert body["limits"]["absolute"]["maxTotalCores"] == 7


async def test_enforce_message(api):
    cfg = api.cloud.config
    async with api.cloud.db.write() as conn:
        await quota_store.set_limit(conn, "p1", "instances", 2)
        await add_instance(conn)
        await add_instance(conn)
    with pytest.raises(ApiError) as exc:
        async with api.cloud.db.write() as conn:
            await quota_store.enforce(conn, cfg, "p1", "alice",
                                      {"instances": 1, "cores": 1, "ram": 512})
    assert exc.value.status == 403
    assert exc.value.message == \
        "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
    async with api.cloud.db.write() as conn:
        await quota_store.enforce(conn, cfg, "p2", "bob", {"instances": 10})


async def test_racing_creates_never_overshoot(api):
    cfg = api.cloud.config
    async with api.cloud.db.write() as conn:
        await quota_store.set_limit(conn, "race", "instances", 5)

    async def create() -> bool:
        try:
            async with api.cloud.db.write() as conn:
                await quota_store.enforce(conn, cfg, "race", "u", {"instances": 1})
                await asyncio.sleep(0.01)       # widen the window between count and insert
                await add_instance(conn, project="race")
            return True
        except ApiError as e:
            assert e.status == 403
            return False

    results = await asyncio.gather(*(create() for _ in range(20)))
    assert sum(results) == 5
    async with api.cloud.db.read() as conn:
        assert (await quota_store.usage(conn, "race"))["instances"] == 5
