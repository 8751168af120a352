"""Compute services as the admin APIs show them: zone, up/down, last update.

A nova-compute service's zone is that of the zoned aggregate its host is in,
else ``[compute] default_availability_zone``; the controller's services
(nova-scheduler, nova-conductor) are in ``internal``. The controller's own
services are up while it serves (unless forced down); an agent's service is
up while its heartbeats (``last_seen_at``) are fresh (``hosts.is_up``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import aggregate_store, hosts
from cloudd.services.compute.tasks import utcnow

INTERNAL_ZONE = "internal"
SVC = t.compute_service


def is_up(row, cfg, now: datetime | None = None) -> bool:
    if row.binary_name in hosts.CONTROLLER_BINARIES:
        return not row.forced_down
    return hosts.is_up(row, cfg.compute.service_down_time, now or utcnow())


def updated_at(row) -> datetime | None:
    """When the service was last heard from or changed (Nova's updated_at)."""
    stamps = [s for s in (row.last_seen_at, row.updated_at) if s is not None]
    return max(stamps) if stamps else None


def zone_of(row, zone_map: dict[str, str], cfg) -> str:
    if row.binary_name != hosts.COMPUTE_BINARY:
        return INTERNAL_ZONE
    return zone_map.get(row.host) or cfg.compute.default_availability_zone


async def all_services(conn, *, host: str | None = None,
                       binary: str | None = None) -> list:
    query = select(SVC).order_by(SVC.c.num)
    if host:
        query = query.where(SVC.c.host == host)
    if binary:
        query = query.where(SVC.c.binary_name == binary)
    return (await conn.execute(query)).all()


async def with_zones(conn, cfg, **filters) -> list[tuple]:
    """[(service row, zone)] ordered by the integer id."""
    rows = await all_services(conn, **filters)
    zone_map = await aggregate_store.host_zone_map(conn)
    return [(r, zone_of(r, zone_map, cfg)) for r in rows]


async def compute_service_of_host(conn, host: str):
    """The nova-compute service row of ``host``, or None."""
    return (await conn.execute(select(SVC).where(
        SVC.c.host == host, SVC.c.binary_name == hosts.COMPUTE_BINARY))).first()
