"""A simulated compute cloud for conductor/scheduler tests, without the agent hub.

``Sim(cloud)`` adds hosts as the hub would (compute_service + compute_node
rows, a placement provider with VCPU/MEMORY_MB/DISK_GB inventory, provider
uuid == compute_node.id) and plays their agents: ``drain()`` takes every
pending/sent ``agent_command`` of a simulated host, stores the RESULT
(state done), then wakes the conductor with the task id, exactly as the hub
does. ``fail[host][op] = {"retryable": bool, "error": str}`` makes an op
fail on a host. ``guests[host]`` is what each fake hypervisor holds.
Instances are created as the servers API writes them (instance row +
``tasks.open_task``).
"""

from __future__ import annotations

import json
import uuid as uuidlib
from datetime import timedelta

from sqlalchemy import select, update

from cloudd.db import tables as t
from cloudd.services.compute import hosts, tasks
from cloudd.services.compute.tasks import utcnow

POWER = {"spawn": 1, "destroy": 0, "reboot": 1, "power_off": 4, "power_on": 1,
         "pause": 3, "unpause": 1, "suspend": 7, "resume": 1, "resize": 1, "rebuild": 1,
         "network_update": 1, "attach_interface": 1, "detach_interface": 1,
         "security_group_members": None}

TINY = {"id": "1", "name": "m1.tiny", "vcpus": 1, "memory_mb": 512, "root_gb": 1,
        "ephemeral_gb": 0, "swap": 0, "rxtx_factor": 1.0, "is_public": True,
        "description": None, "extra_specs": {}}
SMALL = dict(TINY, id="2", name="m1.small", vcpus=2, memory_mb=1024, root_gb=2)


class Sim:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.db = cloud.db
        self.hosts: dict[str, str] = {}          # host -> compute node / provider uuid
        self.fail: dict[str, dict[str, dict]] = {}
        self.guests: dict[str, set[str]] = {}
        self.log: list[tuple[str, str, str | None]] = []   # (host, op, uuid)
        self.args: list[dict] = []                          # each command's args

    @property
    def conductor(self):
        return self.cloud.compute.conductor

    async def add_host(self, name: str, *, vcpus: int = 4, memory_mb: int = 4096,
                       disk_gb: int = 40, up: bool = True, disabled: bool = False) -> str:
        now = utcnow()
        seen = now if up else now - timedelta(hours=1)
        svc_id, node_id = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        async with self.db.write() as conn:
            await conn.execute(t.compute_service.insert().values(
                id=svc_id, num=await hosts.next_num(conn, t.compute_service), host=name,
                binary_name=hosts.COMPUTE_BINARY, zone="nova", disabled=disabled,
                forced_down=False, version=0, last_seen_at=seen, created_at=seen,
                updated_at=seen))
            await conn.execute(t.compute_node.insert().values(
                id=node_id, num=await hosts.next_num(conn, t.compute_node), service_id=svc_id,
                host=name, hypervisor_hostname=f"{name}.node", hypervisor_type="fake",
                vcpus=vcpus, memory_mb=memory_mb, local_gb=disk_gb, created_at=now))
            await conn.execute(t.resource_provider.insert().values(
                uuid=node_id, name=f"{name}.node", generation=0, root_provider_uuid=node_id,
                created_at=now, updated_at=now))
            for rc, total in (("VCPU", vcpus), ("MEMORY_MB", memory_mb), ("DISK_GB", disk_gb)):
                await conn.execute(t.inventory.insert().values(
                    resource_provider_uuid=node_id, resource_class=rc, total=total,
                    reserved=0, min_unit=1, max_unit=total, step_size=1,
                    allocation_ratio=1.0, created_at=now, updated_at=now))
        self.hosts[name] = node_id
        self.guests[name] = set()
        return node_id

    async def set_service(self, name: str, **values) -> None:
        async with self.db.write() as conn:
            await conn.execute(update(t.compute_service).where(
                t.compute_service.c.host == name).values(**values))

    async def create(self, name: str = "vm", *, flavor: dict | None = None,
                     zone: str | None = None, group: dict | None = None,
                     hints: dict | None = None, project: str = "p1",
                     user: str = "u1", run: bool = True) -> tuple[str, str]:
        """An instance + build task as the servers API writes them; woken and
        driven to the end when ``run``. Returns (instance uuid, task id)."""
        flavor = flavor or TINY
        uuid = str(uuidlib.uuid4())
        spec = {"availability_zone": zone, "scheduler_hints": hints or {},
                "group": group, "image": {"id": "img-1"}, "max_attempts": 3,
                "tried_hosts": []}
        now = utcnow()
        async with self.db.write() as conn:
            await conn.execute(t.instance.insert().values(
                uuid=uuid, display_name=name, project_id=project, user_id=user,
                availability_zone=zone, flavor=json.dumps(flavor), image_ref="img-1",
                vm_state="building", task_state="scheduling", power_state=0,
                reservation_id="r-1", request_spec=json.dumps(spec), created_at=now,
                updated_at=now, deleted=False))
            await conn.execute(t.instance_metadata.insert().values(
                instance_uuid=uuid, meta_key="role", meta_value="test"))
            if group:
                await conn.execute(t.server_group_member.insert().values(
                    group_id=group["id"], instance_uuid=uuid))
            task_id = await tasks.open_task(conn, instance_uuid=uuid, kind="build",
                                            action="create", request_id="req-1",
                                            project_id=project, user_id=user)
        if run:
            await self.run(task_id)
        return uuid, task_id

    async def group(self, policy: str, rules: dict | None = None) -> dict:
        gid = str(uuidlib.uuid4())
        async with self.db.write() as conn:
            await conn.execute(t.server_group.insert().values(
                id=gid, name="g", project_id="p1", user_id="u1", policy=policy,
                rules=json.dumps(rules or {}), created_at=utcnow()))
        return {"id": gid, "policy": policy, "rules": rules or {}}

    async def action(self, uuid: str, kind: str, *, task_state: str | None,
                     payload: dict | None = None, action: str | None = None,
                     run: bool = True, **values) -> str:
        """The API's part of an action: task_state CAS + task, then wake."""
        async with self.db.write() as conn:
            if kind == "delete":
                await tasks.cancel_open(conn, uuid)
            await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
                task_state=task_state, **values))
            task_id = await tasks.open_task(conn, instance_uuid=uuid, kind=kind,
                                            payload=payload, action=action or kind,
                                            request_id="req-2", project_id="p1",
                                            user_id="u1")
        if run:
            await self.run(task_id)
        return task_id

    async def run(self, task_id: str) -> None:
        await self.conductor.cast(task_id)
        await self.drain()

    async def drain(self, *, wake: bool = True) -> int:
        """Play the agents until no simulated host has a command left."""
        total = 0
        while True:
            cmd = t.agent_command
            async with self.db.read() as conn:
                rows = (await conn.execute(select(cmd).where(
                    cmd.c.state.in_(("pending", "sent")), cmd.c.host.in_(list(self.hosts)))
                    .order_by(cmd.c.created_at))).all()
            if not rows:
                return total
            for row in rows:
                result = self.execute(row.host, row.op, json.loads(row.args))
                async with self.db.write() as conn:
                    res = await conn.execute(update(cmd).where(
                        cmd.c.id == row.id, cmd.c.state != "done").values(
                            state="done", result=json.dumps(result), updated_at=utcnow()))
                total += 1
                if res.rowcount and wake and row.task_id:
                    await self.conductor.cast(row.task_id)
            if not wake:
                return total

    def execute(self, host: str, op: str, args: dict) -> dict:
        uuid = args.get("uuid") or (args.get("spec") or {}).get("uuid")
        self.log.append((host, op, uuid))
        self.args.append(args)
        failure = self.fail.get(host, {}).get(op)
        if failure:
            return {"ok": False, "error": failure.get("error", f"{op} failed"),
                    "retryable": bool(failure.get("retryable")),
                    "power_state": failure.get("power_state"), "data": {}}
        if op == "spawn":
            self.guests[host].add(uuid)
        elif op == "destroy":
            self.guests[host].discard(uuid)
        return {"ok": True, "error": None, "retryable": False, "power_state": POWER[op],
                "data": {}}

    # -- reading back ------------------------------------------------------------------
    async def instance(self, uuid: str):
        async with self.db.read() as conn:
            return (await conn.execute(select(t.instance).where(
                t.instance.c.uuid == uuid))).first()

    async def task(self, task_id: str):
        async with self.db.read() as conn:
            return (await conn.execute(select(t.task).where(t.task.c.id == task_id))).first()

    async def faults(self, uuid: str) -> list:
        async with self.db.read() as conn:
            return (await conn.execute(select(t.instance_fault).where(
                t.instance_fault.c.instance_uuid == uuid)
                .order_by(t.instance_fault.c.created_at))).all()

    async def usage(self, consumer: str) -> dict[str, dict[str, int]]:
        """{host: {rc: n}} a placement consumer holds."""
        body = await self.cloud.compute.placement.get_allocations(consumer)
        by_rp = {rp: host for host, rp in self.hosts.items()}
        return {by_rp.get(rp, rp): v["resources"] for rp, v in body["allocations"].items()}

    async def events(self, uuid: str) -> list[tuple[str, str, str | None]]:
        """(action, event, result) of the instance, oldest first."""
        a, e = t.instance_action, t.instance_action_event
        async with self.db.read() as conn:
            rows = (await conn.execute(select(a.c.action, e.c.event, e.c.result)
                                       .join(e, e.c.action_id == a.c.id)
                                       .where(a.c.instance_uuid == uuid)
                                       .order_by(a.c.start_time, e.c.start_time))).all()
        return [tuple(r) for r in rows]

    async def actions(self, uuid: str) -> list:
        a = t.instance_action
        async with self.db.read() as conn:
            return (await conn.execute(select(a).where(a.c.instance_uuid == uuid)
                                       .order_by(a.c.start_time))).all()
