"""Compute admin APIs: os-services, os-availability-zone, os-aggregates,
os-hypervisors, os-simple-tenant-usage, per microversion.

Hosts are inserted as the agent hub would register them (compute_service,
compute_node and a placement provider rows); instances as rows.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid as uuidlib
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from cloudd.db import tables as t
from cloudd.services.compute import availability_zones, hosts
from cloudd.services.compute.tasks import utcnow
from tests.compute.conftest import call

pytestmark = pytest.mark.asyncio
ALICE = "alice:p1"
BOB = "bob:p2"
FLAVOR = {"id": "1", "name": "m1.tiny", "vcpus": 2, "memory_mb": 512, "root_gb": 1,
          "ephemeral_gb": 3}


async def add_host(api, host: str, *, seen_ago: float = 0, num: int | None = None,
                   vcpus: int = 16, memory_mb: int = 32768, local_gb: int = 1000) -> dict:
    """A nova-compute service with one compute node (and its placement provider)."""
    await controller_host(api)      # the hub's own rows first: nums are max + 1
    now = utcnow()
    svc_id, node_id = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    async with api.cloud.db.write() as conn:
        svc_num = await hosts.next_num(conn, t.compute_service)
        await conn.execute(t.compute_service.insert().values(
            id=svc_id, num=svc_num, host=host, binary_name="nova-compute", zone="nova",
            disabled=False, forced_down=False, version=1,
            last_seen_at=now - timedelta(seconds=seen_ago), created_at=now))
        node_num = await hosts.next_num(conn, t.compute_node)
        await conn.execute(t.compute_node.insert().values(
            id=node_id, num=node_num, service_id=svc_id, host=host,
            hypervisor_hostname=f"{host}.example", hypervisor_type="fake",
            hypervisor_version=1000, vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb,
            host_ip="192.0.2.1", cpu_info='{"arch": "x86_64"}', created_at=now))
        await conn.execute(t.resource_provider.insert().values(
            uuid=node_id, name=f"{host}.example", generation=0, root_provider_uuid=node_id,
            created_at=now))
    return {"service_id": svc_id, "service_num": svc_num, "node_id": node_id,
            "node_num": node_num, "hostname": f"{host}.example"}


async def add_instance(api, host: str | None, *, project: str = "p1", name: str = "vm",
                       launched_ago: timedelta | None = timedelta(hours=2),
                       terminated_ago: timedelta | None = None, vm_state: str = "active",
                       deleted: bool = False) -> str:
    now = utcnow()
    uuid = str(uuidlib.uuid4())
    async with api.cloud.db.write() as conn:
        await conn.execute(t.instance.insert().values(
            uuid=uuid, display_name=name, project_id=project, user_id="u",
            host=host, node=f"{host}.example" if host else None, flavor=json.dumps(FLAVOR),
            vm_state=vm_state, reservation_id="r-1",
            launched_at=now - launched_ago if launched_ago else None,
            terminated_at=now - terminated_ago if terminated_ago else None,
            created_at=now - timedelta(hours=3), deleted=deleted,
            deleted_at=now - terminated_ago if deleted and terminated_ago else None))
    return uuid


async def create_aggregate(api, name, zone=None, version="2.1"):
    body = {"aggregate": {"name": name}}
    if zone is not None:
        body["aggregate"]["availability_zone"] = zone
    _, data = await call(api, "POST", "/v2.1/os-aggregates", body, version=version,
                         status=200)
    return data["aggregate"]


async def agg_action(api, num, body, status=200, version="2.1"):
    return await call(api, "POST", f"/v2.1/os-aggregates/{num}/action", body,
                      version=version, status=status)


async def controller_host(api) -> str:
    """The controller's own services' host (the agent hub registers them at start)."""
    svc = t.compute_service
    for _ in range(50):
        async with api.cloud.db.read() as conn:
            found = (await conn.execute(select(svc.c.host).where(
                svc.c.binary_name == "nova-scheduler"))).first()
        if found:
            return found.host
        await asyncio.sleep(0.1)
    await hosts.ensure_controller_services(api.cloud.db, socket.gethostname())
    return socket.gethostname()


def forbidden(body):
    return "forbidden" in body and body["forbidden"]["code"] == 403


# --- os-services ---------------------------------------------------------------------------


async def test_services_list_ids_zones_and_state_by_version(api):
    ctl = await controller_host(api)
    h1 = await add_host(api, "h1")
    await add_host(api, "h2", seen_ago=3600)          # silent for an hour: down

    _, body = await call(api, "GET", "/v2.1/os-services", status=200)
    svcs = {(s["host"], s["binary"]): s for s in body["services"]}
    assert set(svcs) == {(ctl, "nova-scheduler"), (ctl, "nova-conductor"),
                         ("h1", "nova-compute"), ("h2", "nova-compute")}
    h1_svc = svcs[("h1", "nova-compute")]
    assert set(h1_svc) == {"id", "binary", "host", "zone", "status", "state", "updated_at",
                           "disabled_reason"}
    assert h1_svc["id"] == h1["service_num"]
    assert (h1_svc["zone"], h1_svc["status"], h1_svc["state"]) == ("nova", "enabled", "up")
    assert svcs[("h2", "nova-compute")]["state"] == "down"
    assert svcs[(ctl, "nova-scheduler")]["zone"] == "internal"
    assert svcs[(ctl, "nova-scheduler")]["state"] == "up"

    _, body = await call(api, "GET", "/v2.1/os-services?host=h1", version="2.11")
    assert [s["host"] for s in body["services"]] == ["h1"]
    assert body["services"][0]["forced_down"] is False
    _, body = await call(api, "GET", "/v2.1/os-services?binary=nova-conductor",
                         version="2.53")
    assert [s["binary"] for s in body["services"]] == ["nova-conductor"]
    assert uuidlib.UUID(body["services"][0]["id"])
    await call(api, "GET", "/v2.1/os-services?bogus=1", version="2.75", status=400)

    _, body = await call(api, "GET", "/v2.1/os-services", token=ALICE, status=403)
    assert forbidden(body)


async def test_services_legacy_disable_enable_force_down(api):
    await add_host(api, "h1")
    url = "/v2.1/os-services/"
    _, body = await call(api, "PUT", url + "disable-log-reason",
                         {"host": "h1", "binary": "nova-compute",
                          "disabled_reason": "maintenance"}, status=200)
    assert body == {"service": {"host": "h1", "binary": "nova-compute", "status": "disabled",
                                "disabled_reason": "maintenance"}}
    _, body = await call(api, "GET", url.rstrip("/") + "?host=h1")
    svc = body["services"][0]
    assert (svc["status"], svc["disabled_reason"]) == ("disabled", "maintenance")

    _, body = await call(api, "PUT", url + "enable", {"host": "h1", "binary": "nova-compute"},
                         status=200)
    assert body["service"]["status"] == "enabled"
    # force-down only exists from 2.11
    await call(api, "PUT", url + "force-down",
               {"host": "h1", "binary": "nova-compute", "forced_down": True}, status=400)
    _, body = await call(api, "PUT", url + "force-down",
                         {"host": "h1", "binary": "nova-compute", "forced_down": True},
                         version="2.11", status=200)
    assert body == {"service": {"host": "h1", "binary": "nova-compute", "forced_down": True}}
    _, body = await call(api, "GET", url.rstrip("/") + "?host=h1", version="2.11")
    assert (body["services"][0]["state"], body["services"][0]["forced_down"]) == ("down", True)

    await call(api, "PUT", url + "disable", {"host": "nope", "binary": "nova-compute"},
               status=404)
    await call(api, "PUT", url + "disable", {"host": "h1", "binary": "nova-scheduler"},
               status=400)
    await call(api, "PUT", url + "reboot", {"host": "h1", "binary": "nova-compute"},
               status=404)
    await call(api, "PUT", url + "disable-log-reason",
               {"host": "h1", "binary": "nova-compute"}, status=400)
    _, body = await call(api, "PUT", url + "disable",
                         {"host": "h1", "binary": "nova-compute"}, token=ALICE, status=403)
    assert forbidden(body)


async def test_services_update_by_uuid_from_2_53(api):
    await controller_host(api)
    h1 = await add_host(api, "h1")
    url = f"/v2.1/os-services/{h1['service_id']}"
    _, body = await call(api, "PUT", url, {"status": "disabled", "disabled_reason": "bad"},
                         version="2.53", status=200)
    svc = body["service"]
    assert (svc["id"], svc["status"], svc["disabled_reason"], svc["forced_down"]) == (
        h1["service_id"], "disabled", "bad", False)
    await call(api, "PUT", url, {"status": "enabled", "disabled_reason": "x"},
               version="2.53", status=400)
    _, body = await call(api, "PUT", url, {"status": "enabled", "forced_down": True},
                         version="2.53", status=200)
    svc = body["service"]
    assert (svc["status"], svc["disabled_reason"], svc["state"], svc["forced_down"]) == (
        "enabled", None, "down", True)
    await call(api, "PUT", url, {}, version="2.53", status=400)
    await call(api, "PUT", url, {"status": "paused"}, version="2.53", status=400)
    await call(api, "PUT", "/v2.1/os-services/disable", {"status": "disabled"},
               version="2.53", status=400)
    await call(api, "PUT", f"/v2.1/os-services/{uuidlib.uuid4()}", {"status": "disabled"},
               version="2.53", status=404)
    _, body = await call(api, "GET", "/v2.1/os-services?binary=nova-scheduler",
                         version="2.53")
    await call(api, "PUT", f"/v2.1/os-services/{body['services'][0]['id']}",
               {"status": "disabled"}, version="2.53", status=400)


async def test_service_delete_refused_with_instances_then_cleans_up(api):
    h1 = await add_host(api, "h1")
    agg = await create_aggregate(api, "a1", "az1")
    await agg_action(api, agg["id"], {"add_host": {"host": "h1"}})
    vm = await add_instance(api, "h1")
    _, body = await call(api, "DELETE", f"/v2.1/os-services/{h1['service_num']}", status=409)
    assert "hosting instances" in body["conflictingRequest"]["message"]
    async with api.cloud.db.write() as conn:
        await conn.execute(update(t.instance).where(t.instance.c.uuid == vm)
                           .values(deleted=True, deleted_at=utcnow()))
    await call(api, "DELETE", "/v2.1/os-services/abc", status=400)
    await call(api, "DELETE", f"/v2.1/os-services/{h1['service_num']}", version="2.53",
               status=400)
    await call(api, "DELETE", f"/v2.1/os-services/{h1['service_id']}", token=ALICE,
               version="2.53", status=403)
    await call(api, "DELETE", f"/v2.1/os-services/{h1['service_id']}",
               version="2.53", status=204)
    _, body = await call(api, "GET", "/v2.1/os-services?binary=nova-compute")
    assert body["services"] == []
    _, body = await call(api, "GET", "/v2.1/os-hypervisors")
    assert body["hypervisors"] == []
    _, body = await call(api, "GET", f"/v2.1/os-aggregates/{agg['id']}")
    assert body["aggregate"]["hosts"] == []
    async with api.cloud.db.read() as conn:
        assert (await conn.execute(select(t.resource_provider))).all() == []
    await call(api, "DELETE", f"/v2.1/os-services/{h1['service_num']}", status=404)


# --- os-availability-zone ---------------------------------------------------------------------


async def test_availability_zones_from_aggregates_and_services(api):
    ctl = await controller_host(api)
    await add_host(api, "h1")
    await add_host(api, "h2")
    await add_host(api, "h3", seen_ago=3600)
    agg = await create_aggregate(api, "rack2", "az2")
    await agg_action(api, agg["id"], {"add_host": {"host": "h2"}})
    await create_aggregate(api, "empty", "az-empty")       # no hosts: no zone

    _, body = await call(api, "GET", "/v2.1/os-availability-zone", token=ALICE, status=200)
    assert body["availabilityZoneInfo"] == [
        {"zoneName": "az2", "zoneState": {"available": True}, "hosts": None},
        {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]

    _, body = await call(api, "GET", "/v2.1/os-availability-zone/detail", status=200)
    zones = {z["zoneName"]: z for z in body["availabilityZoneInfo"]}
    assert set(zones) == {"az2", "internal", "nova"}
    nova = zones["nova"]["hosts"]
    assert set(nova) == {"h1", "h3"}
    assert nova["h1"]["nova-compute"]["available"] is True
    assert nova["h1"]["nova-compute"]["active"] is True
    assert nova["h3"]["nova-compute"]["available"] is False
    assert set(zones["internal"]["hosts"][ctl]) == {"nova-scheduler", "nova-conductor"}

    # A zone whose only service is disabled is listed as not available.
    await call(api, "PUT", "/v2.1/os-services/disable", {"host": "h2", "binary": "nova-compute"},
               status=200)
    _, body = await call(api, "GET", "/v2.1/os-availability-zone")
    assert body["availabilityZoneInfo"][-1] == {
        "zoneName": "az2", "zoneState": {"available": False}, "hosts": None}
    _, body = await call(api, "GET", "/v2.1/os-availability-zone/detail")
    assert body["availabilityZoneInfo"][-1]["hosts"] is None

    async with api.cloud.db.read() as conn:
        cfg = api.cloud.config
        assert await availability_zones.zone_of_host(conn, cfg, "h2") == "az2"
        assert await availability_zones.zone_of_host(conn, cfg, "h1") == "nova"
        assert await availability_zones.hosts_in_zone(conn, cfg, "nova") == {"h1", "h3"}
        assert await availability_zones.hosts_in_zone(conn, cfg, "az2") == {"h2"}

    _, body = await call(api, "GET", "/v2.1/os-availability-zone/detail", token=ALICE,
                         status=403)
    assert forbidden(body)


# --- os-aggregates ------------------------------------------------------------------------


async def test_aggregate_crud_metadata_and_versions(api):
    created = await create_aggregate(api, "agg1", "az1")
    assert set(created) == {"availability_zone", "created_at", "deleted", "deleted_at", "id",
                            "name", "updated_at"}
    assert (created["name"], created["availability_zone"], created["deleted"]) == (
        "agg1", "az1", False)
    new = await create_aggregate(api, "agg2", version="2.41")
    assert uuidlib.UUID(new["uuid"]) and new["availability_zone"] is None
    await call(api, "POST", "/v2.1/os-aggregates", {"aggregate": {"name": "agg1"}},
               status=409)
    for bad in ({"aggregate": {"name": "x", "availability_zone": "a:b"}},
                {"aggregate": {"name": " lead"}}, {"aggregate": {}},
                {"aggregate": {"name": "y", "extra": 1}}):
        await call(api, "POST", "/v2.1/os-aggregates", bad, status=400)

    num = created["id"]
    _, body = await call(api, "GET", f"/v2.1/os-aggregates/{num}", status=200)
    agg = body["aggregate"]
    assert (agg["hosts"], agg["metadata"]) == ([], {"availability_zone": "az1"})
    assert "uuid" not in agg

    _, body = await call(api, "PUT", f"/v2.1/os-aggregates/{num}",
                         {"aggregate": {"name": "renamed", "availability_zone": "az9"}},
                         status=200)
    assert (body["aggregate"]["name"], body["aggregate"]["availability_zone"]) == (
        "renamed", "az9")
    assert body["aggregate"]["metadata"] == {"availability_zone": "az9"}
    assert body["aggregate"]["updated_at"] is not None
    await call(api, "PUT", f"/v2.1/os-aggregates/{num}", {"aggregate": {"name": "agg2"}},
               status=409)
    await call(api, "PUT", f"/v2.1/os-aggregates/{num}",
               {"aggregate": {"availability_zone": None}}, status=400)

    _, body = await agg_action(api, num, {"set_metadata": {"metadata": {"ssd": "true",
                                                                        "gpu": "1"}}})
    assert body["aggregate"]["metadata"] == {"availability_zone": "az9", "ssd": "true",
                                             "gpu": "1"}
    _, body = await agg_action(api, num, {"set_metadata": {"metadata": {"gpu": None}}},
                               version="2.41")
    assert body["aggregate"]["metadata"] == {"availability_zone": "az9", "ssd": "true"}
    assert "uuid" in body["aggregate"]
    await agg_action(api, num, {"set_metadata": {"metadata": {"bad/key": "1"}}}, status=400)

    _, body = await call(api, "GET", "/v2.1/os-aggregates", version="2.41", status=200)
    assert [a["name"] for a in body["aggregates"]] == ["renamed", "agg2"]
    assert all("uuid" in a and "hosts" in a for a in body["aggregates"])

    await call(api, "GET", "/v2.1/os-aggregates/abc", status=400)
    await call(api, "GET", "/v2.1/os-aggregates/999", status=404)
    await call(api, "DELETE", f"/v2.1/os-aggregates/{num}", status=200)
    await call(api, "GET", f"/v2.1/os-aggregates/{num}", status=404)

    for method, path, payload in (
            ("GET", "/v2.1/os-aggregates", None),
            ("POST", "/v2.1/os-aggregates", {"aggregate": {"name": "z"}}),
            ("POST", f"/v2.1/os-aggregates/{new['id']}/action",
             {"add_host": {"host": "h1"}})):
        _, body = await call(api, method, path, payload, token=ALICE, status=403)
        assert forbidden(body)


async def test_aggregate_hosts_zone_conflicts_and_placement(api):
    h1 = await add_host(api, "h1")
    await add_host(api, "h2")
    a1 = await create_aggregate(api, "a1", "az1", version="2.41")
    a2 = await create_aggregate(api, "a2", "az2")
    plain = await create_aggregate(api, "plain")

    _, body = await agg_action(api, a1["id"], {"add_host": {"host": "h1"}})
    assert body["aggregate"]["hosts"] == ["h1"]
    await agg_action(api, a1["id"], {"add_host": {"host": "h1"}}, status=409)  # twice
    _, body = await agg_action(api, a2["id"], {"add_host": {"host": "h1"}}, status=409)
    assert "already in availability zone" in body["conflictingRequest"]["message"]
    await agg_action(api, plain["id"], {"add_host": {"host": "h1"}})
    # Giving the plain aggregate another zone would put h1 in two zones.
    await agg_action(api, plain["id"],
                     {"set_metadata": {"metadata": {"availability_zone": "az2"}}},
                     status=400)
    await call(api, "PUT", f"/v2.1/os-aggregates/{plain['id']}",
               {"aggregate": {"availability_zone": "az2"}}, status=400)
    await agg_action(api, a1["id"], {"add_host": {"host": "ghost"}}, status=404)
    await agg_action(api, 999, {"add_host": {"host": "h1"}}, status=404)
    await agg_action(api, a1["id"], {"remove_host": {"host": "h2"}}, status=404)
    await agg_action(api, a1["id"], {"add_host": {"host": "bad host!"}}, status=400)

    async with api.cloud.db.read() as conn:
        rpa = t.resource_provider_aggregate
        rows = (await conn.execute(select(rpa.c.aggregate_uuid).where(
            rpa.c.resource_provider_uuid == h1["node_id"]))).all()
        generation = (await conn.execute(select(t.resource_provider.c.generation).where(
            t.resource_provider.c.uuid == h1["node_id"]))).scalar()
    assert a1["uuid"] in {r.aggregate_uuid for r in rows} and len(rows) == 2
    assert generation == 2

    # Instances on h1 pin its zone: no zone change, no leaving the zoned aggregate.
    await add_instance(api, "h1")
    await call(api, "PUT", f"/v2.1/os-aggregates/{a1['id']}",
               {"aggregate": {"availability_zone": "az-other"}}, status=400)
    await agg_action(api, a1["id"], {"remove_host": {"host": "h1"}}, status=409)
    await agg_action(api, plain["id"], {"remove_host": {"host": "h1"}})   # no zone: fine
    _, body = await call(api, "DELETE", f"/v2.1/os-aggregates/{a1['id']}", status=400)
    assert "not empty" in body["badRequest"]["message"]

    await agg_action(api, a2["id"], {"add_host": {"host": "h2"}})
    _, body = await agg_action(api, a2["id"], {"remove_host": {"host": "h2"}})
    assert body["aggregate"]["hosts"] == []


# --- os-hypervisors -----------------------------------------------------------------------


async def test_hypervisors_fields_usage_and_versions(api):
    h1 = await add_host(api, "h1", vcpus=8, memory_mb=4096, local_gb=100)
    h2 = await add_host(api, "h2", seen_ago=3600)
    await add_instance(api, "h1", name="one")
    await add_instance(api, "h1", name="two", vm_state="building")
    await add_instance(api, "h1", name="gone", deleted=True,
                       terminated_ago=timedelta(hours=1))

    _, body = await call(api, "GET", "/v2.1/os-hypervisors", status=200)
    assert body["hypervisors"] == [
        {"id": h1["node_num"], "hypervisor_hostname": "h1.example", "state": "up",
         "status": "enabled"},
        {"id": h2["node_num"], "hypervisor_hostname": "h2.example", "state": "down",
         "status": "enabled"}]

    _, body = await call(api, "GET", f"/v2.1/os-hypervisors/{h1['node_num']}", status=200)
    hyp = body["hypervisor"]
    assert (hyp["vcpus_used"], hyp["memory_mb_used"], hyp["local_gb_used"],
            hyp["running_vms"], hyp["current_workload"]) == (4, 1024, 8, 2, 1)
    assert (hyp["free_ram_mb"], hyp["free_disk_gb"]) == (3072, 92)
    assert hyp["cpu_info"] == '{"arch": "x86_64"}'
    assert hyp["service"] == {"id": h1["service_num"], "host": "h1",
                              "disabled_reason": None}
    _, body = await call(api, "GET", f"/v2.1/os-hypervisors/{h1['node_num']}",
                         version="2.28")
    assert body["hypervisor"]["cpu_info"] == {"arch": "x86_64"}
    await call(api, "GET", "/v2.1/os-hypervisors/nope", status=404)

    _, body = await call(api, "GET", f"/v2.1/os-hypervisors/{h1['node_id']}"
                         "?with_servers=true", version="2.53", status=200)
    hyp = body["hypervisor"]
    assert hyp["id"] == h1["node_id"] and hyp["service"]["id"] == h1["service_id"]
    assert sorted(s["name"] for s in hyp["servers"]) == ["one", "two"]
    await call(api, "GET", f"/v2.1/os-hypervisors/{h1['node_num']}", version="2.53",
               status=400)

    _, body = await call(api, "GET", "/v2.1/os-hypervisors/detail", version="2.88")
    hyp = body["hypervisors"][0]
    assert set(hyp) == {"id", "hypervisor_hostname", "state", "status", "hypervisor_type",
                        "hypervisor_version", "host_ip", "service", "uptime"}
    assert body["hypervisors"][1]["uptime"] is None          # a down host has none

    _, body = await call(api, "GET", "/v2.1/os-hypervisors?hypervisor_hostname_pattern=h2"
                         "&with_servers=1", version="2.75")
    assert [(h["id"], h["servers"]) for h in body["hypervisors"]] == [(h2["node_id"], [])]
    await call(api, "GET", "/v2.1/os-hypervisors?hypervisor_hostname_pattern=zz",
               version="2.53", status=404)
    await call(api, "GET", "/v2.1/os-hypervisors?hypervisor_hostname_pattern=h&limit=1",
               version="2.53", status=400)
    await call(api, "GET", "/v2.1/os-hypervisors?with_servers=maybe", version="2.53",
               status=400)

    _, body = await call(api, "GET", "/v2.1/os-hypervisors/H1/servers", status=200)
    assert [h["hypervisor_hostname"] for h in body["hypervisors"]] == ["h1.example"]
    assert len(body["hypervisors"][0]["servers"]) == 2
    _, body = await call(api, "GET", "/v2.1/os-hypervisors/example/search", status=200)
    assert len(body["hypervisors"]) == 2 and "servers" not in body["hypervisors"][0]
    await call(api, "GET", "/v2.1/os-hypervisors/example/search", version="2.53",
               status=404)

    _, body = await call(api, "GET", "/v2.1/os-hypervisors/statistics", status=200)
    stats = body["hypervisor_statistics"]
    assert (stats["count"], stats["vcpus"], stats["vcpus_used"], stats["running_vms"]) == (
        2, 24, 4, 2)
    await call(api, "GET", "/v2.1/os-hypervisors/statistics", version="2.88", status=404)
    _, body = await call(api, "GET", f"/v2.1/os-hypervisors/{h2['node_num']}/uptime",
                         status=400)

    _, body = await call(api, "GET", "/v2.1/os-hypervisors?limit=1", version="2.33")
    assert [h["id"] for h in body["hypervisors"]] == [h1["node_num"]]
    assert f"marker={h1['node_num']}" in body["hypervisors_links"][0]["href"]
    _, body = await call(api, "GET", f"/v2.1/os-hypervisors/detail?limit=1&marker="
                         f"{h1['node_id']}", version="2.53")
    assert [h["id"] for h in body["hypervisors"]] == [h2["node_id"]]
    await call(api, "GET", f"/v2.1/os-hypervisors?marker={uuidlib.uuid4()}",
               version="2.53", status=400)

    _, body = await call(api, "GET", "/v2.1/os-hypervisors/detail", token=ALICE, status=403)
    assert forbidden(body)


# --- os-simple-tenant-usage -----------------------------------------------------------------


async def test_simple_tenant_usage(api):
    await add_host(api, "h1")
    live = await add_instance(api, "h1", name="live", launched_ago=timedelta(hours=2))
    await add_instance(api, None, name="old", deleted=True, launched_ago=timedelta(hours=5),
                       terminated_ago=timedelta(hours=3))
    await add_instance(api, "h1", project="p2", name="bobs")
    await add_instance(api, None, name="never", launched_ago=None, vm_state="error")

    now = utcnow()
    window = (f"start={(now - timedelta(hours=4)).strftime('%Y-%m-%dT%H:%M:%S')}"
              f"&end={(now + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%S.%f')}")
    _, body = await call(api, "GET", f"/v2.1/os-simple-tenant-usage?{window}", status=200)
    usages = {u["tenant_id"]: u for u in body["tenant_usages"]}
    assert set(usages) == {"p1", "p2"} and "server_usages" not in usages["p1"]
    # p1: 2h of "live" and 1h of "old" (terminated 3h ago, window from 4h ago)
    assert usages["p1"]["total_hours"] == pytest.approx(3.0, abs=0.01)
    assert usages["p1"]["total_vcpus_usage"] == pytest.approx(6.0, abs=0.05)
    assert usages["p1"]["total_memory_mb_usage"] == pytest.approx(1536, abs=5)
    assert usages["p1"]["total_local_gb_usage"] == pytest.approx(12, abs=0.1)

    _, body = await call(api, "GET", f"/v2.1/os-simple-tenant-usage/p1?{window}",
                         token=ALICE, status=200)
    servers = {s["name"]: s for s in body["tenant_usage"]["server_usages"]}
    assert set(servers) == {"live", "old"}
    assert servers["old"]["state"] == "terminated" and servers["old"]["ended_at"]
    assert servers["old"]["uptime"] == 7200
    assert servers["live"]["state"] == "active" and servers["live"]["ended_at"] is None
    assert (servers["live"]["instance_id"], servers["live"]["flavor"],
            servers["live"]["local_gb"], servers["live"]["vcpus"]) == (live, "m1.tiny", 4, 2)

    _, body = await call(api, "GET", f"/v2.1/os-simple-tenant-usage/p1?{window}",
                         token=BOB, status=403)
    assert forbidden(body)
    await call(api, "GET", f"/v2.1/os-simple-tenant-usage?{window}", token=ALICE,
               status=403)
    _, body = await call(api, "GET", "/v2.1/os-simple-tenant-usage/nobody")
    assert body == {"tenant_usage": {}}
    await call(api, "GET", "/v2.1/os-simple-tenant-usage?start=2020-01-02T00:00:00"
               "&end=2020-01-01T00:00:00", status=400)
    await call(api, "GET", "/v2.1/os-simple-tenant-usage?start=yesterday", status=400)

    # 2.40 pages over server usages.
    _, body = await call(api, "GET", f"/v2.1/os-simple-tenant-usage?{window}&detailed=1"
                         "&limit=1", version="2.40", status=200)
    first = body["tenant_usages"][0]["server_usages"][0]["instance_id"]
    assert f"marker={first}" in body["tenant_usages_links"][0]["href"]
    _, body = await call(api, "GET", f"/v2.1/os-simple-tenant-usage?{window}&detailed=1"
                         f"&limit=5&marker={first}", version="2.40", status=200)
    rest = [s["instance_id"] for u in body["tenant_usages"] for s in u["server_usages"]]
    assert len(rest) == 2 and first not in rest and "tenant_usages_links" not in body
