"""Build and delete: the conductor steps that create and remove a guest.

build   start:   release leftovers of an unfinished try, ``scheduler.select``
                 (claims placement for the instance uuid), write host/node/
                 zone, task_state spawning, enqueue ``spawn`` -> spawned
        spawned: ok -> ACTIVE; retryable failure with attempts left ->
                 release the claim, remember the host in ``_tried``, back to
                 start; otherwise -> ERROR with a fault, no allocations.
delete  start:   no host (never scheduled) or the host's service down
                 (Nova's local delete: the agent's reconcile removes the
                 guest when it comes back) -> finish now; else ``destroy``
                 on every host that may hold the guest -> destroyed
        destroyed: release placement (instance and migration consumers),
                 mark deleted, leave server groups, free the ports and IPs
                 (``network.deallocate_for_instance``), finish the action.

The build's ``start`` step allocates the instance's ports bound to the chosen
host in the transaction that enqueues ``spawn`` (their vifs are the spec's
``network_info``, with ``config_drive`` when the instance has one); a
reschedule or a failed build frees them in the transaction that moves on; an
allocation error fails the build without a reschedule, as Nova's
BuildAbortException does.

Nova's messages: no candidates -> "No valid host was found. " (its reason is
empty), filtered out -> "No valid host was found. There are not enough
hosts available.", reschedules exhausted -> MaxRetriesExceeded.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, select

from cloudd.db import tables as t
from cloudd.services.compute import action_records as rec
from cloudd.services.compute import scheduler as _scheduler
from cloudd.services.compute import states
from cloudd.services.compute.flow_common import (
    NOSTATE,
    OPEN_MIGRATION,
    RUNNING,
    fail,
    loads,
    power_of,
    service_is_up,
    spawn_spec,
    succeed,
)
from cloudd.services.compute.scheduler import NoValidHost
from cloudd.services.compute.tasks import utcnow

EV_CONDUCTOR = "conductor_schedule_and_build_instances"
EV_BUILD = "compute__do_build_and_run_instance"
_SCHEDULER_FILE = _scheduler.__file__
EV_TERMINATE = "compute_terminate_instance"


def max_retries_message(uuid: str) -> str:
    return ("Exceeded maximum number of retries. Exhausted all hosts available for "
            f"retrying build failures for instance {uuid}.")


async def build_start(ctx) -> None:
    placement = ctx.compute.placement
    inst = ctx.inst
    if inst is None:
        async with ctx.db.read() as conn:
            inst = await ctx.instance(conn)
    if inst is None or inst.deleted or inst.vm_state != states.BUILDING:
        async with ctx.txn() as conn:
            await ctx.finish(conn, ok=False)
        return
    started = utcnow()
    if ctx.retried:
        # Whatever an interrupted earlier run of this step claimed is not ours now
        # (a reschedule released its claim before coming back here).
        await placement.release(inst.uuid)
    spec = loads(inst.request_spec)
    tried = list(ctx.payload.get("_tried") or [])
    if tried:
        spec["tried_hosts"] = sorted(set(spec.get("tried_hosts") or []) | set(tried))
    try:
        sel = await ctx.compute.scheduler.select(inst, spec=spec)
    except NoValidHost as exc:
        message = max_retries_message(inst.uuid) if tried else exc.message
        kind = "MaxRetriesExceeded" if tried else "NoValidHost"
        trace = (f"Traceback (most recent call last):\n  File \"{__file__}\", in "
                 f"build_start\n  File \"{_SCHEDULER_FILE}\", in select_destinations\n"
                 f"nova.exception.{kind}: {message}\n")
        async with ctx.txn() as conn:
            if not tried:
                # Nova records this one event when a build is buried for NoValidHost.
                await rec.event_finish(conn, ctx.action_id, EV_CONDUCTOR, ok=False,
                                       details=message, traceback=trace, started=started)
            await fail(ctx, conn, message, details=trace, host=None, node=None)
        return
    try:
        async with ctx.txn() as conn:
            values = {"host": sel.host, "node": sel.node, "task_state": states.SPAWNING}
            if not inst.availability_zone:
                if sel.zone:
                    values["availability_zone"] = sel.zone
                else:
                    from cloudd.services.compute.availability_zones import zone_of_host
                    values["availability_zone"] = await zone_of_host(conn, ctx.cfg, sel.host)
            await ctx.update_instance(conn, **values)
            # This transaction also moves the task on, so no earlier run of this
            # step left an event open (a reschedule finished its event).
            await rec.event_start(conn, ctx.action_id, EV_BUILD, host=sel.host, fresh=True)
            vifs = await _allocate(ctx, conn, inst, spec, sel.host,
                                   values.get("availability_zone") or inst.availability_zone)
            await _keep_port_tags(ctx, conn, inst, spec, vifs)
            await ctx.enqueue(conn, sel.host, "spawn", {"spec": await spawn_spec(
                conn, inst, cloud=ctx.compute.cloud, network_info=vifs)})
            ctx.payload["_host"] = sel.host
            await ctx.wait(conn, "spawned")
    except NetworkAllocationFailed as exc:
        # Nova's BuildAbortException from _build_resources: no reschedule.
        await placement.release(inst.uuid)
        message = f"Build of instance {inst.uuid} aborted: {NETWORK_FAILED}"
        async with ctx.txn() as conn:
            await rec.event_start(conn, ctx.action_id, EV_BUILD, host=sel.host, fresh=True)
            await fail(ctx, conn, message, event=EV_BUILD, at_host=sel.host,
                       details=exc.detail, host=None, node=None)
        return
    except BaseException:
        await placement.release(inst.uuid)
        raise


NETWORK_FAILED = "Failed to allocate the network(s), not rescheduling."


class NetworkAllocationFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


async def _allocate(ctx, conn, inst, spec: dict, host: str, zone: str | None) -> list | None:
    """The instance's ports, made (or bound) for ``host`` in the step's
    transaction; None when the cloud has no network service."""
    network = ctx.compute.network
    if network is None:
        return None
    requested = spec.get("networks")
    if requested is None:
        requested = "auto"          # before 2.37 no networks meant "get me one"
    try:
        return await network.allocate_for_instance(
            conn, instance_uuid=inst.uuid, project_id=inst.project_id, host=host,
            zone=zone or ctx.cfg.compute.default_availability_zone, requested=requested,
            security_groups=list(spec.get("security_groups") or ["default"]))
    except Exception as exc:
        from cloudd.web.errors import ApiError
        if not isinstance(exc, ApiError) and type(exc).__module__.startswith("sqlalchemy"):
            raise                   # a database fault: the step is retried
        detail = getattr(exc, "message", None) or str(exc)
        raise NetworkAllocationFailed(str(detail)) from exc


async def _keep_port_tags(ctx, conn, inst, spec: dict, vifs: list | None) -> None:
    """The boot request's ``networks[].tag`` (2.32, 2.42+), kept per port in
    the request_spec's ``port_tags`` as an attach keeps its tag (os-interface
    shows them from 2.70). The vifs come in the order the networks were asked."""
    requested = spec.get("networks")
    if not vifs or not isinstance(requested, list):
        return
    tags = {vif["port_id"]: req["tag"] for vif, req in zip(vifs, requested, strict=False)
            if isinstance(req, dict) and req.get("tag")}
    if tags:
        stored = loads(inst.request_spec)
        stored["port_tags"] = {**(stored.get("port_tags") or {}), **tags}
        await ctx.update_instance(conn, request_spec=json.dumps(stored))


async def _deallocate(ctx, conn) -> None:
    network = ctx.compute.network
    if network is not None:
        await network.deallocate_for_instance(conn, ctx.instance_uuid)


async def build_spawned(ctx) -> None:
    host = ctx.payload.get("_host")
    result = ctx.result("spawn") or {"ok": False, "error": "no result"}
    scheduler = ctx.compute.scheduler
    if result.get("ok"):
        scheduler.note_build_success(host)
        async with ctx.txn() as conn:
            await succeed(ctx, conn, event=EV_BUILD, at_host=host, vm_state=states.ACTIVE,
                          power_state=power_of(result, RUNNING), launched_at=utcnow())
        return
    scheduler.note_build_failure(host)
    error = rec.error_of(result)
    uuid = ctx.instance_uuid
    inst = ctx.inst
    if inst is None:
        async with ctx.db.read() as conn:
            inst = await ctx.instance(conn)
    spec = loads(inst.request_spec) if inst is not None else {}
    max_attempts = int(spec.get("max_attempts") or ctx.cfg.compute.max_attempts)
    await ctx.compute.placement.release(uuid)
    if result.get("retryable") and ctx.task.attempts + 1 < max_attempts:
        async with ctx.txn() as conn:
            message = f"Build of instance {uuid} was re-scheduled: {error}"
            await rec.add_fault(conn, uuid, message, details=message, host=host)
            await rec.event_finish(conn, ctx.action_id, EV_BUILD, ok=False, host=host,
                                   details=message)
            await ctx.update_instance(conn, host=None, node=None,
                                      task_state=states.SCHEDULING)
            await _deallocate(ctx, conn)        # the next host gets its own ports
            ctx.payload["_tried"] = sorted(set(ctx.payload.get("_tried") or []) | {host})
            await ctx.goto(conn, "start", attempts=ctx.task.attempts + 1)
        return
    if result.get("retryable"):
        message = max_retries_message(uuid)
    else:
        message = f"Build of instance {uuid} aborted: {error}"
    async with ctx.txn() as conn:
        await _deallocate(ctx, conn)            # Nova's _cleanup_allocated_networks
        await fail(ctx, conn, message, event=EV_BUILD, at_host=host, details=error,
                   host=None, node=None)


async def delete_start(ctx) -> None:
    async with ctx.db.read() as conn:
        inst = await ctx.instance(conn)
        if inst is None or inst.deleted:
            inst = None
        else:
            m = t.migration
            migs = (await conn.execute(select(m).where(
                m.c.instance_uuid == inst.uuid, m.c.status.in_(OPEN_MIGRATION)))).all()
            targets = {inst.host} if inst.host else set()
            for mig in migs:
                targets |= {h for h in (mig.source_compute, mig.dest_compute) if h}
            up = {h for h in targets if await service_is_up(conn, ctx.cfg, h)}
    if inst is None:
        async with ctx.txn() as conn:
            await rec.action_finish(conn, ctx.action_id, ok=True)
            await ctx.finish(conn, ok=True)
        return
    if not up or (inst.host and inst.host not in up):
        # Never scheduled, or Nova's local delete (the compute service is down).
        await _complete_delete(ctx, event=False)
        return
    async with ctx.txn() as conn:
        await rec.event_start(conn, ctx.action_id, EV_TERMINATE, host=inst.host)
        for host in sorted(up):
            await ctx.enqueue(conn, host, "destroy", {"uuid": inst.uuid})
        await ctx.wait(conn, "destroyed")


async def delete_destroyed(ctx) -> None:
    failed = ctx.failed_results()
    if failed:
        first = failed[0]
        error = rec.error_of(first["result"])
        async with ctx.txn() as conn:
            await fail(ctx, conn, error, event=EV_TERMINATE, at_host=first["host"])
        return
    await _complete_delete(ctx, event=True)


async def _complete_delete(ctx, *, event: bool) -> None:
    placement = ctx.compute.placement
    uuid = ctx.instance_uuid
    async with ctx.db.read() as conn:
        inst = await ctx.instance(conn)
        migs = [r.id for r in await conn.execute(
            select(t.migration.c.id).where(t.migration.c.instance_uuid == uuid))]
    await placement.release(uuid)
    for mig in migs:
        await placement.release(mig)
    now = utcnow()
    async with ctx.txn() as conn:
        await conn.execute(delete(t.server_group_member).where(
            t.server_group_member.c.instance_uuid == uuid))
        await _deallocate(ctx, conn)            # after the destroy: ports and IPs freed
        await succeed(ctx, conn, event=EV_TERMINATE if event else None,
                      at_host=inst.host if inst is not None else None,
                      vm_state=states.DELETED, power_state=NOSTATE, deleted=True,
                      deleted_at=now, terminated_at=now)


STEPS = {
    ("build", "start"): build_start,
    ("build", "spawned"): build_spawned,
    ("delete", "start"): delete_start,
    ("delete", "destroyed"): delete_destroyed,
}
