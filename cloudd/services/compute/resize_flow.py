"""Resize, confirm and revert (docs/compute-design.md, "Resize").

resize  start:    a migration row (pre-migrating), instance old/new_flavor
                  -> schedule
        schedule: placement.move(instance -> migration) keeps the old claim
                  under the migration uuid; ``scheduler.select`` claims the
                  new flavor for the instance (same host allowed). Same host:
                  ``resize``; other host: the ports bound to the destination,
                  ``power_off`` on the source and ``spawn`` on the destination
                  -> migrated. No host: the old claim goes back, the instance
                  keeps its state (Nova's _cold_migrate), fault, migration
                  "error".
        migrated: (a STOPPED instance is powered off again on the
                  destination, same host or not -> finished) -> VERIFY_RESIZE: host/node/flavor are
                  the destination's, migration "finished".
confirm start:    ``destroy`` on the source when it is another host
                  -> confirmed: release the migration consumer, migration
                  "confirmed", ACTIVE (or STOPPED when powered off).
revert  start:    other host: ``destroy`` on the destination -> dest_gone:
                  move(migration -> instance), back to the source host (the
                  ports too) and old flavor, ``power_on`` there (unless it was
                  stopped) -> reverted. Same host: ``resize`` back to the old flavor
                  -> reverted (move(migration -> instance)). Migration
                  "reverted".
A failed command -> ERROR with a fault, migration "error"; the instance's
claim (and its ports) go back to where the instance is.
"""

from __future__ import annotations

import json

from cloudd.services.compute import action_records as rec
from cloudd.services.compute import states
from cloudd.services.compute.action_flows import DEFAULT_SHUTDOWN_TIMEOUT
from cloudd.services.compute.flow_common import (
    RUNNING,
    SHUTDOWN,
    create_migration,
    fail,
    latest_migration,
    loads,
    power_of,
    set_migration,
    spawn_spec,
    succeed,
)
from cloudd.services.compute.scheduler import NoValidHost

EV_MIGRATE = "conductor_migrate_server"
EV_RESIZE = "compute_resize_instance"
EV_FINISH = "compute_finish_resize"
EV_CONFIRM = "compute_confirm_resize"
EV_REVERT = "compute_revert_resize"
EV_FINISH_REVERT = "compute_finish_revert_resize"


def _first_failure(ctx) -> tuple[str | None, str] | None:
    failed = ctx.failed_results()
    if not failed:
        return None
    return failed[0]["host"], rec.error_of(failed[0]["result"])


def move_spec(inst) -> dict:
    """The request spec for a move: forced and requested destinations and
    tried hosts of the build do not apply (Nova's reset_forced_destinations)."""
    spec = loads(inst.request_spec)
    for key in ("force_host", "force_node", "requested_host",
                "requested_hypervisor_hostname", "tried_hosts"):
        spec.pop(key, None)
    zone = spec.get("availability_zone")
    if zone and ":" in zone:
        spec["availability_zone"] = zone.split(":")[0] or None
    return spec


async def bind_ports(ctx, conn, host: str) -> None:
    """The instance's ports follow it to ``host`` (and back on a revert)."""
    if ctx.compute.network is not None:
        await ctx.compute.network.bind_instance(conn, ctx.instance_uuid, host)


async def resize_start(ctx) -> None:
    new_flavor = ctx.payload.get("flavor") or {}
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        if inst is None or inst.deleted:
            await ctx.finish(conn, ok=False)
            return
        if not inst.host or not new_flavor:
            await fail(ctx, conn, f"Cannot resize instance {inst.uuid}.", event=EV_MIGRATE,
                       vm_state=None)
            return
        old = loads(inst.flavor)
        mig = await create_migration(conn, inst, migration_type="resize", old_flavor=old,
                                     new_flavor=new_flavor)
        await ctx.update_instance(conn, old_flavor=inst.flavor,
                                  new_flavor=json.dumps(new_flavor))
        ctx.payload.update(_migration=mig, _orig_vm_state=inst.vm_state,
                           _source_host=inst.host, _source_node=inst.node)
        await rec.event_start(conn, ctx.action_id, EV_MIGRATE)
        await ctx.goto(conn, "schedule")


async def resize_schedule(ctx) -> None:
    placement = ctx.compute.placement
    p = ctx.payload
    mig, uuid = p["_migration"], ctx.instance_uuid
    async with ctx.db.read() as conn:
        inst = await ctx.instance(conn)
    if (await placement.get_allocations(mig))["allocations"]:
        await placement.release(uuid)          # a claim of an unfinished earlier run
    else:
        await placement.move(uuid, mig)
    new_flavor = p["flavor"]
    try:
        sel = await ctx.compute.scheduler.select(inst, flavor=new_flavor,
                                                 spec=move_spec(inst))
    except NoValidHost as exc:
        await placement.move(mig, uuid, target_consumer_type="INSTANCE")
        async with ctx.txn() as conn:
            await set_migration(conn, mig, status="error")
            await fail(ctx, conn, exc.message, event=EV_MIGRATE, vm_state=None,
                       details=f"nova.exception.NoValidHost: {exc.message}",
                       new_flavor=None, old_flavor=None)
        return
    try:
        async with ctx.txn() as conn:
            source = p["_source_host"]
            await set_migration(conn, mig, status="migrating", dest_compute=sel.host,
                                dest_node=sel.node)
            await ctx.update_instance(conn, task_state=states.RESIZE_MIGRATING)
            await rec.event_finish(conn, ctx.action_id, EV_MIGRATE)
            await rec.event_start(conn, ctx.action_id, EV_RESIZE, host=source)
            if sel.host != source:
                await bind_ports(ctx, conn, sel.host)
            spec = await spawn_spec(conn, inst, flavor=new_flavor, cloud=ctx.compute.cloud)
            if sel.host == source:
                await ctx.enqueue(conn, source, "resize", {"uuid": uuid, "spec": spec})
            else:
                await ctx.enqueue(conn, source, "power_off",
                                  {"uuid": uuid, "timeout": DEFAULT_SHUTDOWN_TIMEOUT})
                await ctx.enqueue(conn, sel.host, "spawn", {"spec": spec})
            p.update(_dest_host=sel.host, _dest_node=sel.node)
            await ctx.wait(conn, "migrated")
    except BaseException:
        await placement.move(mig, uuid, target_consumer_type="INSTANCE")
        raise


async def _resize_failed(ctx, host: str | None, error: str, event: str) -> None:
    placement = ctx.compute.placement
    p = ctx.payload
    mig, uuid = p["_migration"], ctx.instance_uuid
    await placement.move(mig, uuid, target_consumer_type="INSTANCE")
    async with ctx.txn() as conn:
        dest = p.get("_dest_host")
        spawned = ctx.result("spawn", dest) if dest else None
        if dest and dest != p["_source_host"] and spawned and spawned.get("ok"):
            await ctx.enqueue(conn, dest, "destroy", {"uuid": uuid})   # not waited on
        if dest and dest != p["_source_host"]:
            await bind_ports(ctx, conn, p["_source_host"])
        await set_migration(conn, mig, status="error")
        await fail(ctx, conn, error, event=event, at_host=host, host=p["_source_host"],
                   node=p["_source_node"])


async def resize_migrated(ctx) -> None:
    failure = _first_failure(ctx)
    if failure:
        await _resize_failed(ctx, failure[0], failure[1], EV_RESIZE)
        return
    p = ctx.payload
    dest = p["_dest_host"]
    moved = dest != p["_source_host"]
    if p.get("_orig_vm_state") == states.STOPPED:
        # Nova powers a resized STOPPED instance on only to leave it off again:
        # on the same host too (the driver's resize starts the guest).
        async with ctx.txn() as conn:
            await set_migration(conn, p["_migration"], status="post-migrating")
            await ctx.enqueue(conn, dest, "power_off",
                              {"uuid": ctx.instance_uuid, "timeout": DEFAULT_SHUTDOWN_TIMEOUT})
            await ctx.wait(conn, "finished")
        return
    result = ctx.result("spawn", dest) if moved else ctx.result("resize")
    default = SHUTDOWN if p.get("_orig_vm_state") == states.STOPPED else RUNNING
    await _resize_done(ctx, power_of(result, default))


async def resize_finished(ctx) -> None:
    failure = _first_failure(ctx)
    if failure:
        await _resize_failed(ctx, failure[0], failure[1], EV_FINISH)
        return
    await _resize_done(ctx, power_of(ctx.result("power_off"), SHUTDOWN))


async def _resize_done(ctx, power: int) -> None:
    p = ctx.payload
    async with ctx.txn() as conn:
        await set_migration(conn, p["_migration"], status="finished")
        await rec.event_finish(conn, ctx.action_id, EV_RESIZE, host=p["_source_host"])
        await rec.event_start(conn, ctx.action_id, EV_FINISH, host=p["_dest_host"])
        await succeed(ctx, conn, event=EV_FINISH, at_host=p["_dest_host"],
                      vm_state=states.RESIZED, power_state=power, host=p["_dest_host"],
                      node=p["_dest_node"], flavor=json.dumps(p["flavor"]))


# -- confirm ------------------------------------------------------------------------

async def confirm_start(ctx) -> None:
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        mig = await latest_migration(conn, ctx.instance_uuid, ("finished", "confirming"))
        if inst is None or inst.deleted or mig is None:
            if inst is not None and not inst.deleted:
                await fail(ctx, conn, f"Migration for instance {ctx.instance_uuid} "
                           "could not be found.", code=404, vm_state=None)
            else:
                await ctx.finish(conn, ok=False)
            return
        ctx.payload["_migration"] = mig.id
        await set_migration(conn, mig.id, status="confirming")
        await rec.event_start(conn, ctx.action_id, EV_CONFIRM, host=mig.source_compute)
        if mig.source_compute and mig.source_compute != mig.dest_compute:
            await ctx.enqueue(conn, mig.source_compute, "destroy",
                              {"uuid": ctx.instance_uuid})
            await ctx.wait(conn, "confirmed")
        else:
            await ctx.goto(conn, "confirmed")


async def confirm_done(ctx) -> None:
    mig = ctx.payload["_migration"]
    failure = _first_failure(ctx)
    if failure:
        async with ctx.txn() as conn:
            await set_migration(conn, mig, status="error")
            await fail(ctx, conn, failure[1], event=EV_CONFIRM, at_host=failure[0])
        return
    await ctx.compute.placement.release(mig)
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        vm_state = states.STOPPED if inst.power_state == SHUTDOWN else states.ACTIVE
        await set_migration(conn, mig, status="confirmed")
        await succeed(ctx, conn, event=EV_CONFIRM, at_host=inst.host, vm_state=vm_state,
                      old_flavor=None, new_flavor=None)


# -- revert -------------------------------------------------------------------------

async def revert_start(ctx) -> None:
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        mig = await latest_migration(conn, ctx.instance_uuid, ("finished", "reverting"))
        if inst is None or inst.deleted or mig is None:
            if inst is not None and not inst.deleted:
                await fail(ctx, conn, f"Migration for instance {ctx.instance_uuid} "
                           "could not be found.", code=404, vm_state=None)
            else:
                await ctx.finish(conn, ok=False)
            return
        p = ctx.payload
        p.update(_migration=mig.id, _was_stopped=inst.power_state == SHUTDOWN,
                 _source_host=mig.source_compute, _source_node=mig.source_node,
                 _dest_host=mig.dest_compute)
        await set_migration(conn, mig.id, status="reverting")
        await ctx.update_instance(conn, task_state=states.RESIZE_REVERTING)
        await rec.event_start(conn, ctx.action_id, EV_REVERT, host=mig.dest_compute)
        if mig.source_compute != mig.dest_compute:
            await ctx.enqueue(conn, mig.dest_compute, "destroy", {"uuid": inst.uuid})
            await ctx.wait(conn, "dest_gone")
        else:
            old = loads(inst.old_flavor) or loads(inst.flavor)
            spec = await spawn_spec(conn, inst, flavor=old, cloud=ctx.compute.cloud)
            await ctx.enqueue(conn, mig.source_compute, "resize",
                              {"uuid": inst.uuid, "spec": spec})
            await ctx.wait(conn, "resized_back")


async def _revert_failed(ctx, host: str | None, error: str) -> None:
    async with ctx.txn() as conn:
        await set_migration(conn, ctx.payload["_migration"], status="error")
        await fail(ctx, conn, error, event=EV_REVERT, at_host=host)


async def revert_dest_gone(ctx) -> None:
    failure = _first_failure(ctx)
    if failure:
        await _revert_failed(ctx, *failure)
        return
    p = ctx.payload
    await ctx.compute.placement.move(p["_migration"], ctx.instance_uuid,
                                     target_consumer_type="INSTANCE")
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        values = {"host": p["_source_host"], "node": p["_source_node"]}
        if inst.old_flavor:
            values["flavor"] = inst.old_flavor
        await ctx.update_instance(conn, **values)
        await bind_ports(ctx, conn, p["_source_host"])
        await rec.event_finish(conn, ctx.action_id, EV_REVERT, host=p["_dest_host"])
        await rec.event_start(conn, ctx.action_id, EV_FINISH_REVERT, host=p["_source_host"])
        if p.get("_was_stopped"):
            await ctx.goto(conn, "reverted")
        else:
            await ctx.enqueue(conn, p["_source_host"], "power_on", {"uuid": inst.uuid})
            await ctx.wait(conn, "reverted")


async def revert_resized_back(ctx) -> None:
    """Same host: the guest is back at the old size; a STOPPED one goes off again."""
    failure = _first_failure(ctx)
    if failure:
        await _revert_failed(ctx, *failure)
        return
    p = ctx.payload
    if not p.get("_was_stopped"):
        await revert_done(ctx)
        return
    async with ctx.txn() as conn:
        await ctx.enqueue(conn, p["_source_host"], "power_off",
                          {"uuid": ctx.instance_uuid, "timeout": DEFAULT_SHUTDOWN_TIMEOUT})
        await ctx.wait(conn, "reverted")


async def revert_done(ctx) -> None:
    failure = _first_failure(ctx)
    if failure:
        await _revert_failed(ctx, *failure)
        return
    p = ctx.payload
    # Same host: the old claim comes back now; other host: done in dest_gone.
    await ctx.compute.placement.move(p["_migration"], ctx.instance_uuid,
                                     target_consumer_type="INSTANCE")
    result = ctx.results[0]["result"] if ctx.results else None
    stopped = bool(p.get("_was_stopped"))
    power = power_of(result, SHUTDOWN if stopped else RUNNING)
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        values = {"host": p["_source_host"], "node": p["_source_node"]}
        if inst.old_flavor:
            values["flavor"] = inst.old_flavor
        await set_migration(conn, p["_migration"], status="reverted")
        await rec.event_finish(conn, ctx.action_id, EV_REVERT, host=p["_dest_host"])
        await succeed(ctx, conn, event=EV_FINISH_REVERT, at_host=p["_source_host"],
                      vm_state=states.STOPPED if stopped else states.ACTIVE,
                      power_state=power, old_flavor=None, new_flavor=None, **values)


STEPS = {
    ("resize", "start"): resize_start,
    ("resize", "schedule"): resize_schedule,
    ("resize", "migrated"): resize_migrated,
    ("resize", "finished"): resize_finished,
    ("confirm_resize", "start"): confirm_start,
    ("confirm_resize", "confirmed"): confirm_done,
    ("revert_resize", "start"): revert_start,
    ("revert_resize", "dest_gone"): revert_dest_gone,
    ("revert_resize", "resized_back"): revert_resized_back,
    ("revert_resize", "reverted"): revert_done,
}
