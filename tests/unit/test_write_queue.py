"""SQLite writers of one process queue with API requests first, never
starving the background, and prebuilt statements change only the rows their
bound WHERE names."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select

from cloudd.db import prebuilt as pb
from cloudd.db import write_queue
from cloudd.db.engine import Database
from cloudd.db.write_queue import FAIR_EVERY, WriteQueue


async def _contend(queue: WriteQueue, kinds: list[str]) -> list[str]:
    """Hold the queue, line up writers of ``kinds`` in that order, release:
    the order in which they got their turns."""
    order: list[str] = []

    async def writer(name: str, api: bool) -> None:
        if api:
            write_queue.foreground()
        async with queue:
            order.append(name)
            await asyncio.sleep(0)

    await queue.acquire()
    tasks = []
    for i, kind in enumerate(kinds):
        tasks.append(asyncio.create_task(writer(f"{kind}{i}", kind == "api")))
        await asyncio.sleep(0)          # queued in this order
    queue.release()
    await asyncio.gather(*tasks)
    return order


@pytest.mark.asyncio
async def test_api_writes_go_before_a_background_backlog():
    order = await _contend(WriteQueue(), ["bg", "bg", "api", "bg", "api"])
    assert order[:2] == ["api2", "api4"]
    assert order[2:] == ["bg0", "bg1", "bg3"]


@pytest.mark.asyncio
async def test_a_waiting_background_write_gets_every_fair_turn():
    kinds = ["bg"] + ["api"] * (3 * FAIR_EVERY)
    order = await _contend(WriteQueue(), kinds)
    # The background writer waited behind at most FAIR_EVERY - 1 API writes.
    assert order.index("bg0") <= FAIR_EVERY - 1


@pytest.mark.asyncio
async def test_a_cancelled_waiter_neither_keeps_nor_loses_the_turn():
    queue = WriteQueue()
    await queue.acquire()
    waiter = asyncio.create_task(queue.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    queue.release()
    await asyncio.wait_for(queue.acquire(), 1)      # free again
    # Cancelled just as the turn was handed over: passed on, not kept.
    second = asyncio.create_task(queue.acquire())
    third = asyncio.create_task(queue.acquire())
    await asyncio.sleep(0)
    queue.release()                     # hands the turn to ``second``...
    second.cancel()                     # ...which is cancelled before it runs
    await asyncio.gather(second, return_exceptions=True)
    await asyncio.wait_for(third, 1)
    assert third.done() and not third.cancelled()


md = MetaData()
job = Table("job", md, Column("id", String(36), primary_key=True), Column("state", String(16)),
            Column("n", Integer), Column("done_at", DateTime))


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_prebuilt_statements_touch_only_the_rows_they_name(backend, database_url,
                                                                  tmp_path):
    from datetime import datetime
    db = Database(database_url(backend, tmp_path))
    try:
        async with db.write() as conn:
            await conn.run_sync(md.create_all)
            for i in range(3):
                await conn.execute(pb.insert_into(job), {"id": f"j{i}", "state": "open", "n": i})
        now = datetime(2026, 11, 28, 12, 0, 0)
        async with db.write() as conn:
            res = await conn.execute(pb.update_where(job, "id", "state", null=("done_at",)),
                                     {**pb.where(id="j1", state="open"), "state": "done",
                                      "done_at": now})
            assert res.rowcount == 1
            again = await conn.execute(pb.update_where(job, "id", "state", null=("done_at",)),
                                       {**pb.where(id="j1", state="open"), "state": "done",
                                        "done_at": now})
            assert again.rowcount == 0      # the compare-and-swap saw it moved
        async with db.read() as conn:
            rows = {r.id: r for r in await conn.execute(select(job))}
            one = (await conn.execute(pb.select_where(job, "id"), pb.where(id="j1"))).one()
        assert {k: (r.state, r.n, r.done_at) for k, r in rows.items()} == {
            "j0": ("open", 0, None), "j1": ("done", 1, now), "j2": ("open", 2, None)}
        assert one.done_at == now
    finally:
        await db.close()
