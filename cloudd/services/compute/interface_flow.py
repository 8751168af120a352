"""Interface attach and detach on the instance's host (Nova's compute
manager attach_interface / detach_interface).

The API writes the port first (``network.allocate_port_for_instance``,
bound to the instance's host, status DOWN) with the task and the instance
action in one transaction; these steps then hot-plug it:

  attach_interface  {"port_id", "vif"}: ``start`` enqueues the agent's
      ``attach_interface {"uuid", "vif"}`` -> ``finish``: the port is ACTIVE;
      on failure it is given back (a port made for the attach is deleted, a
      given one unbound and kept), a fault "Failed to attach network adapter
      device to UUID" and a failed ``compute_attach_interface`` event are
      recorded, and the instance keeps its state (Nova does not put it in
      ERROR).
  detach_interface  {"port_id", "vif"}: ``start`` enqueues ``detach_interface
      {"uuid", "port_id", "vif"}`` -> ``finish``: the port is given back as
      above; on failure it stays attached, with a fault "Failed to detach
      network adapter device from UUID".

Neither sets a task_state (Nova does not); the open task keeps other actions
out meanwhile.
"""

from __future__ import annotations

import json

from cloudd.services.compute import action_records as rec
from cloudd.services.compute.flow_common import fail, loads, succeed

EV_ATTACH = "compute_attach_interface"
EV_DETACH = "compute_detach_interface"


async def _fresh_vif(ctx, conn, port_id: str, fallback: dict) -> dict:
    network = ctx.compute.network
    if network is None:
        return fallback
    vifs = (await network.vifs_for_instances(conn, [ctx.instance_uuid])).get(
        ctx.instance_uuid) or []
    return next((v for v in vifs if v.get("port_id") == port_id), fallback)


async def _give_back(ctx, conn, port_id: str) -> None:
    network = ctx.compute.network
    if network is not None:
        await network.deallocate_port_for_instance(conn, ctx.instance_uuid, port_id)
    await forget_tag(ctx, conn, port_id)


async def forget_tag(ctx, conn, port_id: str) -> None:
    inst = await ctx.instance(conn)
    spec = loads(inst.request_spec) if inst is not None else {}
    tags = spec.get("port_tags") or {}
    if port_id in tags:
        tags.pop(port_id)
        spec["port_tags"] = tags
        await ctx.update_instance(conn, request_spec=json.dumps(spec))


async def _start(ctx, event: str, op: str, *, give_back: bool, **args) -> None:
    """The command ``op`` to the instance's host with the port's vif as it is
    now; no host: a fault (the port given back when ``give_back``)."""
    port_id = ctx.payload["port_id"]
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        if inst is None or inst.deleted:
            await ctx.finish(conn, ok=False)
            return
        if not inst.host:
            if give_back:
                await _give_back(ctx, conn, port_id)
            await fail(ctx, conn, f"Instance {inst.uuid} is not on any host.",
                       event=event, vm_state=None)
            return
        vif = await _fresh_vif(ctx, conn, port_id, ctx.payload.get("vif") or {})
        await rec.event_start(conn, ctx.action_id, event, host=inst.host)
        ctx.payload["_host"] = inst.host
        await ctx.enqueue(conn, inst.host, op, {"uuid": inst.uuid, **args, "vif": vif})
        await ctx.wait(conn, "finish")


async def attach_start(ctx) -> None:
    await _start(ctx, EV_ATTACH, "attach_interface", give_back=True)


async def attach_finish(ctx) -> None:
    port_id = ctx.payload["port_id"]
    host = ctx.payload.get("_host")
    result = ctx.result("attach_interface") or {"ok": False, "error": "no result"}
    async with ctx.txn() as conn:
        if result.get("ok"):
            network = ctx.compute.network
            if network is not None:
                await network.port_attached(conn, ctx.instance_uuid, port_id)
            await succeed(ctx, conn, event=EV_ATTACH, at_host=host)
            return
        await _give_back(ctx, conn, port_id)
        await fail(ctx, conn, f"Failed to attach network adapter device to "
                              f"{ctx.instance_uuid}", event=EV_ATTACH, at_host=host,
                   details=rec.error_of(result), vm_state=None)


async def detach_start(ctx) -> None:
    await _start(ctx, EV_DETACH, "detach_interface", give_back=False,
                 port_id=ctx.payload["port_id"])


async def detach_finish(ctx) -> None:
    port_id = ctx.payload["port_id"]
    host = ctx.payload.get("_host")
    result = ctx.result("detach_interface") or {"ok": False, "error": "no result"}
    async with ctx.txn() as conn:
        if result.get("ok"):
            await _give_back(ctx, conn, port_id)
            await succeed(ctx, conn, event=EV_DETACH, at_host=host)
            return
        await fail(ctx, conn, f"Failed to detach network adapter device from "
                              f"{ctx.instance_uuid}", event=EV_DETACH, at_host=host,
                   details=rec.error_of(result), vm_state=None)


STEPS = {
    ("attach_interface", "start"): attach_start,
    ("attach_interface", "finish"): attach_finish,
    ("detach_interface", "start"): detach_start,
    ("detach_interface", "finish"): detach_finish,
}
