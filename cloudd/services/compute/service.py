"""ComputeService: the compute side of one running cloudd.

Holds the in-process actors (conductor, agent hub) and the scheduler, and
gives API handlers one place to reach them: ``request.app["cloud"].compute``.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import event

from cloudd.db.group_commit import GroupCommit
from cloudd.db.table_cache import TableCache
from cloudd.services.compute.agent_hub import AgentHub
from cloudd.services.compute.conductor import Conductor
from cloudd.services.compute.scheduler import Scheduler
from cloudd.services.placement.service import PlacementService
from cloudd.web.errors import ApiError

log = logging.getLogger("cloudd.compute")


class ComputeService:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.config = cloud.config
        self.db = cloud.db
        self.placement = PlacementService(cloud.db)
        self.scheduler = Scheduler(self)
        self.hub = AgentHub(self)
        self.conductor = Conductor(self)
        # Rows every server create reads and hardly anything writes; each is
        # dropped when a write of this process changes one of its tables.
        self.flavor_cache = TableCache(cloud.db, {"flavor", "flavor_extra_spec",
                                                  "flavor_project"})
        self.quota_cache = TableCache(cloud.db, {"quota", "quota_class"})
        self.image_cache = TableCache(cloud.db, {"image", "image_property", "image_tag",
                                                 "image_member"})
        # Server creates arriving together commit together (server_create.py).
        self.creates = GroupCommit(cloud.db, refusals=(ApiError,))

    def actors(self) -> list:
        """The actors the cloud's supervisor runs for compute."""
        return [self.conductor, self.hub]

    def wake(self, task_id: str) -> None:
        """After the commit that wrote or advanced a task: let the conductor run it."""
        self.conductor.cast(task_id)

    @property
    def network(self):
        """The in-process network service (``cloud.network``), or None."""
        return getattr(self.cloud, "network", None)

    async def ports_changed(self, conn, instance_uuids) -> None:
        """Inside the caller's transaction (a security group rule or a port's
        groups changed): one ``network_update`` command per live, placed
        instance, with its vifs as they are now, for its host. The hub is
        told after the commit (and its periodic kick sends what it missed)."""
        from sqlalchemy import select

        from cloudd.db import tables as t
        from cloudd.services.compute import outbox, tasks
        uuids = sorted(set(instance_uuids or []))
        if not uuids or self.network is None:
            return
        inst = t.instance
        rows = (await conn.execute(select(inst.c.uuid, inst.c.host).where(
            inst.c.uuid.in_(uuids), inst.c.deleted == False,
            inst.c.host.is_not(None)))).all()
        # A build still at its first step has no spawn yet (its ports may be
        # the ones being made in this very transaction): the spawn will carry
        # the rules as they are then.
        task = t.task
        unspawned = {r.instance_uuid for r in await conn.execute(
            select(task.c.instance_uuid).where(
                task.c.instance_uuid.in_([r.uuid for r in rows]), task.c.kind == "build",
                task.c.step == "start", task.c.state.in_(tasks.OPEN_STATES)))}
        rows = [r for r in rows if r.uuid not in unspawned]
        if not rows:
            return
        vifs = await self.network.vifs_for_instances(conn, [r.uuid for r in rows])
        hosts = set()
        for row in rows:
            await outbox.enqueue(conn, host=row.host, op="network_update",
                                 args={"uuid": row.uuid,
                                       "network_info": vifs.get(row.uuid, [])},
                                 instance_uuid=row.uuid)
            hosts.add(row.host)
        self._notify_after_commit(conn, hosts)

    async def security_group_members(self, conn, group_id: str, members: dict,
                                     hosts) -> None:
        """Inside the caller's transaction (a security group's ports or their
        addresses changed): one ``security_group_members`` command per host
        holding the group's member set, replacing the host's unsent one
        (``outbox.coalesce``): linear in the changes, not in members²."""
        from cloudd.services.compute import outbox
        hosts = set(hosts)
        await outbox.coalesce(conn, hosts=hosts, op="security_group_members",
                              args={"group_id": group_id, "members": members},
                              key="group_id")
        if hosts:
            self._notify_after_commit(conn, hosts)

    def _notify_after_commit(self, conn, hosts: set[str]) -> None:
        loop = asyncio.get_running_loop()

        def committed(_conn) -> None:
            # Fired as the transaction commits; the hub reads the rows a moment later.
            for host in hosts:
                loop.call_later(0.05, self.hub.notify, host)

        try:
            event.listen(conn.sync_connection, "commit", committed, once=True)
        except Exception:  # noqa: BLE001 - the periodic kick still sends them
            log.debug("no commit hook; the hub's periodic kick sends the commands")
