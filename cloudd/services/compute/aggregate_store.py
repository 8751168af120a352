"""Host aggregates in the database: rows, hosts, metadata, zones, placement.

An aggregate's availability zone is its ``availability_zone`` metadata key,
as in Nova. ``num`` is the integer id the API shows; ``id`` (a UUID) is the
API's ``uuid`` (2.41+) and also the placement aggregate that the member
hosts' resource providers (compute_node ids) belong to.

For other modules (scheduler, zones):
  ``host_zone_map(conn)``        {host: zone} for hosts in a zoned aggregate
  ``host_aggregates(conn, host)`` [{"id", "uuid", "name", "metadata"}] of one host
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select, update

from cloudd.db import tables as t
from cloudd.services.compute import hosts
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError

AZ_KEY = "availability_zone"
AGG = t.aggregate
HOSTS = t.aggregate_host
META = t.aggregate_metadata


@dataclass
class Aggregate:
    id: str                       # uuid
    num: int
    name: str
    created_at: datetime
    updated_at: datetime | None
    hosts: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> str | None:
        return self.metadata.get(AZ_KEY)


async def _fill(conn, rows) -> list[Aggregate]:
    aggs = [Aggregate(r.id, r.num, r.name, r.created_at, r.updated_at) for r in rows]
    if not aggs:
        return []
    by_id = {a.id: a for a in aggs}
    ids = list(by_id)
    for r in await conn.execute(select(HOSTS).where(HOSTS.c.aggregate_id.in_(ids))
                                .order_by(HOSTS.c.host)):
        by_id[r.aggregate_id].hosts.append(r.host)
    for r in await conn.execute(select(META).where(META.c.aggregate_id.in_(ids))
                                .order_by(META.c.meta_key)):
        by_id[r.aggregate_id].metadata[r.meta_key] = r.meta_value
    return aggs


async def all_aggregates(conn) -> list[Aggregate]:
    return await _fill(conn, await conn.execute(select(AGG).order_by(AGG.c.num)))


async def get(conn, num: int) -> Aggregate:
    """The aggregate with integer id ``num``, or Nova's 404."""
    found = await _fill(conn, await conn.execute(select(AGG).where(AGG.c.num == num)))
    if not found:
        raise ApiError(404, f"Aggregate {num} could not be found.")
    return found[0]


async def host_aggregates(conn, host: str) -> list[dict]:
    """The aggregates ``host`` is in: [{"id": num, "uuid", "name", "metadata"}]."""
    ids = select(HOSTS.c.aggregate_id).where(HOSTS.c.host == host)
    aggs = await _fill(conn, await conn.execute(
        select(AGG).where(AGG.c.id.in_(ids)).order_by(AGG.c.num)))
    return [{"id": a.num, "uuid": a.id, "name": a.name, "metadata": dict(a.metadata)}
            for a in aggs]


async def host_zone_map(conn) -> dict[str, str]:
    """{host: zone} for every host in an aggregate with an availability zone.

    A host in several zoned aggregates (which the API refuses to create) gets
    the zones joined with commas, as Nova shows it.
    """
    rows = await conn.execute(
        select(HOSTS.c.host, META.c.meta_value)
        .join(META, META.c.aggregate_id == HOSTS.c.aggregate_id)
        .where(META.c.meta_key == AZ_KEY))
    zones: dict[str, set[str]] = {}
    for r in rows:
        zones.setdefault(r.host, set()).add(r.meta_value)
    return {h: ",".join(sorted(z)) for h, z in zones.items()}


async def create(conn, name: str, zone: str | None) -> Aggregate:
    if (await conn.execute(select(AGG.c.id).where(AGG.c.name == name))).first():
        raise ApiError(409, f"Aggregate {name} already exists.")
    now = utcnow()
    agg_id = str(uuidlib.uuid4())
    num = await hosts.next_num(conn, AGG)
    await conn.execute(AGG.insert().values(id=agg_id, num=num, name=name, created_at=now))
    if zone:
        await conn.execute(META.insert().values(aggregate_id=agg_id, meta_key=AZ_KEY,
                                                meta_value=zone))
    return await get(conn, num)


async def rename(conn, agg: Aggregate, name: str) -> None:
    if name != agg.name and (await conn.execute(
            select(AGG.c.id).where(AGG.c.name == name, AGG.c.id != agg.id))).first():
        raise ApiError(409, f"Aggregate {name} already exists.")
    await conn.execute(update(AGG).where(AGG.c.id == agg.id)
                       .values(name=name, updated_at=utcnow()))


async def set_metadata(conn, agg: Aggregate, changes: dict[str, str | None]) -> None:
    """Merge ``changes`` into the metadata; a None value deletes its key."""
    for key, value in changes.items():
        await conn.execute(delete(META).where(META.c.aggregate_id == agg.id,
                                              META.c.meta_key == key))
        if value is not None:
            await conn.execute(META.insert().values(aggregate_id=agg.id, meta_key=key,
                                                    meta_value=value))
    await conn.execute(update(AGG).where(AGG.c.id == agg.id).values(updated_at=utcnow()))


async def destroy(conn, agg: Aggregate) -> None:
    await conn.execute(delete(META).where(META.c.aggregate_id == agg.id))
    await conn.execute(delete(AGG).where(AGG.c.id == agg.id))


async def add_host(conn, agg: Aggregate, host: str) -> None:
    if host in agg.hosts:
        raise ApiError(409, f"Aggregate {agg.num} already has host {host}.")
    await conn.execute(HOSTS.insert().values(aggregate_id=agg.id, host=host))
    await _mirror_to_placement(conn, agg.id, host, add=True)


async def remove_host(conn, agg: Aggregate, host: str) -> None:
    await conn.execute(delete(HOSTS).where(HOSTS.c.aggregate_id == agg.id,
                                           HOSTS.c.host == host))
    await _mirror_to_placement(conn, agg.id, host, add=False)


async def zones_of_other_aggregates(conn, agg: Aggregate, host_list: list[str]) -> list[str]:
    """Zones of the aggregates (other than ``agg``) that hold any of ``host_list``."""
    if not host_list:
        return []
    rows = await conn.execute(
        select(META.c.meta_value).distinct()
        .join(HOSTS, HOSTS.c.aggregate_id == META.c.aggregate_id)
        .where(META.c.meta_key == AZ_KEY, HOSTS.c.host.in_(host_list),
               META.c.aggregate_id != agg.id))
    return sorted(r.meta_value for r in rows)


async def count_instances_on_hosts(conn, host_list: list[str]) -> int:
    if not host_list:
        return 0
    inst = t.instance
    return (await conn.execute(select(func.count()).select_from(inst).where(
        inst.c.host.in_(host_list), inst.c.deleted.is_(False)))).scalar() or 0


async def _mirror_to_placement(conn, agg_uuid: str, host: str, *, add: bool) -> None:
    """Put (or take) the host's compute node providers in the placement aggregate,
    as Nova's report client does; a node without a provider is skipped."""
    from cloudd.services.placement import aggregates as rp_aggs
    from cloudd.services.placement import provider_store
    nodes = await conn.execute(select(t.compute_node.c.id).where(t.compute_node.c.host == host)
                               .order_by(t.compute_node.c.id))
    for node in nodes.all():
        if await provider_store.find_provider(conn, node.id) is None:
            continue
        rp = await provider_store.lock_provider(conn, node.id)
        have = await rp_aggs.provider_aggregates(conn, node.id)
        wanted = sorted(set(have) | {agg_uuid}) if add else [a for a in have if a != agg_uuid]
        if wanted == have:
            continue
        await rp_aggs.set_provider_aggregates(conn, node.id, wanted)
        try:
            await provider_store.bump_generation(conn, node.id, rp.generation)
        except ApiError:          # cannot happen under the row lock; never fatal
            pass
