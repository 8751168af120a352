"""Servers API: create, list/detail/show per microversion, update, delete."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from cloudd.db import tables as t
from tests.compute.conftest import IMAGE, call

pytestmark = pytest.mark.asyncio

ALICE = "alice:p1"
BOB = "bob:p2"


def hold_conductor(api):
    """These tests look at what the API wrote: keep the conductor from moving it
    on; ``api.woken`` collects the task ids the API woke it for."""
    api.woken = []
    api.cloud.compute.wake = api.woken.append
    return api


@pytest_asyncio.fixture
async def api(api):
    return hold_conductor(api)


def body(name="vm", **extra):
    server = {"name": name, "imageRef": IMAGE, "flavorRef": "1"}
    server.update(extra)
    return {"server": server}


async def boot(api, name="vm", token=ALICE, version="2.1", **extra):
    _, data = await call(api, "POST", "/v2.1/servers", body(name, **extra),
                            token=token, version=version, status=202)
    return data["server"]["id"]


async def set_state(api, uuid, **values):
    values.setdefault("updated_at", None)
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(**values))


async def rows(api, table, **where):
    async with api.cloud.db.read() as conn:
        query = select(table)
        for k, v in where.items():
            query = query.where(table.c[k] == v)
        return (await conn.execute(query)).all()


async def test_create_writes_instance_task_and_action(api):
    resp, data = await call(api, "POST", "/v2.1/servers",
                            body(metadata={"a": "b"}), token=ALICE, status=202)
    server = data["server"]
    assert set(server) == {"id", "links", "OS-DCF:diskConfig", "security_groups",
                           "adminPass"}
    assert server["security_groups"] == [{"name": "default"}]
    assert server["OS-DCF:diskConfig"] == "MANUAL"
    assert resp.headers["Location"] == server["links"][0]["href"]
    assert server["links"][0]["href"].endswith(f"/v2.1/servers/{server['id']}")
    [inst] = await rows(api, t.instance, uuid=server["id"])
    assert (inst.vm_state, inst.task_state, inst.power_state) == ("building", "scheduling", 0)
    assert inst.project_id == "p1" and inst.user_id == "alice"
    assert inst.reservation_id.startswith("r-")
    spec = json.loads(inst.request_spec)
    assert spec["image"]["id"] == IMAGE and spec["image"]["disk_format"] == "raw"
    assert spec["image"]["properties"] == {}
    assert spec["max_attempts"] == api.cloud.config.compute.max_attempts
    assert json.loads(inst.flavor)["id"] == "1"
    [task] = await rows(api, t.task, instance_uuid=server["id"])
    assert (task.kind, task.state) == ("build", "pending")
    [action] = await rows(api, t.instance_action, instance_uuid=server["id"])
    assert action.action == "create" and action.id == task.action_id
    assert api.woken == [task.id]

    _, shown = await call(api, "GET", f"/v2.1/servers/{server['id']}", token=ALICE,
                          status=200)
    s = shown["server"]
    assert s["status"] == "BUILD" and s["OS-EXT-STS:task_state"] == "scheduling"
    assert s["metadata"] == {"a": "b"} and s["addresses"] == {}
    assert s["image"]["id"] == IMAGE and s["flavor"]["id"] == "1"
    assert s["hostId"] == "" and s["progress"] == 0
    assert "OS-EXT-SRV-ATTR:host" not in s            # members do not see host attrs


async def test_legacy_version_and_project_prefix_paths(api):
    """/v2 answers as /v2.1 does, each also behind a /{project_id} prefix, and
    links name the version and prefix the request came in on."""
    _, root = await call(api, "GET", "/", status=200)
    assert [v["id"] for v in root["versions"]] == ["v2.0", "v2.1"]
    for path, vid in (("/v2", "v2.0"), ("/v2.1/", "v2.1"), ("/v2.1/p1", "v2.1")):
        _, doc = await call(api, "GET", path, status=200)
        assert doc["version"]["id"] == vid, path
    for root_path in ("/v2", "/v2.1/p1", "/v2/p1"):
        _, data = await call(api, "POST", f"{root_path}/servers", body(), token=ALICE,
                             status=202)
        uuid = data["server"]["id"]
        assert data["server"]["links"][0]["href"].endswith(f"{root_path}/servers/{uuid}")
        _, shown = await call(api, "GET", f"{root_path}/servers/{uuid}", token=ALICE,
                              status=200)
        assert shown["server"]["id"] == uuid
    # servers/detail is the collection, never a project named "servers".
    _, listed = await call(api, "GET", "/v2.1/servers/detail", token=ALICE, status=200)
    assert len(listed["servers"]) == 3
    await call(api, "DELETE", "/v2.1/servers", token=ALICE, status=405)


async def test_create_checks_the_image(api):
    """The image must exist, be visible and active, and fit the flavor."""
    missing = "0b0b0b0b-0000-4000-8000-000000000000"
    _, err = await call(api, "POST", "/v2.1/servers", body(imageRef=missing), token=ALICE,
                        status=400)
    assert err["badRequest"]["message"] == f"Image {missing} could not be found."
    async with api.cloud.db.write() as conn:
        await conn.execute(t.image.update().where(t.image.c.id == IMAGE)
                           .values(min_ram=4096))
    _, err = await call(api, "POST", "/v2.1/servers", body(), token=ALICE, status=400)
    assert "memory is too small" in err["badRequest"]["message"]
    async with api.cloud.db.write() as conn:
        await conn.execute(t.image.update().where(t.image.c.id == IMAGE)
                           .values(min_ram=0, status="deactivated"))
    _, err = await call(api, "POST", "/v2.1/servers", body(), token=ALICE, status=400)
    assert err["badRequest"]["message"] == f"Image {IMAGE} is not active."
    assert not await rows(api, t.instance)


async def test_create_bad_input_is_400_and_writes_nothing(api):
    bad = [
        body(imageRef="not-a-uuid"),
        body(flavorRef="999"),
        body(key_name="nokey"),
        body(availability_zone="nowhere"),
        body(unknown="x"),
        body(min_count=3, max_count=2),
        body(user_data="!!!not base64"),
        {"server": {"name": "vm", "flavorRef": "1"}},     # no image, no bdm
        {"server": body()["server"], "os:scheduler_hints": {
            "group": "0ba54ab6-d5f2-47ff-9c63-ad21a4df8c5c"}},
    ]
    for b in bad:
        await call(api, "POST", "/v2.1/servers", b, token=ALICE, status=400)
    assert await rows(api, t.instance) == []
    assert await rows(api, t.task) == []
    # 2.37+ requires networks.
    await call(api, "POST", "/v2.1/servers", body(), token=ALICE, version="2.37",
               status=400)
    await call(api, "POST", "/v2.1/servers", body(networks="none"), token=ALICE,
               version="2.37", status=202)


async def test_quota_exceeded_is_403(make_api):
    api = hold_conductor(await make_api({"quota": {"instances": 2}}))
    await boot(api, max_count=2, min_count=2)
    _, err = await call(api, "POST", "/v2.1/servers", body(), token=ALICE, status=403)
    assert "Quota exceeded for instances" in err["forbidden"]["message"]
    assert len(await rows(api, t.instance)) == 2


async def test_multiple_create_and_reservation_id(api):
    _, data = await call(api, "POST", "/v2.1/servers",
                         body("many", min_count=1, max_count=3, return_reservation_id=True),
                         token=ALICE, status=202)
    rid = data["reservation_id"]
    insts = await rows(api, t.instance, reservation_id=rid)
    assert sorted(i.display_name for i in insts) == ["many-1", "many-2", "many-3"]
    assert sorted(i.launch_index for i in insts) == [0, 1, 2]
    assert len(await rows(api, t.task)) == 3


async def test_project_isolation(api):
    uuid = await boot(api)
    for method, path, b in [("GET", f"/v2.1/servers/{uuid}", None),
                            ("PUT", f"/v2.1/servers/{uuid}", {"server": {"name": "x"}}),
                            ("DELETE", f"/v2.1/servers/{uuid}", None),
                            ("POST", f"/v2.1/servers/{uuid}/action", {"os-stop": None}),
                            ("GET", f"/v2.1/servers/{uuid}/metadata", None)]:
        await call(api, method, path, b, token=BOB, status=404)
    _, lst = await call(api, "GET", "/v2.1/servers", token=BOB, status=200)
    assert lst["servers"] == []
    _, lst = await call(api, "GET", "/v2.1/servers?all_tenants=1", token="admin",
                        status=200)
    assert [s["id"] for s in lst["servers"]] == [uuid]
    await call(api, "GET", "/v2.1/servers?all_tenants=1", token=BOB, status=403)


async def test_microversion_fields(api):
    uuid = await boot(api, version="2.52", description="hello", tags=["a", "b"],
                      networks="auto")

    async def show(version, token=ALICE):
        _, data = await call(api, "GET", f"/v2.1/servers/{uuid}", token=token,
                             version=version, status=200)
        return data["server"]

    old = await show("2.1")
    for key in ("locked", "description", "tags", "locked_reason", "server_groups"):
        assert key not in old
    assert set(old["flavor"]) == {"id", "links"}
    s = await show("2.47")
    assert s["flavor"] == {"vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "swap": 0,
                           "original_name": "m1.tiny", "extra_specs": {}}
    assert s["description"] == "hello" and s["tags"] == ["a", "b"] and s["locked"] is False
    s = await show("2.73")
    assert s["locked_reason"] is None and s["server_groups"] == []
    assert "host_status" not in s
    admin = await show("2.16", token="admin")
    assert admin["host_status"] == "" and admin["OS-EXT-SRV-ATTR:host"] is None
    assert admin["OS-EXT-SRV-ATTR:reservation_id"].startswith("r-")
    s = await show("2.100")
    assert s["pinned_availability_zone"] is None and s["scheduler_hints"] == {}
    assert s["OS-EXT-SRV-ATTR:hostname"] == "vm"


async def test_list_filters_sort_and_paging(api):
    ids = [await boot(api, f"web-{i}") for i in range(3)]
    other = await boot(api, "db")
    _, data = await call(api, "GET", "/v2.1/servers", token=ALICE, status=200)
    assert [s["id"] for s in data["servers"]] == [other] + ids[::-1]   # newest first
    assert set(data["servers"][0]) == {"id", "name", "links"}
    _, data = await call(api, "GET", "/v2.1/servers?name=^web", token=ALICE, status=200)
    assert {s["id"] for s in data["servers"]} == set(ids)
    _, data = await call(api, "GET", "/v2.1/servers/detail?sort_key=display_name"
                         "&sort_dir=asc", token=ALICE, status=200)
    assert [s["name"] for s in data["servers"]] == ["db", "web-0", "web-1", "web-2"]
    _, page = await call(api, "GET", "/v2.1/servers?limit=2&sort_key=display_name"
                         "&sort_dir=asc", token=ALICE, status=200)
    assert [s["name"] for s in page["servers"]] == ["db", "web-0"]
    nxt = page["servers_links"][0]["href"]
    assert "marker=" in nxt
    _, page2 = await call(api, "GET", nxt[nxt.index("/v2.1"):], token=ALICE, status=200)
    assert [s["name"] for s in page2["servers"]] == ["web-1", "web-2"]
    await call(api, "GET", "/v2.1/servers?marker=nope", token=ALICE, status=400)
    await call(api, "GET", "/v2.1/servers?sort_key=bogus", token=ALICE, status=400)
    await set_state(api, ids[0], vm_state="active", task_state=None)
    _, data = await call(api, "GET", "/v2.1/servers?status=ACTIVE", token=ALICE, status=200)
    assert [s["id"] for s in data["servers"]] == [ids[0]]
    _, data = await call(api, "GET", "/v2.1/servers?status=BUILD&flavor=1", token=ALICE,
                         status=200)
    assert len(data["servers"]) == 3
    await call(api, "GET", "/v2.1/servers?status=bogus", token=ALICE, version="2.38",
               status=400)
    # Unknown filters are ignored for members before 2.75, refused from 2.75.
    _, data = await call(api, "GET", "/v2.1/servers?foo=bar", token=ALICE, status=200)
    assert len(data["servers"]) == 4
    await call(api, "GET", "/v2.1/servers?foo=bar", token=ALICE, version="2.75",
               status=400)


async def test_tag_and_locked_filters(api):
    a = await boot(api, "a", version="2.52", tags=["x", "y"], networks="none")
    b = await boot(api, "b", version="2.52", tags=["y"], networks="none")
    c = await boot(api, "c", version="2.52", networks="none")

    async def names(query, version="2.26"):
        _, data = await call(api, "GET", f"/v2.1/servers?{query}", token=ALICE,
                             version=version, status=200)
        return sorted(s["name"] for s in data["servers"])

    assert await names("tags=x,y") == ["a"]
    assert await names("tags-any=x,y") == ["a", "b"]
    assert await names("not-tags=x,y") == ["b", "c"]
    assert await names("not-tags-any=y") == ["c"]
    await set_state(api, c, locked=True, locked_by="owner")
    assert await names("locked=true", "2.73") == ["c"]
    assert await names("locked=false", "2.73") == ["a", "b"]
    assert a and b


async def test_update_server(api):
    uuid = await boot(api)
    _, data = await call(api, "PUT", f"/v2.1/servers/{uuid}",
                         {"server": {"name": "renamed", "description": "d",
                                     "accessIPv4": "10.0.0.1"}},
                         token=ALICE, version="2.19", status=200)
    s = data["server"]
    assert s["name"] == "renamed" and s["description"] == "d" and s["accessIPv4"] == "10.0.0.1"
    assert "OS-EXT-STS:vm_state" not in s                 # fewer fields before 2.75
    _, data = await call(api, "PUT", f"/v2.1/servers/{uuid}", {"server": {"name": "n2"}},
                         token=ALICE, version="2.75", status=200)
    assert data["server"]["OS-EXT-STS:vm_state"] == "building"
    await call(api, "PUT", f"/v2.1/servers/{uuid}", {"server": {"description": "d"}},
               token=ALICE, version="2.1", status=400)


async def test_delete_during_build_cancels_build(api):
    uuid = await boot(api)
    await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=204)
    tasks = {r.kind: r.state for r in await rows(api, t.task, instance_uuid=uuid)}
    assert tasks == {"build": "cancelled", "delete": "pending"}
    [inst] = await rows(api, t.instance, uuid=uuid)
    assert inst.task_state == "deleting"
    # Deleting again is fine and opens nothing new.
    await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=204)
    assert len(await rows(api, t.task, instance_uuid=uuid)) == 2


async def test_locked_server_delete_is_409_for_members(api):
    uuid = await boot(api)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"lock": None}, token=ALICE,
               status=202)
    _, err = await call(api, "DELETE", f"/v2.1/servers/{uuid}", token=ALICE, status=409)
    assert err["conflictingRequest"]["message"] == f"Instance {uuid} is locked"
    await call(api, "DELETE", f"/v2.1/servers/{uuid}", token="admin", status=204)


async def test_detail_of_many_servers_reads_them_in_a_fixed_number_of_statements(api):
    """No statement per server (the speed itself is benchmarked in bench/)."""
    from sqlalchemy import event
    now = None
    async with api.cloud.db.write() as conn:
        from cloudd.services.compute.tasks import utcnow
        now = utcnow()
        for i in range(300):
            uuid = f"00000000-0000-0000-0000-{i:012d}"
            await conn.execute(t.instance.insert().values(
                uuid=uuid, display_name=f"s{i}", project_id="p1", user_id="alice",
                flavor=json.dumps({"id": "1", "name": "m1.tiny", "vcpus": 1,
                                   "memory_mb": 512, "root_gb": 1, "ephemeral_gb": 0,
                                   "swap": 0}),
                vm_state="active", reservation_id="r-x", created_at=now))
            await conn.execute(t.instance_metadata.insert().values(
                instance_uuid=uuid, meta_key="k", meta_value=str(i)))
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(api.cloud.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        _, data = await call(api, "GET", "/v2.1/servers/detail", token=ALICE,
                             version="2.96", status=200)
    finally:
        event.remove(api.cloud.db.engine.sync_engine, "before_cursor_execute", count)
    assert len(data["servers"]) == 300
    assert {s["metadata"]["k"] for s in data["servers"]} == {str(i) for i in range(300)}
    assert 0 < len(statements) < 20, statements
