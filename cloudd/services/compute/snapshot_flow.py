"""The snapshot task (createImage): the host's agent uploads the root disk.

``start`` asks the instance's host for a ``snapshot`` (task_state
image_uploading); ``finish`` clears the task_state. The image becomes
active when the upload lands (agent_images.py); on failure the queued
image is deleted, as Nova's compute manager deletes a failed snapshot's
image, and the server keeps its vm_state (reverts_task_state).
Payload: {"image_id"}.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from cloudd.db import tables as t
from cloudd.services.compute import action_records as rec
from cloudd.services.compute import states
from cloudd.services.compute.flow_common import fail, succeed

EVENT = "compute_snapshot_instance"


async def start(ctx) -> None:
    async with ctx.txn() as conn:
        inst = await ctx.instance(conn)
        if inst is None or inst.deleted:
            await _drop_image(conn, ctx.payload.get("image_id"))
            await ctx.finish(conn, ok=False)
            return
        if not inst.host:
            await _drop_image(conn, ctx.payload.get("image_id"))
            await fail(ctx, conn, f"Instance {inst.uuid} is not on any host.", event=EVENT,
                       vm_state=None)
            return
        await ctx.update_instance(conn, task_state=states.IMAGE_UPLOADING)
        await rec.event_start(conn, ctx.action_id, EVENT, host=inst.host)
        await ctx.enqueue(conn, inst.host, "snapshot",
                          {"uuid": inst.uuid, "image_id": ctx.payload["image_id"]})
        await ctx.wait(conn, "finish")


async def finish(ctx) -> None:
    found = ctx.results[0] if ctx.results else None
    host = found["host"] if found else None
    result = (found or {}).get("result") or {"ok": False, "error": "no result"}
    removed: list[str] = []
    async with ctx.txn() as conn:
        if result.get("ok"):
            if "rotation" in ctx.payload:
                removed = await _rotate(conn, ctx.instance_uuid, ctx.payload)
            await succeed(ctx, conn, event=EVENT, at_host=host)
        else:
            await _drop_image(conn, ctx.payload.get("image_id"))
            await fail(ctx, conn, rec.error_of(result), event=EVENT, at_host=host,
                       vm_state=None)
    if removed:
        from cloudd.services.image import store
        files = store.for_cloud(ctx.compute.cloud)
        for image_id in removed:
            files.remove(image_id)


async def _rotate(conn, instance_uuid: str, payload: dict) -> list[str]:
    """Nova's _rotate_backups: keep the newest ``rotation`` backups of the type."""
    prop = t.image_property
    matching = []
    for name, value in (("image_type", "backup"), ("backup_type", payload["backup_type"]),
                        ("instance_uuid", instance_uuid)):
        matching.append(select(prop.c.image_id).where(prop.c.name == name,
                                                      prop.c.value == value))
    rows = (await conn.execute(
        select(t.image.c.id).where(t.image.c.id.in_(matching[0]),
                                   t.image.c.id.in_(matching[1]),
                                   t.image.c.id.in_(matching[2]),
                                   t.image.c.status == "active")
        .order_by(t.image.c.created_at.desc()))).all()
    excess = [r.id for r in rows[int(payload["rotation"]):]]
    if excess:
        await conn.execute(delete(t.image).where(t.image.c.id.in_(excess)))
    return excess


async def _drop_image(conn, image_id: str | None) -> None:
    """Remove a snapshot image that never got its data (queued only)."""
    if not image_id:
        return
    await conn.execute(delete(t.image).where(t.image.c.id == image_id,
                                             t.image.c.status.in_(("queued", "saving"))))


STEPS = {("snapshot", "start"): start, ("snapshot", "finish"): finish}
