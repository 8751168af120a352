"""The scheduler: placement query, filters, weighers and claims."""

from __future__ import annotations

import asyncio
import json
import uuid as uuidlib

import pytest
import pytest_asyncio

from cloudd.db import tables as t
from cloudd.services.compute.schedule_request import (
    placement_query,
    resources_from_flavor,
    spec_matches,
)
from cloudd.services.compute.scheduler import NoValidHost
from cloudd.services.compute.tasks import utcnow
from tests.compute.conductor_sim import TINY, Sim

pytestmark = pytest.mark.asyncio


async def test_resources_from_flavor_rounds_swap_up_and_drops_zeros():
    flavor = dict(TINY, root_gb=0, ephemeral_gb=2, swap=1025)
    assert resources_from_flavor(flavor) == {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 4}
    assert resources_from_flavor(dict(TINY, root_gb=0)) == {"VCPU": 1, "MEMORY_MB": 512}
    custom = dict(TINY, extra_specs={"resources:VCPU": "0", "resources:PCPU": "2",
                                     "trait:HW_CPU_X86_AVX": "required"})
    assert resources_from_flavor(custom) == {"PCPU": 2, "MEMORY_MB": 512, "DISK_GB": 1}
    assert placement_query(custom)["required"] == "HW_CPU_X86_AVX"


async def test_aggregate_extra_spec_operators():
    assert spec_matches("true", "true") and not spec_matches("false", "true")
    assert spec_matches("ssd,nvme", "<in> nvme")
    assert spec_matches("b", "<or> a <or> b") and not spec_matches("c", "<or> a <or> b")
    assert spec_matches("16", ">= 8") and not spec_matches("4", ">= 8")
    assert spec_matches("abc", "s== abc") and not spec_matches(None, "s== abc")


@pytest_asyncio.fixture
async def sim(make_api):
    api = await make_api({"runtime": {"sync_cast": True}})
    await api.cloud.supervisor.quiesce()
    return Sim(api.cloud)


def request(flavor=None, **spec):
    return {"uuid": str(uuidlib.uuid4()), "project_id": "p1", "user_id": "u1",
            "flavor": flavor or TINY, "request_spec": spec}


async def aggregate(sim, name, hosts, metadata):
    agg_id = str(uuidlib.uuid4())
    async with sim.db.write() as conn:
        num = len((await conn.execute(t.aggregate.select())).all()) + 1
        await conn.execute(t.aggregate.insert().values(id=agg_id, num=num, name=name,
                                                        created_at=utcnow()))
        for host in hosts:
            await conn.execute(t.aggregate_host.insert().values(aggregate_id=agg_id,
                                                                host=host))
        for k, v in metadata.items():
            await conn.execute(t.aggregate_metadata.insert().values(
                aggregate_id=agg_id, meta_key=k, meta_value=v))


async def test_claims_on_the_host_with_most_free_ram(sim):
    await sim.add_host("host1", memory_mb=2048)
    await sim.add_host("host2", memory_mb=8192)
    req = request()
    sel = await sim.cloud.compute.scheduler.select(req)
    assert (sel.host, sel.node) == ("host2", "host2.node")
    assert sel.alternates == [("host1", "host1.node")]
    assert await sim.usage(req["uuid"]) == {"host2": {"VCPU": 1, "MEMORY_MB": 512,
                                                      "DISK_GB": 1}}


async def test_build_failures_weigh_a_host_down(sim):
    await sim.add_host("host1", memory_mb=2048)
    await sim.add_host("host2", memory_mb=8192)
    scheduler = sim.cloud.compute.scheduler
    scheduler.note_build_failure("host2")
    assert (await scheduler.select(request())).host == "host1"
    scheduler.note_build_success("host2")
    assert (await scheduler.select(request())).host == "host2"


async def test_disabled_down_and_tried_hosts_are_filtered(sim):
    await sim.add_host("off", disabled=True)
    await sim.add_host("down", up=False)
    await sim.add_host("tried")
    await sim.add_host("ok")
    sel = await sim.cloud.compute.scheduler.select(request(tried_hosts=["tried"]))
    assert sel.host == "ok" and sel.alternates == []
    with pytest.raises(NoValidHost) as exc:
        await sim.cloud.compute.scheduler.select(request(tried_hosts=["tried", "ok"]))
    assert exc.value.message == ("No valid host was found. "
                                 "There are not enough hosts available.")


async def test_availability_zone_and_forced_host(sim):
    await sim.add_host("host1", memory_mb=8192)
    await sim.add_host("host2")
    await aggregate(sim, "edge", ["host2"], {"availability_zone": "edge"})
    scheduler = sim.cloud.compute.scheduler
    assert (await scheduler.select(request(availability_zone="edge"))).host == "host2"
    assert (await scheduler.select(request(availability_zone="nova"))).host == "host1"
    assert (await scheduler.select(request(availability_zone="edge:host2"))).host == "host2"
    assert (await scheduler.select(request(force_host="host2"))).host == "host2"
    with pytest.raises(NoValidHost):
        await scheduler.select(request(availability_zone="nowhere"))


async def test_aggregate_instance_extra_specs(sim):
    await sim.add_host("host1", memory_mb=8192)
    await sim.add_host("host2")
    await aggregate(sim, "fast", ["host2"], {"ssd": "true"})
    flavor = dict(TINY, extra_specs={"aggregate_instance_extra_specs:ssd": "true",
                                     "hw:cpu_policy": "shared"})
    scheduler = sim.cloud.compute.scheduler
    assert (await scheduler.select(request(flavor))).host == "host2"
    flavor["extra_specs"]["aggregate_instance_extra_specs:ssd"] = "false"
    with pytest.raises(NoValidHost):
        await scheduler.select(request(flavor))


async def test_same_and_different_host_hints(sim):
    await sim.add_host("host1", memory_mb=8192)
    await sim.add_host("host2")
    other, _ = await sim.create("other", zone="nova:host2")
    scheduler = sim.cloud.compute.scheduler
    hint = {"same_host": [other]}
    assert (await scheduler.select(request(scheduler_hints=hint))).host == "host2"
    hint = {"different_host": other}
    assert (await scheduler.select(request(scheduler_hints=hint))).host == "host1"


async def insert_member(sim, group_id) -> dict:
    """A member as the servers API writes one: the membership row, and the
    group in the request spec."""
    uuid = str(uuidlib.uuid4())
    spec = {"group": {"id": group_id}}
    now = utcnow()
    async with sim.db.write() as conn:
        await conn.execute(t.instance.insert().values(
            uuid=uuid, display_name="m", project_id="p1", user_id="u1",
            flavor=json.dumps(TINY), vm_state="building", task_state="scheduling",
            reservation_id="r", request_spec=json.dumps(spec), created_at=now,
            deleted=False))
        await conn.execute(t.server_group_member.insert().values(group_id=group_id,
                                                                 instance_uuid=uuid))
    return request(**spec) | {"uuid": uuid}


async def test_anti_affinity_holds_for_racing_selects(sim):
    """Claims made but not yet written to instance.host still count."""
    for name in ("host1", "host2", "host3"):
        await sim.add_host(name)
    group = await sim.group("anti-affinity")
    members = [await insert_member(sim, group["id"]) for _ in range(4)]
    scheduler = sim.cloud.compute.scheduler
    results = await asyncio.gather(*(scheduler.select(m) for m in members),
                                   return_exceptions=True)
    chosen = [r.host for r in results if not isinstance(r, Exception)]
    assert sorted(chosen) == ["host1", "host2", "host3"]
    assert sum(isinstance(r, NoValidHost) for r in results) == 1


async def test_anti_affinity_max_server_per_host(sim):
    await sim.add_host("host1")
    group = await sim.group("anti-affinity", {"max_server_per_host": 2})
    members = [await insert_member(sim, group["id"]) for _ in range(3)]
    scheduler = sim.cloud.compute.scheduler
    assert (await scheduler.select(members[0])).host == "host1"
    assert (await scheduler.select(members[1])).host == "host1"
    with pytest.raises(NoValidHost):
        await scheduler.select(members[2])


async def test_soft_anti_affinity_prefers_empty_hosts(sim):
    await sim.add_host("host1", memory_mb=8192)
    await sim.add_host("host2")
    group = await sim.group("soft-anti-affinity")
    a, b = [await insert_member(sim, group["id"]) for _ in range(2)]
    scheduler = sim.cloud.compute.scheduler
    assert (await scheduler.select(a)).host == "host1"
    assert (await scheduler.select(b)).host == "host2"


async def test_racing_claims_never_overcommit(sim):
    await sim.add_host("host1", vcpus=2)
    scheduler = sim.cloud.compute.scheduler
    results = await asyncio.gather(*(scheduler.select(request()) for _ in range(4)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 2
    assert all(isinstance(r, NoValidHost) for r in results if isinstance(r, Exception))
