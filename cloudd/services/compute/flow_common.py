"""Pieces every conductor flow uses: the driver spec of an instance, power
states, failing a task the way Nova leaves the instance, migrations."""

from __future__ import annotations

import json
import uuid as uuidlib

from sqlalchemy import select, update

from cloudd.db import prebuilt as pb
from cloudd.db import tables as t
from cloudd.drivers.base import PowerState
from cloudd.services.compute import action_records as rec
from cloudd.services.compute import hosts
from cloudd.services.compute.tasks import utcnow

NOSTATE = int(PowerState.NOSTATE)
RUNNING = int(PowerState.RUNNING)
PAUSED = int(PowerState.PAUSED)
SHUTDOWN = int(PowerState.SHUTDOWN)
SUSPENDED = int(PowerState.SUSPENDED)

# Migration statuses that still hold something (Nova's in-progress ones + finished).
OPEN_MIGRATION = ("pre-migrating", "migrating", "post-migrating", "finished",
                  "confirming", "reverting")


def loads(value, default=None):
    if value is None or value == "":
        return {} if default is None else default
    return json.loads(value) if isinstance(value, str) else value


def power_of(result: dict | None, default: int) -> int:
    """The power state an agent RESULT reports, else ``default``."""
    value = (result or {}).get("power_state")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


async def spawn_spec(conn, inst, *, flavor: dict | None = None,
                     image: dict | None = None, cloud=None,
                     network_info: list | None = None) -> dict:
    """cloudd.drivers.base.InstanceSpec as a dict, for spawn/resize/rebuild.

    With ``cloud``: ``network_info`` (the given vifs, else the instance's
    ports as they are) and ``config_drive`` (its files when the instance has
    one, docs/network-design.md)."""
    flavor = flavor if flavor is not None else loads(inst.flavor)
    req = loads(inst.request_spec)
    if image is None:
        image = req.get("image") if isinstance(req.get("image"), dict) else {}
    image = dict(image or {})
    if inst.image_ref and not image.get("id"):
        image["id"] = inst.image_ref
    meta = {r.meta_key: r.meta_value for r in await conn.execute(
        pb.select_where(t.instance_metadata, "instance_uuid"), pb.where(instance_uuid=inst.uuid))}
    return {"uuid": inst.uuid, "name": inst.display_name,
            "vcpus": int(flavor.get("vcpus") or 0),
            "memory_mb": int(flavor.get("memory_mb") or 0),
            "root_gb": int(flavor.get("root_gb") or 0),
            "ephemeral_gb": int(flavor.get("ephemeral_gb") or 0),
            "swap_mb": int(flavor.get("swap") or 0),
            "image": image, "metadata": meta,
            "user_data": inst.user_data, "key_data": inst.key_data,
            "network_info": await _network_info(conn, cloud, inst, network_info),
            "config_drive": await config_drive(conn, cloud, inst, image)}


async def _network_info(conn, cloud, inst, given: list | None) -> list:
    if given is not None:
        return list(given)
    network = getattr(cloud, "network", None)
    if network is None:
        return []
    return list((await network.vifs_for_instances(conn, [inst.uuid])).get(inst.uuid) or [])


def wants_config_drive(cfg, inst, image: dict | None = None) -> bool:
    """Nova's configdrive.required_by: asked for, forced, or the image's
    ``img_config_drive=mandatory``."""
    props = (image or {}).get("properties") or {}
    return bool(inst.config_drive) or bool(cfg.compute.force_config_drive) or \
        props.get("img_config_drive") == "mandatory"


async def config_drive(conn, cloud, inst, image: dict | None = None) -> dict | None:
    """{"files": {path: base64}} for the instance's config drive, or None."""
    if cloud is None or not wants_config_drive(cloud.config, inst, image):
        return None
    try:
        from cloudd.services.metadata import documents
    except ImportError:         # the metadata service is not part of this build
        return None
    files = await documents.instance_documents(cloud, conn, inst.uuid)
    return documents.config_drive_spec(files) if files else None


async def fail(ctx, conn, message: str, *, event: str | None = None,
               vm_state: str | None = "error", at_host: str | None = None,
               details: str = "", code: int = 500, **instance_values) -> None:
    """Fault, failed event, instance out of its task (``vm_state`` None keeps
    it: Nova's reverts_task_state), action "Error", task failed."""
    values = {"task_state": None, **instance_values}
    if vm_state is not None:
        values["vm_state"] = vm_state
    await ctx.update_instance(conn, **values)
    await rec.add_fault(conn, ctx.instance_uuid, message, code=code,
                        details=details or message, host=at_host)
    if event:
        await rec.event_finish(conn, ctx.action_id, event, ok=False, host=at_host,
                               details=message, touch_action=False)
    await rec.action_finish(conn, ctx.action_id, ok=False)
    await ctx.finish(conn, ok=False)


async def succeed(ctx, conn, *, event: str | None = None, at_host: str | None = None,
                  **instance_values) -> None:
    """The instance's new state, event "Success", action finished, task done."""
    await ctx.update_instance(conn, task_state=None, **instance_values)
    if event:
        await rec.event_finish(conn, ctx.action_id, event, ok=True, host=at_host,
                               touch_action=False)
    await rec.action_finish(conn, ctx.action_id, ok=True)
    await ctx.finish(conn, ok=True)


async def service_is_up(conn, cfg, host: str) -> bool:
    svc = t.compute_service
    row = (await conn.execute(select(svc).where(
        svc.c.host == host, svc.c.binary_name == hosts.COMPUTE_BINARY))).first()
    return row is not None and hosts.is_up(row, cfg.compute.service_down_time, utcnow())


async def create_migration(conn, inst, *, migration_type: str, old_flavor: dict,
                           new_flavor: dict) -> str:
    mig_id = str(uuidlib.uuid4())
    now = utcnow()
    await conn.execute(t.migration.insert().values(
        id=mig_id, num=await hosts.next_num(conn, t.migration), instance_uuid=inst.uuid,
        migration_type=migration_type, status="pre-migrating",
        source_compute=inst.host, source_node=inst.node,
        old_flavor_id=str(old_flavor.get("id") or ""),
        new_flavor_id=str(new_flavor.get("id") or ""), created_at=now, updated_at=now))
    return mig_id


async def latest_migration(conn, instance_uuid: str, statuses: tuple[str, ...]):
    m = t.migration
    return (await conn.execute(select(m).where(
        m.c.instance_uuid == instance_uuid, m.c.status.in_(statuses))
        .order_by(m.c.num.desc()))).first()


async def set_migration(conn, migration_id: str, **values) -> None:
    values.setdefault("updated_at", utcnow())
    await conn.execute(update(t.migration).where(t.migration.c.id == migration_id)
                       .values(**values))
