"""Shared set-up for the allocation tests: a migrated database with providers."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select

from cloudd.db import tables as t

NOW = datetime(2024, 1, 1)


def U(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"cloudd-alloc-test-{name}"))


async def add_provider(db, name: str, parent: str | None = None, **inventories) -> str:
    """A provider named ``name`` with inventories given as CLASS=total or CLASS=dict."""
    rp = U(name)
    async with db.write() as conn:
        root = rp
        if parent:
            root = (await conn.execute(select(t.resource_provider.c.root_provider_uuid)
                                       .where(t.resource_provider.c.uuid == parent))).scalar()
        await conn.execute(t.resource_provider.insert().values(
            uuid=rp, name=name, generation=0, root_provider_uuid=root,
            parent_provider_uuid=parent, created_at=NOW))
        for rc, spec in inventories.items():
            spec = {"total": spec} if isinstance(spec, int) else dict(spec)
            spec.setdefault("max_unit", spec["total"])
            await conn.execute(t.inventory.insert().values(
                resource_provider_uuid=rp, resource_class=rc, created_at=NOW, **spec))
    return rp


async def set_inventory(db, rp: str, rc: str, **values) -> None:
    async with db.write() as conn:
        await conn.execute(t.inventory.update().where(
            t.inventory.c.resource_provider_uuid == rp,
            t.inventory.c.resource_class == rc).values(**values))


async def used(db, rp: str, rc: str) -> int:
    async with db.read() as conn:
        total = (await conn.execute(select(func.sum(t.allocation.c.used)).where(
            t.allocation.c.resource_provider_uuid == rp,
            t.allocation.c.resource_class == rc))).scalar()
    return int(total or 0)


async def generation(db, rp: str) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(t.resource_provider.c.generation).where(
            t.resource_provider.c.uuid == rp))).scalar()


async def consumer_row(db, consumer: str):
    async with db.read() as conn:
        return (await conn.execute(select(t.consumer).where(
            t.consumer.c.uuid == consumer))).first()
