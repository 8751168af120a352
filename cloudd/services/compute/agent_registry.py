"""What the agent hub writes about hosts: registration, heartbeats, instance
reconciliation and power-state sync.

Registration (``hello``): the host's ``nova-compute`` service row, its
``compute_node`` (id = uuid5 of the hypervisor hostname: stable across
reconnects and re-registrations, and also the placement provider's uuid),
the provider (named after the hypervisor hostname) and its inventory.

Reconciliation (``hello`` and the agent's periodic ``sync``), after Nova's
``_init_instance`` and ``_sync_instance_power_state``; instances with an
open task are left alone (the conductor owns them and resends their
commands through the outbox):

- reported, but deleted in the database or unknown: an orphan; a
  ``destroy`` command is queued (Nova's running-deleted cleanup, "reap").
- reported, but the database puts it on another host: left alone (a move
  may be in progress); logged.
- ours and reported: the power state is recorded. An ``active`` (or
  ``paused``) instance that is shut off or crashed becomes ``stopped``
  (Nova: "Instance shutdown by itself. Calling the stop API."); a
  ``stopped`` one found running is powered off again (Nova's force stop).
- ours, not reported and not busy: power state NOSTATE (Nova: "Instance is
  unexpectedly not found. Ignore." - the vm_state is kept so the owner can
  still see, stop or delete it); a ``building`` one with no open task can
  never finish and goes to ``error``.
"""

from __future__ import annotations

import json
import logging
import math
import uuid as uuidlib

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.drivers.base import PowerState
from cloudd.services.compute import hosts, outbox, states
from cloudd.services.compute.tasks import OPEN_STATES, utcnow

log = logging.getLogger("cloudd.compute.agents")

NODE_NAMESPACE = uuidlib.UUID("5b0f6f36-8f0e-4a53-9d7b-8d3c2f0a1c11")
STOPPED_POWER = (PowerState.SHUTDOWN, PowerState.CRASHED)
OUTSTANDING = ("pending", "sent")


def node_uuid(hypervisor_hostname: str) -> str:
    return str(uuidlib.uuid5(NODE_NAMESPACE, hypervisor_hostname))


def _int(value, default: int = 0) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return default


def inventory_records(resources: dict, inventory: dict | None) -> dict[str, dict]:
    """Placement inventory from the agent's hello (its own, else the raw sizes).

    Classes with nothing to offer are left out; a reserved amount above the
    total is capped at it (Placement refuses that inventory otherwise).
    """
    inventory = dict(inventory or {})
    for rc, key in (("VCPU", "vcpus"), ("MEMORY_MB", "memory_mb"), ("DISK_GB", "disk_gb")):
        inventory.setdefault(rc, {"total": resources.get(key, 0)})
    out: dict[str, dict] = {}
    for rc, raw in inventory.items():
        if not isinstance(raw, dict):
            continue
        total = _int(raw.get("total"))
        if total < 1:
            continue
        ratio = raw.get("allocation_ratio", 1.0)
        try:
            ratio = float(ratio) if float(ratio) > 0 else 1.0
        except (TypeError, ValueError):
            ratio = 1.0
        out[rc] = {"total": total, "reserved": min(_int(raw.get("reserved")), total),
                   "min_unit": max(_int(raw.get("min_unit"), 1), 1),
                   "max_unit": min(max(_int(raw.get("max_unit"), total), 1), total),
                   "step_size": max(_int(raw.get("step_size"), 1), 1),
                   "allocation_ratio": ratio}
    return out


def agent_inventory(resources, agent_cfg) -> dict[str, dict]:
    """What an agent offers placement, from its driver's sizes and ``[agent]``."""
    return {
        "VCPU": {"total": resources.vcpus, "reserved": agent_cfg.reserved_host_cpus,
                 "allocation_ratio": agent_cfg.cpu_allocation_ratio},
        "MEMORY_MB": {"total": resources.memory_mb,
                      "reserved": agent_cfg.reserved_host_memory_mb,
                      "allocation_ratio": agent_cfg.ram_allocation_ratio},
        "DISK_GB": {"total": resources.disk_gb,
                    "reserved": math.ceil(agent_cfg.reserved_host_disk_mb / 1024),
                    "allocation_ratio": agent_cfg.disk_allocation_ratio},
    }


async def register(compute, host: str, hello: dict, protocol: int) -> str:
    """Upsert the host's service and node rows and its placement provider;
    returns the node (= provider) uuid."""
    db, cfg = compute.db, compute.config
    res = hello.get("resources") or {}
    hyp = str(res.get("hypervisor_hostname") or host)[:255]
    cpu_info = res.get("cpu_info") or {}
    values = {"host": host, "hypervisor_type": str(res.get("hypervisor_type") or "fake")[:64],
              "hypervisor_version": _int(res.get("hypervisor_version")),
              "vcpus": _int(res.get("vcpus")), "memory_mb": _int(res.get("memory_mb")),
              "local_gb": _int(res.get("disk_gb")),
              "host_ip": (str(res["host_ip"])[:64] if res.get("host_ip") else None),
              "cpu_info": json.dumps(cpu_info if isinstance(cpu_info, dict) else {})}
    svc, node = t.compute_service, t.compute_node
    for attempt in range(5):
        now = utcnow()
        try:
            async with db.write() as conn:
                row = (await conn.execute(select(svc.c.id).where(
                    svc.c.host == host, svc.c.binary_name == hosts.COMPUTE_BINARY))).first()
                if row is None:
                    service_id = str(uuidlib.uuid4())
                    await conn.execute(svc.insert().values(
                        id=service_id, num=await hosts.next_num(conn, svc), host=host,
                        binary_name=hosts.COMPUTE_BINARY,
                        zone=cfg.compute.default_availability_zone[:32], disabled=False,
                        forced_down=False, version=protocol, last_seen_at=now,
                        created_at=now, updated_at=now))
                else:
                    service_id = row.id
                    await conn.execute(update(svc).where(svc.c.id == service_id).values(
                        version=protocol, last_seen_at=now))
                found = (await conn.execute(select(node.c.id).where(
                    node.c.hypervisor_hostname == hyp))).first()
                if found is None:
                    node_id = node_uuid(hyp)
                    await conn.execute(node.insert().values(
                        id=node_id, num=await hosts.next_num(conn, node),
                        service_id=service_id, hypervisor_hostname=hyp, created_at=now,
                        updated_at=now, **values))
                else:
                    node_id = found.id
                    await conn.execute(update(node).where(node.c.id == node_id).values(
                        service_id=service_id, updated_at=now, **values))
            break
        except IntegrityError:
            # Two registrations raced for the next ``num``: read again and retry.
            if attempt == 4:
                raise
    await compute.placement.ensure_provider(node_id, hyp)
    await compute.placement.set_inventory(node_id, inventory_records(res, hello.get("inventory")))
    return node_id


async def heartbeat(db, hosts_seen: list[str]) -> None:
    """One write for every host heard from since the last flush."""
    if not hosts_seen:
        return
    svc = t.compute_service
    async with db.write() as conn:
        await conn.execute(update(svc).where(svc.c.host.in_(sorted(hosts_seen)),
                                             svc.c.binary_name == hosts.COMPUTE_BINARY)
                           .values(last_seen_at=utcnow()))


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def _open_tasks(conn, uuids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(uuids):
        rows = await conn.execute(select(t.task.c.instance_uuid).where(
            t.task.c.instance_uuid.in_(chunk), t.task.c.state.in_(OPEN_STATES)))
        found.update(r.instance_uuid for r in rows)
    return found


async def _outstanding(conn, host: str) -> set[str]:
    cmd = t.agent_command
    rows = await conn.execute(select(cmd.c.instance_uuid).where(
        cmd.c.host == host, cmd.c.state.in_(OUTSTANDING), cmd.c.instance_uuid.is_not(None)))
    return {r.instance_uuid for r in rows}


async def reconcile(db, host: str, reported: dict[str, int], busy: set[str],
                    full: bool = True) -> list[str]:
    """Compare what the agent has with the database (see the module docstring).

    ``reported`` is {uuid: power_state}; ``full`` when it is the agent's whole
    list (hello, sync) rather than one event. Returns the commands queued.
    """
    inst = t.instance
    queued: list[str] = []
    async with db.write() as conn:
        rows: dict[str, object] = {}
        for chunk in _chunks(list(reported)):
            for r in (await conn.execute(select(
                    inst.c.uuid, inst.c.host, inst.c.vm_state, inst.c.task_state,
                    inst.c.power_state, inst.c.deleted).where(inst.c.uuid.in_(chunk)))).all():
                rows[r.uuid] = r
        mine = []
        if full:
            mine = (await conn.execute(select(
                inst.c.uuid, inst.c.vm_state, inst.c.task_state, inst.c.power_state).where(
                inst.c.host == host, inst.c.deleted.is_(False)))).all()
        open_tasks = await _open_tasks(conn, list(reported) + [r.uuid for r in mine])
        outstanding = await _outstanding(conn, host)
        for uuid, power in reported.items():
            row = rows.get(uuid)
            if uuid in open_tasks:
                continue
            if row is None or row.deleted:
                if uuid not in outstanding:
                    log.warning("destroying an orphan guest the database does not have",
                                extra={"fields": {"host": host, "instance": uuid}})
                    queued.append(await outbox.enqueue(conn, host=host, op="destroy",
                                                       args={"uuid": uuid},
                                                       instance_uuid=uuid))
                continue
            if row.host != host:
                log.info("guest belongs to another host in the database; left alone",
                         extra={"fields": {"host": host, "instance": uuid,
                                           "db_host": row.host}})
                continue
            queued += await _sync_power(conn, host, row, power, uuid in outstanding)
        for row in mine:
            if row.uuid in reported or row.uuid in busy or row.uuid in open_tasks \
                    or row.uuid in outstanding:
                continue
            await _missing(conn, host, row)
    return queued


async def sync_power(db, host: str, uuid: str, power: int) -> None:
    """One instance's power state as the agent sees it (an event, or a result
    of a command no task waits on)."""
    async with db.write() as conn:
        row = (await conn.execute(select(
            t.instance.c.uuid, t.instance.c.host, t.instance.c.vm_state,
            t.instance.c.task_state, t.instance.c.power_state, t.instance.c.deleted)
            .where(t.instance.c.uuid == uuid))).first()
        if row is None or row.deleted or row.host != host or row.task_state is not None:
            return
        if await _open_tasks(conn, [uuid]):
            return
        await _sync_power(conn, host, row, power, uuid in await _outstanding(conn, host))


def _guard(host: str, uuid: str):
    inst = t.instance
    return (inst.c.uuid == uuid, inst.c.host == host, inst.c.deleted.is_(False),
            inst.c.task_state.is_(None))


async def _sync_power(conn, host: str, row, power: int, outstanding: bool) -> list[str]:
    """Nova's _sync_instance_power_state for one instance with no task running."""
    inst = t.instance
    if row.task_state is not None:
        return []
    now = utcnow()
    if power in STOPPED_POWER and row.vm_state in (states.ACTIVE, states.PAUSED):
        result = await conn.execute(update(inst).where(
            *_guard(host, row.uuid), inst.c.vm_state == row.vm_state)
            .values(vm_state=states.STOPPED, power_state=power, updated_at=now))
        if result.rowcount:
            log.warning("instance shut down by itself; it is stopped now",
                        extra={"fields": {"host": host, "instance": row.uuid}})
        return []
    if row.power_state != power:
        await conn.execute(update(inst).where(*_guard(host, row.uuid))
                           .values(power_state=power, updated_at=now))
    if row.vm_state == states.STOPPED and power == PowerState.RUNNING and not outstanding:
        log.warning("stopped instance found running; powering it off",
                    extra={"fields": {"host": host, "instance": row.uuid}})
        return [await outbox.enqueue(conn, host=host, op="power_off",
                                     args={"uuid": row.uuid, "timeout": 0},
                                     instance_uuid=row.uuid)]
    return []


async def _missing(conn, host: str, row) -> None:
    inst = t.instance
    where = [inst.c.uuid == row.uuid, inst.c.host == host, inst.c.deleted.is_(False),
             inst.c.vm_state == row.vm_state]
    if row.vm_state == states.BUILDING:
        # No open task will ever finish this build (_init_instance: error).
        values = {"vm_state": states.ERROR, "task_state": None,
                  "power_state": int(PowerState.NOSTATE)}
    elif row.task_state is None and row.power_state != PowerState.NOSTATE and \
            row.vm_state not in (states.DELETED, states.SOFT_DELETED, states.SHELVED_OFFLOADED):
        values = {"power_state": int(PowerState.NOSTATE)}
        where.append(inst.c.task_state.is_(None))
    else:
        return
    log.warning("instance not found on its host",
                extra={"fields": {"host": host, "instance": row.uuid,
                                  "vm_state": values.get("vm_state", row.vm_state)}})
    await conn.execute(update(inst).where(*where).values(updated_at=utcnow(), **values))
