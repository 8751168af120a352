"""The conductor's flows against simulated hosts and agents (no agent hub):
build, reschedule, no valid host, delete (also local and mid-build),
power actions, rebuild, resize with confirm and revert, and recovery after
a restart. Placement allocations are checked after every flow."""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from cloudd.db import tables as t
from cloudd.drivers.base import InstanceSpec
from cloudd.server import Cloud
from cloudd.services.compute.tasks import utcnow
from tests.compute.conductor_sim import SMALL, Sim

TINY_RES = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
SMALL_RES = {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2}
pytestmark = pytest.mark.asyncio

NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


@pytest_asyncio.fixture
async def sim(make_api):
    api = await make_api({"runtime": {"sync_cast": True}})
    await api.cloud.supervisor.quiesce()
    return Sim(api.cloud)


async def migration_of(sim, uuid):
    async with sim.db.read() as conn:
        return (await conn.execute(select(t.migration).where(
            t.migration.c.instance_uuid == uuid).order_by(t.migration.c.num.desc()))).first()


# -- build ------------------------------------------------------------------------------

async def test_build_goes_active_with_allocations(sim):
    await sim.add_host("host1")
    uuid, task_id = await sim.create("web")
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.power_state) == ("active", None, 1)
    assert (inst.host, inst.node, inst.availability_zone) == ("host1", "host1.node", "nova")
    assert inst.launched_at is not None
    assert await sim.usage(uuid) == {"host1": TINY_RES}
    assert (await sim.task(task_id)).state == "done"
    assert sim.guests["host1"] == {uuid}
    # The spawn args are the driver's InstanceSpec.
    spec = InstanceSpec(**sim.args[0]["spec"])
    assert (spec.uuid, spec.name, spec.vcpus, spec.memory_mb, spec.root_gb) == \
        (uuid, "web", 1, 512, 1)
    assert spec.image["id"] == "img-1" and spec.metadata == {"role": "test"}
    assert await sim.events(uuid) == [("create", "compute__do_build_and_run_instance",
                                       "Success")]
    action = (await sim.actions(uuid))[0]
    assert action.finish_time is not None and action.message is None


async def test_no_candidates_is_error_with_novalidhost_fault(sim):
    await sim.add_host("tiny", vcpus=1, memory_mb=256)
    uuid, task_id = await sim.create()
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.host) == ("error", None, None)
    fault = (await sim.faults(uuid))[-1]
    assert fault.code == 500
    assert fault.message.startswith("No valid host was found.")
    assert await sim.usage(uuid) == {}
    assert (await sim.task(task_id)).state == "failed"
    assert (await sim.actions(uuid))[0].message == "Error"
    assert await sim.events(uuid) == [("create", "conductor_schedule_and_build_instances",
                                       "Error")]
    assert sim.log == []


async def test_filtered_out_hosts_give_novas_message(sim):
    await sim.add_host("host1", disabled=True)
    await sim.add_host("host2", up=False)
    uuid, _ = await sim.create()
    assert (await sim.instance(uuid)).vm_state == "error"
    assert (await sim.faults(uuid))[-1].message == NO_VALID_HOST
    assert await sim.usage(uuid) == {}


async def test_retryable_failure_reschedules_to_another_host(sim):
    await sim.add_host("host1", memory_mb=8192)       # preferred by the RAM weigher
    await sim.add_host("host2")
    sim.fail["host1"] = {"spawn": {"retryable": True, "error": "no luck"}}
    uuid, task_id = await sim.create()
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.host) == ("active", "host2")
    assert await sim.usage(uuid) == {"host2": TINY_RES}
    assert [h for h, op, _ in sim.log if op == "spawn"] == ["host1", "host2"]
    assert (await sim.task(task_id)).attempts == 1
    assert "re-scheduled" in (await sim.faults(uuid))[-1].message
    assert sim.cloud.compute.scheduler.failed_builds == {"host1": 1}


async def test_retryable_failure_without_other_hosts_exceeds_retries(sim):
    await sim.add_host("host1")
    sim.fail["host1"] = {"spawn": {"retryable": True, "error": "no luck"}}
    uuid, _ = await sim.create()
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.host) == ("error", None)
    assert (await sim.faults(uuid))[-1].message.startswith(
        "Exceeded maximum number of retries.")
    assert await sim.usage(uuid) == {}


async def test_hard_failure_is_error_and_frees_the_claim(sim):
    await sim.add_host("host1")
    await sim.add_host("host2")
    sim.fail["host1"] = sim.fail["host2"] = {"spawn": {"retryable": False, "error": "boom"}}
    uuid, _ = await sim.create()
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.host) == ("error", None, None)
    assert (await sim.faults(uuid))[-1].message == f"Build of instance {uuid} aborted: boom"
    assert await sim.usage(uuid) == {}
    assert len([op for _, op, _ in sim.log if op == "spawn"]) == 1
    assert ("create", "compute__do_build_and_run_instance", "Error") in await sim.events(uuid)


async def test_anti_affinity_spreads_then_no_valid_host(sim):
    await sim.add_host("host1")
    await sim.add_host("host2")
    group = await sim.group("anti-affinity")
    a, _ = await sim.create("a", group=group)
    b, _ = await sim.create("b", group=group)
    c, _ = await sim.create("c", group=group)
    hosts = {(await sim.instance(a)).host, (await sim.instance(b)).host}
    assert hosts == {"host1", "host2"}
    assert (await sim.instance(c)).vm_state == "error"
    assert (await sim.faults(c))[-1].message == NO_VALID_HOST
    assert await sim.usage(c) == {}


async def test_affinity_keeps_members_together(sim):
    await sim.add_host("host1")
    await sim.add_host("host2")
    group = await sim.group("affinity")
    a, _ = await sim.create("a", group=group)
    b, _ = await sim.create("b", group=group)
    assert (await sim.instance(a)).host == (await sim.instance(b)).host


async def test_repeated_wakes_do_nothing_more(sim):
    await sim.add_host("host1")
    uuid, task_id = await sim.create(run=False)
    await sim.conductor.cast(task_id)
    await sim.conductor.cast(task_id)            # while waiting on spawn: nothing
    await sim.drain()
    await sim.conductor.cast(task_id)            # after done: nothing
    assert [op for _, op, _ in sim.log] == ["spawn"]
    assert (await sim.instance(uuid)).vm_state == "active"
    assert await sim.usage(uuid) == {"host1": TINY_RES}


# -- delete -----------------------------------------------------------------------------

async def test_delete_destroys_and_frees_everything(sim):
    await sim.add_host("host1")
    group = await sim.group("anti-affinity")
    uuid, _ = await sim.create(group=group)
    task_id = await sim.action(uuid, "delete", task_state="deleting")
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.deleted) == ("deleted", None, True)
    assert inst.deleted_at is not None and inst.terminated_at is not None
    assert await sim.usage(uuid) == {}
    assert sim.guests["host1"] == set()
    assert (await sim.task(task_id)).state == "done"
    async with sim.db.read() as conn:
        assert (await conn.execute(select(t.server_group_member))).all() == []
    assert ("delete", "compute_terminate_instance", "Success") in await sim.events(uuid)


async def test_delete_of_never_scheduled_instance_finishes_at_once(sim):
    uuid, _ = await sim.create()                   # no hosts: ERROR, never scheduled
    await sim.action(uuid, "delete", task_state="deleting")
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.deleted) == ("deleted", True)
    assert sim.log == []


async def test_local_delete_when_the_host_is_down(sim):
    await sim.add_host("host1")
    uuid, _ = await sim.create()
    await sim.set_service("host1", last_seen_at=utcnow() - timedelta(hours=1))
    await sim.action(uuid, "delete", task_state="deleting")
    assert (await sim.instance(uuid)).deleted
    assert await sim.usage(uuid) == {}
    assert [op for _, op, _ in sim.log] == ["spawn"]      # no destroy sent


async def test_delete_takes_over_a_build_in_progress(sim):
    await sim.add_host("host1")
    uuid, build = await sim.create(run=False)
    await sim.conductor.cast(build)                 # spawn is out, not answered
    await sim.action(uuid, "delete", task_state="deleting", run=False)
    async with sim.db.read() as conn:
        delete_task = (await conn.execute(select(t.task.c.id).where(
            t.task.c.kind == "delete"))).scalar()
    await sim.run(delete_task)
    assert (await sim.task(build)).state == "cancelled"
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.deleted) == ("deleted", True)
    assert [op for _, op, _ in sim.log] == ["spawn", "destroy"]
    assert sim.guests["host1"] == set()
    assert await sim.usage(uuid) == {}


# -- actions -----------------------------------------------------------------------------

async def test_power_actions(sim):
    await sim.add_host("host1")
    uuid, _ = await sim.create()
    steps = [("stop", "powering-off", "stopped", 4), ("start", "powering-on", "active", 1),
             ("pause", "pausing", "paused", 3), ("unpause", "unpausing", "active", 1),
             ("suspend", "suspending", "suspended", 7), ("resume", "resuming", "active", 1)]
    for kind, task_state, vm_state, power in steps:
        task_id = await sim.action(uuid, kind, task_state=task_state)
        inst = await sim.instance(uuid)
        assert (kind, inst.vm_state, inst.task_state, inst.power_state) == \
            (kind, vm_state, None, power)
        assert (await sim.task(task_id)).state == "done"
    await sim.action(uuid, "reboot", task_state="rebooting_hard", payload={"hard": True})
    assert sim.args[-1] == {"uuid": uuid, "hard": True}
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.power_state) == ("active", None, 1)
    assert [op for _, op, _ in sim.log] == ["spawn", "power_off", "power_on", "pause",
                                             "unpause", "suspend", "resume", "reboot"]
    assert await sim.usage(uuid) == {"host1": TINY_RES}
    assert ("stop", "compute_stop_instance", "Success") in await sim.events(uuid)


async def test_failed_actions_follow_nova(sim):
    await sim.add_host("host1")
    uuid, _ = await sim.create()
    sim.fail["host1"] = {"power_off": {"error": "stuck"},
                         "reboot": {"error": "kaput", "power_state": 4}}
    await sim.action(uuid, "stop", task_state="powering-off")
    inst = await sim.instance(uuid)        # reverts_task_state: still ACTIVE
    assert (inst.vm_state, inst.task_state) == ("active", None)
    assert (await sim.faults(uuid))[-1].message == "stuck"
    await sim.action(uuid, "reboot", task_state="rebooting", payload={"hard": False})
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state) == ("error", None)
    assert (await sim.faults(uuid))[-1].message == "kaput"
    assert (await sim.actions(uuid))[-1].message == "Error"
    assert ("reboot", "compute_reboot_instance", "Error") in await sim.events(uuid)


async def test_rebuild_respawns_with_the_new_image(sim):
    await sim.add_host("host1")
    uuid, _ = await sim.create()
    await sim.action(uuid, "stop", task_state="powering-off")
    await sim.action(uuid, "rebuild", task_state="rebuilding",
                     payload={"image_ref": "img-2"}, image_ref="img-2")
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.image_ref) == ("stopped", None, "img-2")
    rebuild = [a for (_, op, _), a in zip(sim.log, sim.args, strict=True) if op == "rebuild"]
    assert rebuild[0]["spec"]["image"]["id"] == "img-2"
    assert [op for _, op, _ in sim.log][-2:] == ["rebuild", "power_off"]


# -- resize -------------------------------------------------------------------------------

async def resize_to_other_host(sim):
    await sim.add_host("host1")
    await sim.add_host("host2", memory_mb=8192)       # the RAM weigher prefers it
    uuid, _ = await sim.create(zone="nova:host1")
    assert (await sim.instance(uuid)).host == "host1"
    await sim.action(uuid, "resize", task_state="resize_prep", payload={"flavor": SMALL})
    mig = await migration_of(sim, uuid)
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.host) == ("resized", None, "host2")
    assert '"m1.small"' in inst.flavor and '"m1.tiny"' in inst.old_flavor
    assert (mig.status, mig.source_compute, mig.dest_compute) == ("finished", "host1", "host2")
    assert await sim.usage(uuid) == {"host2": SMALL_RES}
    assert await sim.usage(mig.id) == {"host1": TINY_RES}
    assert uuid in sim.guests["host1"] and uuid in sim.guests["host2"]
    return uuid, mig


async def test_resize_to_another_host_then_confirm(sim):
    uuid, mig = await resize_to_other_host(sim)
    await sim.action(uuid, "confirm_resize", task_state=None, action="confirmResize")
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.host, inst.old_flavor) == \
        ("active", None, "host2", None)
    assert (await migration_of(sim, uuid)).status == "confirmed"
    assert await sim.usage(mig.id) == {}
    assert await sim.usage(uuid) == {"host2": SMALL_RES}
    assert sim.guests == {"host1": set(), "host2": {uuid}}


async def test_resize_to_another_host_then_revert(sim):
    uuid, mig = await resize_to_other_host(sim)
    await sim.action(uuid, "revert_resize", task_state="resize_reverting",
                     action="revertResize")
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.host, inst.power_state) == \
        ("active", None, "host1", 1)
    assert '"m1.tiny"' in inst.flavor and inst.new_flavor is None
    assert (await migration_of(sim, uuid)).status == "reverted"
    assert await sim.usage(mig.id) == {}
    assert await sim.usage(uuid) == {"host1": TINY_RES}
    assert sim.guests == {"host1": {uuid}, "host2": set()}
    assert sim.log[-1][:2] == ("host1", "power_on")


async def test_resize_on_a_single_host(sim):
    await sim.add_host("host1")
    uuid, _ = await sim.create()
    await sim.action(uuid, "resize", task_state="resize_prep", payload={"flavor": SMALL})
    mig = await migration_of(sim, uuid)
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.host) == ("resized", "host1")
    assert sim.log[-1][:2] == ("host1", "resize")
    assert sim.args[-1]["spec"]["vcpus"] == 2
    assert await sim.usage(uuid) == {"host1": SMALL_RES}
    assert await sim.usage(mig.id) == {"host1": TINY_RES}
    await sim.action(uuid, "revert_resize", task_state="resize_reverting")
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.host) == ("active", "host1")
    assert sim.args[-1]["spec"]["vcpus"] == 1
    assert await sim.usage(uuid) == {"host1": TINY_RES}
    assert await sim.usage(mig.id) == {}
    # Once more, confirmed this time.
    await sim.action(uuid, "resize", task_state="resize_prep", payload={"flavor": SMALL})
    await sim.action(uuid, "confirm_resize", task_state=None)
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.host) == ("active", "host1")
    assert await sim.usage(uuid) == {"host1": SMALL_RES}
    assert await sim.usage((await migration_of(sim, uuid)).id) == {}


async def test_resize_without_a_host_keeps_the_instance(sim):
    await sim.add_host("host1", vcpus=2)
    uuid, _ = await sim.create()
    big = dict(SMALL, id="9", name="huge", vcpus=8)
    await sim.action(uuid, "resize", task_state="resize_prep", payload={"flavor": big})
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state, inst.host) == ("active", None, "host1")
    assert (await sim.faults(uuid))[-1].message.startswith("No valid host was found.")
    mig = await migration_of(sim, uuid)
    assert mig.status == "error"
    assert await sim.usage(uuid) == {"host1": TINY_RES}
    assert await sim.usage(mig.id) == {}


async def test_delete_during_verify_resize_frees_both_claims(sim):
    uuid, mig = await resize_to_other_host(sim)
    await sim.action(uuid, "delete", task_state="deleting")
    assert (await sim.instance(uuid)).deleted
    assert await sim.usage(uuid) == {} and await sim.usage(mig.id) == {}
    assert sim.guests == {"host1": set(), "host2": set()}


# -- recovery -----------------------------------------------------------------------------

async def restart(sim) -> Sim:
    """Stop the cloud's actors and start a new Cloud on the same database."""
    await sim.cloud.supervisor.stop(5)
    cloud = Cloud(sim.cloud.config)
    await cloud.start()
    await cloud.supervisor.quiesce()
    new = Sim(cloud)
    new.hosts, new.guests, new.fail = sim.hosts, sim.guests, sim.fail
    return new


async def test_recover_finishes_running_and_waiting_tasks(sim):
    await sim.add_host("host1")
    await sim.add_host("host2")
    # A build whose step was running when the controller died (its lease not
    # even expired yet: the process that held it is gone).
    a, task_a = await sim.create("a", run=False)
    async with sim.db.write() as conn:
        await conn.execute(update(t.task).where(t.task.c.id == task_a).values(
            state="running", lease_until=utcnow() + timedelta(seconds=600)))
    # A build waiting on spawn whose result was stored but whose wake was lost.
    b, task_b = await sim.create("b", run=False)
    await sim.conductor.cast(task_b)
    await sim.drain(wake=False)
    assert (await sim.task(task_b)).state == "waiting"
    new = await restart(sim)
    try:
        await new.drain()
        for uuid, task_id in ((a, task_a), (b, task_b)):
            assert (await new.instance(uuid)).vm_state == "active"
            assert (await new.task(task_id)).state == "done"
        assert await new.usage(a) != {} and await new.usage(b) != {}
    finally:
        await new.cloud.stop(5)


async def test_periodic_sweep_picks_up_open_work(sim):
    await sim.add_host("host1")
    uuid, task_id = await sim.create(run=False)          # written, never woken
    assert await sim.conductor.open_work() == [task_id]
    lease = utcnow() + timedelta(seconds=600)
    async with sim.db.write() as conn:                    # a step in progress: not taken
        await conn.execute(update(t.task).where(t.task.c.id == task_id).values(
            state="running", lease_until=lease))
    assert await sim.conductor.open_work() == []
    await sim.conductor.cast(task_id)
    assert (await sim.task(task_id)).lease_until == lease
    async with sim.db.write() as conn:                    # its lease expired: taken
        await conn.execute(update(t.task).where(t.task.c.id == task_id).values(
            lease_until=utcnow() - timedelta(seconds=1)))
    assert await sim.conductor.open_work() == [task_id]
    await sim.conductor.periodic()
    await sim.cloud.supervisor.quiesce()
    await sim.drain()
    assert (await sim.instance(uuid)).vm_state == "active"
    assert await sim.conductor.open_work() == []


async def test_commands_out_too_long_are_nudged_not_lost(make_api, caplog):
    api = await make_api({"runtime": {"sync_cast": True},
                          "compute": {"command_timeout": 0.01}})
    await api.cloud.supervisor.quiesce()
    sim = Sim(api.cloud)
    await sim.add_host("host1")
    nudged: list[str] = []
    sim.cloud.compute.hub.notify = nudged.append
    uuid, task_id = await sim.create(run=False)
    await sim.conductor.cast(task_id)
    assert nudged == ["host1"]
    async with sim.db.write() as conn:       # the spawn went out a while ago
        await conn.execute(update(t.agent_command).values(
            created_at=utcnow() - timedelta(seconds=5)))
    await sim.conductor.periodic()
    assert nudged == ["host1", "host1"]
    assert "longer than command_timeout" in caplog.text
    assert (await sim.task(task_id)).state == "waiting"
    await sim.drain()                         # the agent answers after all
    assert (await sim.instance(uuid)).vm_state == "active"


async def test_a_crashing_step_is_retried_with_its_results(sim, monkeypatch):
    from cloudd.services.compute import build_flow
    await sim.add_host("host1")
    real = build_flow.STEPS[("build", "spawned")]
    crashes = []

    async def flaky(ctx):
        if len(crashes) < 2:
            crashes.append(ctx.task.id)
            raise RuntimeError("database hiccup")
        await real(ctx)

    monkeypatch.setitem(build_flow.STEPS, ("build", "spawned"), flaky)
    uuid, task_id = await sim.create()
    assert (await sim.task(task_id)).state == "running"      # left for the sweep
    await sim.conductor.cast(task_id)                        # the sweep's wake
    await sim.conductor.cast(task_id)
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.power_state) == ("active", 1)
    assert len(crashes) == 2


async def test_a_step_that_keeps_crashing_fails_the_task(sim, monkeypatch):
    from cloudd.services.compute import build_flow

    async def broken(ctx):
        raise RuntimeError("always")

    await sim.add_host("host1")
    monkeypatch.setitem(build_flow.STEPS, ("build", "spawned"), broken)
    uuid, task_id = await sim.create()
    for _ in range(2):
        await sim.conductor.cast(task_id)
    assert (await sim.task(task_id)).state == "failed"
    inst = await sim.instance(uuid)
    assert (inst.vm_state, inst.task_state) == ("error", None)
    assert "RuntimeError: always" in (await sim.faults(uuid))[-1].message


# -- concurrency ---------------------------------------------------------------------------

async def test_concurrent_builds_are_batched_without_overcommit(make_api):
    """The real conductor (tasks run concurrently, the scheduler decides queued
    builds on one snapshot and claims them together): 14 builds racing for 12
    slots end with 12 ACTIVE, each holding exactly one claim, no host over
    its capacity, and 2 in ERROR with Nova's no-valid-host fault."""
    import asyncio

    api = await make_api()
    await api.cloud.supervisor.quiesce()
    sim = Sim(api.cloud)
    for name in ("host1", "host2", "host3"):
        await sim.add_host(name, vcpus=4, memory_mb=8192)
    created = [await sim.create(f"vm{i}", run=False) for i in range(14)]
    for _, task_id in created:
        sim.conductor.cast(task_id)
    for _ in range(400):
        await sim.drain()
        finals = [(await sim.task(task_id)).state in ("done", "failed")
                  for _, task_id in created]
        if all(finals):
            break
        await asyncio.sleep(0.05)
    states = {uuid: (await sim.instance(uuid)).vm_state for uuid, _ in created}
    active = [u for u, s in states.items() if s == "active"]
    assert len(active) == 12 and list(states.values()).count("error") == 2
    per_host: dict[str, int] = {}
    for uuid in active:
        usage = await sim.usage(uuid)
        assert list(usage.values()) == [TINY_RES]
        host = next(iter(usage))
        assert (await sim.instance(uuid)).host == host
        per_host[host] = per_host.get(host, 0) + 1
    assert per_host == {"host1": 4, "host2": 4, "host3": 4}
    for uuid in set(states) - set(active):
        assert await sim.usage(uuid) == {}
        assert (await sim.faults(uuid))[-1].message.startswith("No valid host was found.")
    assert sorted(len(g) for g in sim.guests.values()) == [4, 4, 4]
