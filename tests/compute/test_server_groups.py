"""Server groups, server metadata, server tags and instance actions."""

from __future__ import annotations

import pytest
import pytest_asyncio

from cloudd.db import tables as t
from tests.compute.conftest import call
from tests.compute.test_server_actions_api import active
from tests.compute.test_servers_api import ALICE, BOB, body, boot, hold_conductor, rows

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def api(api):
    return hold_conductor(api)


async def test_server_group_lifecycle_and_boot_into_group(api):
    _, data = await call(api, "POST", "/v2.1/os-server-groups",
                         {"server_group": {"name": "g", "policies": ["anti-affinity"]}},
                         token=ALICE, status=200)
    group = data["server_group"]
    assert group == {"id": group["id"], "name": "g", "policies": ["anti-affinity"],
                     "members": [], "metadata": {}}
    gid = group["id"]
    _, data = await call(api, "POST", "/v2.1/servers", {**body(), "os:scheduler_hints": {
        "group": gid}}, token=ALICE, status=202)
    uuid = data["server"]["id"]
    _, data = await call(api, "GET", f"/v2.1/os-server-groups/{gid}", token=ALICE,
                         version="2.64", status=200)
    assert data["server_group"] == {"id": gid, "name": "g", "policy": "anti-affinity",
                                    "rules": {}, "members": [uuid], "project_id": "p1",
                                    "user_id": "alice"}
    _, shown = await call(api, "GET", f"/v2.1/servers/{uuid}", token=ALICE, version="2.71",
                          status=200)
    assert shown["server"]["server_groups"] == [gid]
    [inst] = await rows(api, t.instance, uuid=uuid)
    import json
    assert json.loads(inst.request_spec)["group"]["policy"] == "anti-affinity"
    _, lst = await call(api, "GET", "/v2.1/os-server-groups", token=BOB, status=200)
    assert lst["server_groups"] == []
    _, lst = await call(api, "GET", "/v2.1/os-server-groups?all_projects=1", token="admin",
                        status=200)
    assert [g["id"] for g in lst["server_groups"]] == [gid]
    await call(api, "GET", f"/v2.1/os-server-groups/{gid}", token=BOB, status=403)
    await call(api, "DELETE", f"/v2.1/os-server-groups/{gid}", token=ALICE, status=204)
    await call(api, "GET", f"/v2.1/os-server-groups/{gid}", token=ALICE, status=404)


async def test_server_group_validation_and_quota(make_api):
    api = hold_conductor(await make_api({"quota": {"server_groups": 1,
                                                   "server_group_members": 1}}))
    for version, bad in [("2.1", {"name": "g", "policies": ["soft-affinity"]}),
                         ("2.1", {"name": "g", "policies": ["affinity", "anti-affinity"]}),
                         ("2.64", {"name": "g", "policies": ["affinity"]}),
                         ("2.64", {"name": "g", "policy": "affinity",
                                   "rules": {"max_server_per_host": 2}})]:
        await call(api, "POST", "/v2.1/os-server-groups", {"server_group": bad},
                   token=ALICE, version=version, status=400)
    _, data = await call(api, "POST", "/v2.1/os-server-groups", {"server_group": {
        "name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}},
        token=ALICE, version="2.64", status=200)
    assert data["server_group"]["rules"] == {"max_server_per_host": 2}
    gid = data["server_group"]["id"]
    _, err = await call(api, "POST", "/v2.1/os-server-groups", {"server_group": {
        "name": "h", "policies": ["affinity"]}}, token=ALICE, status=403)
    assert err["forbidden"]["message"] == "Quota exceeded, too many server groups."
    hints = {"os:scheduler_hints": {"group": gid}}
    await call(api, "POST", "/v2.1/servers", {**body(), **hints}, token=ALICE, status=202)
    _, err = await call(api, "POST", "/v2.1/servers", {**body(), **hints}, token=ALICE,
                        status=403)
    assert err["forbidden"]["message"] == "Quota exceeded, too many servers in group"
    assert len(await rows(api, t.instance)) == 1


async def test_server_metadata(make_api):
    api = hold_conductor(await make_api({"quota": {"metadata_items": 3}}))
    uuid = await active(api)
    base = f"/v2.1/servers/{uuid}/metadata"
    _, data = await call(api, "POST", base, {"metadata": {"a": "1", "b": "2"}}, token=ALICE,
                         status=200)
    assert data == {"metadata": {"a": "1", "b": "2"}}
    _, data = await call(api, "PUT", base, {"metadata": {"c": "3"}}, token=ALICE, status=200)
    assert data == {"metadata": {"c": "3"}}
    _, data = await call(api, "PUT", f"{base}/d", {"meta": {"d": "4"}}, token=ALICE,
                         status=200)
    assert data == {"meta": {"d": "4"}}
    await call(api, "PUT", f"{base}/d", {"meta": {"e": "4"}}, token=ALICE, status=400)
    await call(api, "PUT", f"{base}/d", {"meta": {"d": "4", "e": "5"}}, token=ALICE,
               status=400)
    _, data = await call(api, "GET", f"{base}/c", token=ALICE, status=200)
    assert data == {"meta": {"c": "3"}}
    _, err = await call(api, "POST", base, {"metadata": {"x": "1", "y": "2"}}, token=ALICE,
                        status=403)
    assert err["forbidden"]["message"] == "Maximum number of metadata items exceeds 3"
    await call(api, "DELETE", f"{base}/c", token=ALICE, status=204)
    await call(api, "DELETE", f"{base}/c", token=ALICE, status=404)
    _, data = await call(api, "GET", base, token=ALICE, status=200)
    assert data == {"metadata": {"d": "4"}}
    await call(api, "PUT", base, {"metadata": {"k" * 256: "v"}}, token=ALICE, status=400)
    # A building server's metadata is read-only.
    building = await boot(api)
    _, err = await call(api, "POST", f"/v2.1/servers/{building}/metadata",
                        {"metadata": {"a": "1"}}, token=ALICE, status=409)
    assert "vm_state building" in err["conflictingRequest"]["message"]
    await call(api, "GET", base, token=BOB, status=404)


async def test_server_tags(api):
    uuid = await active(api)
    base = f"/v2.1/servers/{uuid}/tags"
    v = "2.26"
    await call(api, "GET", base, token=ALICE, status=404)       # before 2.26
    resp, _ = await call(api, "PUT", f"{base}/red", token=ALICE, version=v, status=201)
    assert resp.headers["Location"].endswith(f"/servers/{uuid}/tags/red")
    await call(api, "PUT", f"{base}/red", token=ALICE, version=v, status=204)
    await call(api, "GET", f"{base}/red", token=ALICE, version=v, status=204)
    await call(api, "GET", f"{base}/blue", token=ALICE, version=v, status=404)
    await call(api, "PUT", f"{base}/a,b", token=ALICE, version=v, status=400)
    _, data = await call(api, "PUT", base, {"tags": ["x", "y"]}, token=ALICE, version=v,
                         status=200)
    assert data == {"tags": ["x", "y"]}
    await call(api, "PUT", base, {"tags": [f"t{i}" for i in range(51)]}, token=ALICE,
               version=v, status=400)
    await call(api, "DELETE", f"{base}/x", token=ALICE, version=v, status=204)
    _, data = await call(api, "GET", base, token=ALICE, version=v, status=200)
    assert data == {"tags": ["y"]}
    await call(api, "DELETE", base, token=ALICE, version=v, status=204)
    _, data = await call(api, "GET", base, token=ALICE, version=v, status=200)
    assert data == {"tags": []}


async def test_instance_actions(api):
    uuid = await active(api)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"reboot": {"type": "HARD"}},
               token=ALICE, status=202)
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-instance-actions",
                         token=ALICE, status=200)
    actions = data["instanceActions"]
    assert [a["action"] for a in actions] == ["reboot", "create"]
    assert set(actions[0]) == {"action", "instance_uuid", "request_id", "user_id",
                               "project_id", "start_time", "message"}
    rid = actions[0]["request_id"]
    async with api.cloud.db.write() as conn:
        from cloudd.services.compute.tasks import utcnow
        [row] = (await conn.execute(t.instance_action.select().where(
            t.instance_action.c.request_id == rid))).all()
        await conn.execute(t.instance_action_event.insert().values(
            id="e1", action_id=row.id, event="compute_reboot_instance", result="Success",
            traceback=None, host="node1", start_time=utcnow(), finish_time=utcnow()))
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-instance-actions/{rid}",
                         token=ALICE, status=200)
    assert "events" not in data["instanceAction"]          # members see events from 2.51
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-instance-actions/{rid}",
                         token=ALICE, version="2.62", status=200)
    [event] = data["instanceAction"]["events"]
    assert set(event) == {"event", "start_time", "finish_time", "result", "hostId"}
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-instance-actions/{rid}",
                         token="admin", version="2.84", status=200)
    [event] = data["instanceAction"]["events"]
    assert event["host"] == "node1" and "traceback" in event and "details" in event
    _, data = await call(api, "GET", f"/v2.1/servers/{uuid}/os-instance-actions?limit=1",
                         token=ALICE, version="2.58", status=200)
    assert len(data["instanceActions"]) == 1 and "updated_at" in data["instanceActions"][0]
    assert "marker=" in data["links"][0]["href"]
    await call(api, "GET", f"/v2.1/servers/{uuid}/os-instance-actions/nope", token=ALICE,
               status=404)
    await call(api, "GET", f"/v2.1/servers/{uuid}/os-instance-actions", token=BOB,
               status=404)
