"""provider_store and the standard-name sync, straight against the database.

On SQLite and PostgreSQL: the generation compare-and-swap, tree helpers, and
that syncing standard resource classes and traits is complete and idempotent.
"""

from __future__ import annotations

import asyncio

import os_resource_classes as orc
import os_traits
import pytest
from sqlalchemy import func, select

from cloudd.db import tables as t
from cloudd.services.placement import provider_store
from cloudd.services.placement.sync import rc_sort_key, sync_standards
from cloudd.services.placement.util import utcnow
from cloudd.web.errors import ApiError

BACKENDS = ["sqlite", "postgresql"]


async def _add(db, uuid: str, parent: str | None = None) -> None:
    async with db.write() as conn:
        root = uuid
        if parent:
            root = (await provider_store.get_provider(conn, parent)).root_provider_uuid
        await conn.execute(t.resource_provider.insert().values(
            uuid=uuid, name=f"rp-{uuid}", generation=0, root_provider_uuid=root,
            parent_provider_uuid=parent, created_at=utcnow()))


@pytest.mark.asyncio
async def test_sync_is_complete_and_idempotent(db):
    await sync_standards(db)              # a second start changes nothing
    async with db.read() as conn:
        classes = {r.name for r in await conn.execute(select(t.resource_class.c.name))}
        traits = await conn.scalar(select(func.count()).select_from(t.trait))
        standard = await conn.scalar(select(func.count()).select_from(t.resource_class)
                                     .where(t.resource_class.c.standard.is_(True)))
    assert classes == set(orc.STANDARDS)
    assert standard == len(orc.STANDARDS)
    assert traits == len(os_traits.get_traits())


def test_resource_class_order_is_placements():
    names = ["CUSTOM_B", "DISK_GB", "CUSTOM_A", "VCPU", "MEMORY_MB"]
    assert sorted(names, key=rc_sort_key) == [
        "VCPU", "MEMORY_MB", "DISK_GB", "CUSTOM_A", "CUSTOM_B"]


@pytest.mark.asyncio
async def test_get_provider_404_words(db):
    async with db.read() as conn:
        with pytest.raises(ApiError) as info:
            await provider_store.get_provider(conn, "nope")
    assert info.value.status == 404
    assert info.value.message == "No resource provider with uuid nope found"
    async with db.read() as conn:
        assert await provider_store.find_provider(conn, "nope") is None


@pytest.mark.asyncio
async def test_bump_generation_is_compare_and_swap(db):
    await _add(db, "a")
    async with db.write() as conn:
        assert await provider_store.bump_generation(conn, "a", 0) == 1
    async with db.write() as conn:
        with pytest.raises(ApiError) as info:
            await provider_store.bump_generation(conn, "a", 0)     # stale
    assert (info.value.status, info.value.code) == (409, "placement.concurrent_update")
    async with db.write() as conn:
        with pytest.raises(ApiError):
            await provider_store.bump_generation(conn, "gone", 0)
        assert await provider_store.increment_generation(conn, "a") == 2
    async with db.read() as conn:
        assert (await provider_store.get_provider(conn, "a")).generation == 2


@pytest.mark.asyncio
async def test_racing_bumps_from_one_generation_let_exactly_one_win(db):
    await _add(db, "a")

    async def bump() -> bool:
        try:
            async with db.write() as conn:
                await provider_store.get_provider(conn, "a")   # everyone read 0
                await asyncio.sleep(0)
                await provider_store.bump_generation(conn, "a", 0)
            return True
        except ApiError as err:
            assert err.code == "placement.concurrent_update"
            return False

    results = await asyncio.gather(*(bump() for _ in range(8)))
    assert sum(results) == 1
    async with db.read() as conn:
        assert (await provider_store.get_provider(conn, "a")).generation == 1


@pytest.mark.asyncio
async def test_tree_helpers(db):
    await _add(db, "root")
    await _add(db, "c1", "root")
    await _add(db, "c2", "root")
    await _add(db, "g1", "c1")
    await _add(db, "other")
    async with db.read() as conn:
        assert await provider_store.descendants(conn, "root") == {"c1", "c2", "g1"}
        assert await provider_store.descendants(conn, "c1") == {"g1"}
        assert await provider_store.descendants(conn, "g1") == set()
        assert sorted(await provider_store.tree_uuids(conn, "root")) == [
            "c1", "c2", "g1", "root"]
        found = await provider_store.get_providers(conn, ["c1", "nope", "c1"])
    assert list(found) == ["c1"]
