"""Compute APIs Tempest's compute tests reach beyond the core: os-hosts,
os-migrations, os-instance_usage_audit_log, os-networks, server diagnostics,
os-server-external-events, os-resetState / migrate / security group actions,
and the canonical form of access IPs.
"""

from __future__ import annotations

import json
import uuid as uuidlib

import pytest
import pytest_asyncio

from cloudd.db import tables as t
from cloudd.services.compute import hosts
from cloudd.services.compute.tasks import utcnow
from tests.compute.conftest import call
from tests.compute.test_admin_apis import (
    add_host,
    add_instance,
    controller_host,
    forbidden,
)
from tests.compute.test_servers_api import ALICE, boot, hold_conductor, rows, set_state

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def api(api):
    return hold_conductor(api)


# --- os-hosts --------------------------------------------------------------------------------

async def test_os_hosts_list_show_and_unsupported_actions(api):
    ctl = await controller_host(api)
    await add_host(api, "c1", vcpus=8, memory_mb=4096, local_gb=100)
    await add_host(api, "c2")
    await add_instance(api, "c1", project="p1")
    await add_instance(api, "c1", project="p2")
    _, body = await call(api, "GET", "/v2.1/os-hosts", status=200)
    listed = {(h["host_name"], h["service"], h["zone"]) for h in body["hosts"]}
    assert {("c1", "compute", "nova"), ("c2", "compute", "nova"),
            (ctl, "scheduler", "internal"), (ctl, "conductor", "internal")} <= listed
    _, body = await call(api, "GET", "/v2.1/os-hosts?zone=nova", status=200)
    assert sorted(h["host_name"] for h in body["hosts"]) == ["c1", "c2"]
    _, body = await call(api, "GET", "/v2.1/os-hosts?zone=xxx", status=200)
    assert body == {"hosts": []}
    _, body = await call(api, "GET", "/v2.1/os-hosts?zone=", status=200)
    assert len(body["hosts"]) >= 4

    _, body = await call(api, "GET", "/v2.1/os-hosts/c1", status=200)
    res = {r["resource"]["project"]: r["resource"] for r in body["host"]}
    assert res["(total)"] == {"host": "c1", "project": "(total)", "cpu": 8,
                              "memory_mb": 4096, "disk_gb": 100}
    assert res["(used_max)"]["cpu"] == 4 and res["(used_now)"]["memory_mb"] == 1024
    assert res["p1"]["cpu"] == 2 and res["p2"]["disk_gb"] == 4
    await call(api, "GET", "/v2.1/os-hosts/nope", status=404)
    await call(api, "GET", f"/v2.1/os-hosts/{ctl}", status=404)    # no compute node

    # Neither driver can power or enable a host: 501 on a real host, 404 otherwise.
    for action in ("startup", "shutdown", "reboot"):
        await call(api, "GET", f"/v2.1/os-hosts/c1/{action}", status=501)
        await call(api, "GET", f"/v2.1/os-hosts/nope/{action}", status=404)
    await call(api, "PUT", "/v2.1/os-hosts/c1", {"status": "enable"}, status=501)
    await call(api, "PUT", "/v2.1/os-hosts/nope", {"status": "enable"}, status=404)
    for bad in ({}, {"status": "invalid"}, {"maintenance_mode": "on"}, {"x": "enable"}):
        await call(api, "PUT", "/v2.1/os-hosts/c1", bad, status=400)

    _, body = await call(api, "GET", "/v2.1/os-hosts", token=ALICE, status=403)
    assert forbidden(body)
    await call(api, "GET", "/v2.1/os-hosts/c1", token=ALICE, status=403)
    await call(api, "PUT", "/v2.1/os-hosts/c1", {"status": "enable"}, token=ALICE,
               status=403)
    await call(api, "GET", "/v2.1/os-hosts/c1/reboot", token=ALICE, status=403)
    # Removed at 2.43.
    await call(api, "GET", "/v2.1/os-hosts", version="2.43", status=404)


# --- os-migrations ---------------------------------------------------------------------------

async def _migration(api, instance: str, *, status="finished", kind="resize") -> str:
    mig_id = str(uuidlib.uuid4())
    now = utcnow()
    async with api.cloud.db.write() as conn:
        await conn.execute(t.migration.insert().values(
            id=mig_id, num=await hosts.next_num(conn, t.migration), instance_uuid=instance,
            migration_type=kind, status=status, source_compute="c1", source_node="c1.example",
            dest_compute="c2", dest_node="c2.example", old_flavor_id="1", new_flavor_id="x",
            created_at=now, updated_at=now))
    return mig_id


async def test_os_migrations_fields_by_version_and_paging(api):
    await add_host(api, "c1")
    await add_host(api, "c2")
    inst = await add_instance(api, "c2", project="p1")
    first = await _migration(api, inst)
    second = await _migration(api, inst, status="running", kind="live-migration")

    _, body = await call(api, "GET", "/v2.1/os-migrations", status=200)
    m = body["migrations"][0]
    assert set(m) == {"id", "status", "instance_uuid", "source_node", "source_compute",
                      "dest_node", "dest_compute", "dest_host", "old_instance_type_id",
                      "new_instance_type_id", "created_at", "updated_at"}
    assert m["instance_uuid"] == inst and m["dest_host"] == "192.0.2.1"
    assert m["old_instance_type_id"] == 1 and m["new_instance_type_id"] is None

    _, body = await call(api, "GET", "/v2.1/os-migrations", version="2.23", status=200)
    by_type = {m["migration_type"]: m for m in body["migrations"]}
    assert "links" not in by_type["resize"]
    assert by_type["live-migration"]["links"][0]["href"].endswith(
        f"/servers/{inst}/migrations/{by_type['live-migration']['id']}")

    _, body = await call(api, "GET", "/v2.1/os-migrations?limit=1", version="2.59",
                         status=200)
    assert [m["uuid"] for m in body["migrations"]] == [second]      # newest first
    assert "marker=" + second in body["migrations_links"][0]["href"]
    _, body = await call(api, "GET", f"/v2.1/os-migrations?marker={second}",
                         version="2.59", status=200)
    assert [m["uuid"] for m in body["migrations"]] == [first]
    await call(api, "GET", "/v2.1/os-migrations?bogus=1", version="2.59", status=400)
    await call(api, "GET", "/v2.1/os-migrations?marker=nope", version="2.59", status=400)

    _, body = await call(api, "GET", "/v2.1/os-migrations?project_id=p1", version="2.80",
                         status=200)
    assert {(m["user_id"], m["project_id"]) for m in body["migrations"]} == {("u", "p1")}
    _, body = await call(api, "GET", "/v2.1/os-migrations?status=running", status=200)
    assert [m["status"] for m in body["migrations"]] == ["running"]
    await call(api, "GET", "/v2.1/os-migrations", token=ALICE, status=403)


# --- audit log, networks -----------------------------------------------------------------------

async def test_instance_usage_audit_log_reports_unaudited_hosts(api):
    await add_host(api, "c1")
    _, body = await call(api, "GET", "/v2.1/os-instance_usage_audit_log", status=200)
    log = body["instance_usage_audit_logs"]
    assert log["hosts_not_run"] == ["c1"] and log["num_hosts"] == 1
    assert log["overall_status"] == "0 of 1 hosts done. 0 errors."
    _, body = await call(api, "GET",
                         "/v2.1/os-instance_usage_audit_log/2024-03-15%2010:00:00",
                         status=200)
    log = body["instance_usage_audit_log"]
    assert (log["period_beginning"], log["period_ending"]) == (
        "2024-02-01 00:00:00", "2024-03-01 00:00:00")
    await call(api, "GET", "/v2.1/os-instance_usage_audit_log/invalid_time", status=400)
    await call(api, "GET", "/v2.1/os-instance_usage_audit_log", token=ALICE, status=403)


async def test_os_networks_lists_the_shared_default_network(api):
    _, body = await call(api, "GET", "/v2.1/os-networks", token=ALICE, status=200)
    assert [n["label"] for n in body["networks"]] == ["default"]
    await call(api, "GET", f"/v2.1/os-networks/{uuidlib.uuid4()}", status=404)
    await call(api, "GET", "/v2.1/os-networks", version="2.36", status=404)


# --- diagnostics, external events ------------------------------------------------------------

async def test_server_diagnostics(api):
    uuid = await boot(api)
    _, body = await call(api, "GET", f"/v2.1/servers/{uuid}/diagnostics", status=409)
    await set_state(api, uuid, vm_state="active", power_state=1, host="c1", node="c1.x",
                    launched_at=utcnow())
    _, body = await call(api, "GET", f"/v2.1/servers/{uuid}/diagnostics", version="2.48",
                         status=200)
    assert body["state"] == "running" and body["driver"] == "libvirt"
    assert body["memory_details"]["maximum"] == 512 and body["num_cpus"] == 1
    assert len(body["cpu_details"]) == 1 and body["num_disks"] == len(body["disk_details"])
    _, body = await call(api, "GET", f"/v2.1/servers/{uuid}/diagnostics", status=200)
    assert body["memory"] == 512 * 1024
    await call(api, "GET", f"/v2.1/servers/{uuid}/diagnostics", token=ALICE, status=403)
    await call(api, "GET", f"/v2.1/servers/{uuidlib.uuid4()}/diagnostics", status=404)


async def test_server_external_events(api):
    uuid = await boot(api)
    events = [{"name": "network-changed", "server_uuid": uuid}]
    service = {"X-Roles": "admin,service"}
    _, body = await call(api, "POST", "/v2.1/os-server-external-events",
                         {"events": events}, token="nova:service", headers=service,
                         status=207)
    assert body["events"][0]["code"] == 422          # no host yet
    await set_state(api, uuid, host="c1")
    missing = {"name": "network-vif-plugged", "server_uuid": str(uuidlib.uuid4())}
    _, body = await call(api, "POST", "/v2.1/os-server-external-events",
                         {"events": events}, token="nova:service", headers=service,
                         status=200)
    assert body["events"] == [{"name": "network-changed", "server_uuid": uuid,
                               "status": "completed", "code": 200}]
    _, body = await call(api, "POST", "/v2.1/os-server-external-events",
                         {"events": events + [missing]}, token="nova:service",
                         headers=service, status=207)
    assert [e["code"] for e in body["events"]] == [200, 404]
    await call(api, "POST", "/v2.1/os-server-external-events",
               {"events": [{"name": "power-update", "server_uuid": uuid}]},
               token="nova:service", headers=service, status=400)   # before 2.76
    await call(api, "POST", "/v2.1/os-server-external-events", {"events": events},
               token=ALICE, status=403)


# --- server actions ---------------------------------------------------------------------------

async def test_reset_state_and_migrate(api):
    uuid = await boot(api)
    await set_state(api, uuid, vm_state="active", task_state="rebooting", host="c1")
    await call(api, "POST", f"/v2.1/servers/{uuid}/action",
               {"os-resetState": {"state": "error"}}, status=202)
    [inst] = await rows(api, t.instance, uuid=uuid)
    assert (inst.vm_state, inst.task_state) == ("error", None)
    actions = [r.action for r in await rows(api, t.instance_action, instance_uuid=uuid)]
    assert "resetState" in actions
    _, body = await call(api, "GET", f"/v2.1/servers/{uuid}", status=200)
    assert body["server"]["status"] == "ERROR"
    await call(api, "POST", f"/v2.1/servers/{uuid}/action",
               {"os-resetState": {"state": "bogus"}}, status=400)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action",
               {"os-resetState": {"state": "active"}}, token=ALICE, status=403)
    missing = uuidlib.uuid4()
    await call(api, "POST", f"/v2.1/servers/{missing}/action",
               {"os-resetState": {"state": "active"}}, status=404)
    await call(api, "POST", f"/v2.1/servers/{missing}/action", {"migrate": None},
               status=404)
    await call(api, "POST", f"/v2.1/servers/{uuid}/action", {"migrate": None}, status=501)


async def test_remove_and_add_security_groups(api):
    uuid = await boot(api)
    path = f"/v2.1/servers/{uuid}"
    _, body = await call(api, "GET", path, token=ALICE, status=200)
    assert body["server"]["security_groups"] == [{"name": "default"}]
    await call(api, "POST", path + "/action", {"removeSecurityGroup": {"name": "web"}},
               token=ALICE, status=400)
    await call(api, "POST", path + "/action", {"removeSecurityGroup": {"name": "default"}},
               token=ALICE, status=202)
    _, body = await call(api, "GET", path, token=ALICE, status=200)
    assert "security_groups" not in body["server"]
    _, err = await call(api, "POST", path + "/action", {"addSecurityGroup": {"name": "web"}},
                        token=ALICE, status=404)
    assert err["itemNotFound"]["message"] == "Security group web is not found for project p1"
    await call(api, "POST", "/v2.1/os-security-groups", {"security_group": {
        "name": "web", "description": ""}}, token=ALICE, status=200)
    await call(api, "POST", path + "/action", {"addSecurityGroup": {"name": "web"}},
               token=ALICE, status=202)
    _, body = await call(api, "GET", path, token=ALICE, status=200)
    assert body["server"]["security_groups"] == [{"name": "web"}]
    await call(api, "POST", path + "/action", {"addSecurityGroup": {"name": " "}},
               token=ALICE, status=400)
    await call(api, "POST", path + "/action", {"addSecurityGroup": {"name": "x"}},
               token="bob:p2", status=404)


async def test_access_ips_are_stored_in_canonical_form(api):
    uuid = await boot(api, accessIPv6="0000:0000:0000:0000:0000:babe:220.12.22.2",
                      accessIPv4="1.2.3.4")
    _, body = await call(api, "GET", f"/v2.1/servers/{uuid}", token=ALICE, status=200)
    assert body["server"]["accessIPv6"] == "::babe:dc0c:1602"
    await call(api, "PUT", f"/v2.1/servers/{uuid}",
               {"server": {"accessIPv6": "2001:DB8:0:0:0:0:0:1"}}, token=ALICE, status=200)
    [inst] = await rows(api, t.instance, uuid=uuid)
    assert inst.access_ip_v6 == "2001:db8::1" and inst.access_ip_v4 == "1.2.3.4"
    assert json.loads(inst.request_spec)["security_groups"] == ["default"]
