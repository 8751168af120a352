"""Server actions on the instance's host: reboot, stop, start, pause,
unpause, suspend, resume (one agent command each) and rebuild.

Each is ``start`` (enqueue the command on instance.host) -> ``finish``.
Success sets Nova's vm_state and power state; failure records a fault and
leaves the instance as Nova's compute manager does: reboot -> ERROR unless
the guest still runs; stop/start/pause/unpause/suspend/resume ->
``reverts_task_state`` (task_state None, vm_state unchanged); rebuild ->
ERROR. Payloads: see conductor.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudd.services.compute import action_records as rec
from cloudd.services.compute import states
from cloudd.services.compute.flow_common import (
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    fail,
    loads,
    power_of,
    spawn_spec,
    succeed,
)
from cloudd.services.compute.tasks import utcnow

DEFAULT_SHUTDOWN_TIMEOUT = 60       # Nova's [DEFAULT] shutdown_timeout


@dataclass(frozen=True)
class Simple:
    op: str
    event: str
    vm_state: str
    power: int
    error_on_failure: bool = False


SIMPLE = {
    "reboot": Simple("reboot", "compute_reboot_instance", states.ACTIVE, RUNNING, True),
    "stop": Simple("power_off", "compute_stop_instance", states.STOPPED, SHUTDOWN),
    "start": Simple("power_on", "compute_start_instance", states.ACTIVE, RUNNING),
    "pause": Simple("pause", "compute_pause_instance", states.PAUSED, PAUSED),
    "unpause": Simple("unpause", "compute_unpause_instance", states.ACTIVE, RUNNING),
    "suspend": Simple("suspend", "compute_suspend_instance", states.SUSPENDED, SUSPENDED),
    "resume": Simple("resume", "compute_resume_instance", states.ACTIVE, RUNNING),
}


def _no_host_message(uuid: str) -> str:
    return f"Instance {uuid} is not on any host."


async def simple_start(ctx) -> None:
    action = SIMPLE[ctx.task.kind]
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        if inst is None or inst.deleted:
            await ctx.finish(conn, ok=False)
            return
        if not inst.host:
            await fail(ctx, conn, _no_host_message(inst.uuid), event=action.event,
                       vm_state=None)
            return
        args: dict = {"uuid": inst.uuid}
        if action.op == "reboot":
            args["hard"] = bool(ctx.payload.get("hard"))
        elif action.op == "power_off":
            args["timeout"] = int(ctx.payload.get("timeout") or DEFAULT_SHUTDOWN_TIMEOUT)
        await rec.event_start(conn, ctx.action_id, action.event, host=inst.host)
        await ctx.enqueue(conn, inst.host, action.op, args)
        await ctx.wait(conn, "finish")


async def simple_finish(ctx) -> None:
    action = SIMPLE[ctx.task.kind]
    found = ctx.results[0] if ctx.results else None
    host = found["host"] if found else None
    result = ctx.result(action.op) or {"ok": False, "error": "no result"}
    async with ctx.txn() as conn:
        if result.get("ok"):
            await succeed(ctx, conn, event=action.event, at_host=host,
                          vm_state=action.vm_state, power_state=power_of(result, action.power))
            return
        error = rec.error_of(result)
        power = power_of(result, -1)
        values = {"power_state": power} if power >= 0 else {}
        if action.error_on_failure and power != RUNNING:
            vm_state = states.ERROR
        else:
            vm_state = None
        await fail(ctx, conn, error, event=action.event, at_host=host, vm_state=vm_state,
                   **values)


EV_REBUILD = "compute_rebuild_instance"


async def rebuild_start(ctx) -> None:
    p = ctx.payload
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        if inst is None or inst.deleted:
            await ctx.finish(conn, ok=False)
            return
        if not inst.host:
            await fail(ctx, conn, _no_host_message(inst.uuid), event=EV_REBUILD)
            return
        values: dict = {"task_state": states.REBUILD_SPAWNING}
        if p.get("image_ref"):
            values["image_ref"] = p["image_ref"]
        if p.get("name"):
            values["display_name"] = p["name"]
        for key in ("user_data", "key_data"):
            if key in p:
                values[key] = p[key]
        await ctx.update_instance(conn, **values)
        inst = await ctx.instance(conn)
        image = p.get("image") if isinstance(p.get("image"), dict) else None
        if image is None and p.get("image_ref"):
            old = loads(inst.request_spec).get("image")
            image = {"id": p["image_ref"]}
            if isinstance(old, dict) and old.get("id") == p["image_ref"]:
                image = old
        spec = await spawn_spec(conn, inst, image=image, cloud=ctx.compute.cloud)
        if isinstance(p.get("metadata"), dict):
            spec["metadata"] = p["metadata"]
        p["_orig_vm_state"] = inst.vm_state
        await rec.event_start(conn, ctx.action_id, EV_REBUILD, host=inst.host)
        await ctx.enqueue(conn, inst.host, "rebuild", {"spec": spec})
        await ctx.wait(conn, "rebuilt")


async def rebuild_rebuilt(ctx) -> None:
    found = ctx.results[0] if ctx.results else None
    host = found["host"] if found else None
    result = (found or {}).get("result") or {"ok": False, "error": "no result"}
    async with ctx.txn() as conn:
        if not result.get("ok"):
            await fail(ctx, conn, rec.error_of(result), event=EV_REBUILD, at_host=host)
            return
        if ctx.payload.get("_orig_vm_state") == states.STOPPED:
            # Nova powers a rebuilt STOPPED instance off again.
            await ctx.update_instance(conn, launched_at=utcnow(),
                                      power_state=power_of(result, RUNNING))
            await ctx.enqueue(conn, host, "power_off",
                              {"uuid": ctx.instance_uuid, "timeout": DEFAULT_SHUTDOWN_TIMEOUT})
            await ctx.wait(conn, "stopped")
            return
        await succeed(ctx, conn, event=EV_REBUILD, at_host=host, vm_state=states.ACTIVE,
                      power_state=power_of(result, RUNNING), launched_at=utcnow())


async def rebuild_stopped(ctx) -> None:
    found = ctx.results[0] if ctx.results else None
    host = found["host"] if found else None
    result = (found or {}).get("result") or {"ok": False, "error": "no result"}
    async with ctx.txn() as conn:
        if not result.get("ok"):
            await fail(ctx, conn, rec.error_of(result), event=EV_REBUILD, at_host=host)
            return
        await succeed(ctx, conn, event=EV_REBUILD, at_host=host, vm_state=states.STOPPED,
                      power_state=power_of(result, SHUTDOWN))


STEPS: dict = {}
for _kind in SIMPLE:
    STEPS[(_kind, "start")] = simple_start
    STEPS[(_kind, "finish")] = simple_finish
STEPS[("rebuild", "start")] = rebuild_start
STEPS[("rebuild", "rebuilt")] = rebuild_rebuilt
STEPS[("rebuild", "stopped")] = rebuild_stopped
