"""The database handle on both backends: SQLite's one-hop cursor and BEGIN
riding with the first statement keep transactions whole, SQLite writers of
one process queue, and a PostgreSQL connection the server dropped while it
sat idle in the pool is replaced before use."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from sqlalchemy import Column, Integer, MetaData, String, Table, event, select, text

from cloudd.db import engine as engine_mod
from cloudd.db.engine import Database
from cloudd.testing.scratch_db import database_with

BACKENDS = ["sqlite", "postgresql"]
md = MetaData()
item = Table("item", md, Column("id", String(36), primary_key=True), Column("n", Integer))


@pytest_asyncio.fixture(params=BACKENDS)
async def db(request, database_url, tmp_path):
    async with database_with(database_url(request.param, tmp_path), md) as database:
        yield database


@pytest.mark.asyncio
async def test_a_failed_write_leaves_nothing_and_empty_ones_are_harmless(db):
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(item.insert().values(id="a", n=1))
            assert (await conn.execute(text("SELECT count(*) FROM item"))).scalar() == 1
            raise RuntimeError("roll back")
    async with db.write():
        pass
    async with db.read():
        pass
    async with db.write() as conn:
        await conn.execute(item.insert().values(id="b", n=2))
    async with db.read() as conn:
        assert [(r.id, r.n) for r in await conn.execute(select(item))] == [("b", 2)]


@pytest.mark.asyncio
async def test_racing_read_modify_writes_lose_nothing(db):
    async with db.write() as conn:
        await conn.execute(item.insert().values(id="c", n=0))

    async def bump() -> None:
        async with db.write() as conn:
            n = (await conn.execute(select(item.c.n).where(item.c.id == "c")
                                    .with_for_update())).scalar()
            await asyncio.sleep(0)
            await conn.execute(item.update().where(item.c.id == "c").values(n=n + 1))

    await asyncio.gather(*(bump() for _ in range(30)))
    async with db.read() as conn:
        assert (await conn.execute(select(item.c.n))).scalar() == 30


@pytest.mark.asyncio
async def test_postgresql_connection_dropped_while_idle_is_replaced(db, monkeypatch):
    if db.dialect != "postgresql":
        pytest.skip("the idle ping is for server databases; SQLite has no server")
    monkeypatch.setattr(engine_mod, "PING_AFTER_IDLE", 0.0)
    async with db.read() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
    other = Database(str(db.url.render_as_string(hide_password=False)))
    try:
        async with other.write() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.close()
    await asyncio.sleep(0.2)
    async with db.read() as conn:           # the pooled connection is dead: replaced
        assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar() != pid


@pytest.mark.asyncio
async def test_one_statement_writes_commit_and_leave_the_pool_transactional(db):
    seen: list[set[str]] = []
    db.commit_hooks.append(seen.append)
    for i in range(8):                      # more than the pool holds
        async with db.write(one_statement=True) as conn:
            await conn.execute(item.insert().values(id=f"o{i}", n=i)
                               .execution_options(cloudd_note_as=("item", "other")))
    assert seen == [{"item", "other"}] * 8
    # Every pooled connection is transactional again: a failed write leaves nothing.
    for _ in range(8):
        with pytest.raises(RuntimeError):
            async with db.write() as conn:
                await conn.execute(item.insert().values(id="gone", n=0))
                raise RuntimeError("roll back")
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM item"))).scalar() == 8


@pytest.mark.asyncio
async def test_table_cache_drops_on_commits_and_never_keeps_a_straddling_load(db):
    from cloudd.db.table_cache import TableCache
    cache = TableCache(db, {"item"})
    loads = []

    async def load(conn):
        loads.append(1)
        return (await conn.execute(select(item.c.n).where(item.c.id == "a"))).scalar()

    async with db.write() as conn:
        await conn.execute(item.insert().values(id="a", n=1))
    async with db.read() as conn:
        assert await cache.get(conn, "a", load) == 1
    async with db.read() as conn:
        assert await cache.get(conn, "a", load) == 1
    assert len(loads) == 1                          # kept
    async with db.write() as conn:
        await conn.execute(item.update().values(n=2))
    async with db.read() as conn:
        assert await cache.get(conn, "a", load) == 2    # the commit dropped it
    # A load inside a transaction that changed the table itself is not kept
    # (it may roll back), and the rollback leaves the cache as it was.
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(item.update().values(n=3))
            cache.clear()
            assert await cache.get(conn, "a", load) == 3
            raise RuntimeError("roll back")
    async with db.read() as conn:
        assert await cache.get(conn, "a", load) == 2
    # A load in a transaction that began before another write committed is
    # not kept either: the next reader reads the database again.
    cache.clear()
    async with db.read() as reader:
        async with db.write() as conn:
            await conn.execute(item.update().values(n=4))
        await cache.get(reader, "a", load)
    count = len(loads)
    async with db.read() as conn:
        assert await cache.get(conn, "a", load) == 4
    assert len(loads) == count + 1
    # Commits to other tables leave it alone.
    async with db.write() as conn:
        await conn.execute(text("SELECT 1"))
    async with db.read() as conn:
        assert await cache.get(conn, "a", load) == 4
    assert len(loads) == count + 1


@pytest.mark.asyncio
async def test_deferred_inserts_commit_whole_or_not_at_all(db):
    from sqlalchemy.exc import IntegrityError
    async with db.write(defer_inserts=True) as conn:
        await conn.execute(item.insert().values(id="a", n=1))
        await conn.execute(item.insert().values(id="b", n=2))
        # A statement in between sees them (they ride with it).
        assert (await conn.execute(text("SELECT count(*) FROM item"))).scalar() == 2
        await conn.execute(item.insert().values(id="c", n=3))
    # A duplicate key among held-back INSERTs fails the commit; nothing of it stays.
    with pytest.raises(IntegrityError):
        async with db.write(defer_inserts=True) as conn:
            await conn.execute(item.insert().values(id="d", n=4))
            await conn.execute(item.insert().values(id="a", n=5))
    # Rolled back before anything was sent: nothing stays either.
    with pytest.raises(RuntimeError):
        async with db.write(defer_inserts=True) as conn:
            await conn.execute(item.insert().values(id="e", n=6))
            raise RuntimeError("roll back")
    # The connection is sound afterwards, with and without deferring.
    async with db.write(defer_inserts=True) as conn:
        await conn.execute(item.insert().values(id="f", n=7))
    async with db.write() as conn:
        await conn.execute(item.insert().values(id="g", n=8))
    async with db.read() as conn:
        assert [r.id for r in await conn.execute(select(item).order_by(item.c.id))] == \
            ["a", "b", "c", "f", "g"]


@pytest.mark.asyncio
async def test_lazy_read_takes_a_connection_only_when_it_reads(db):
    async with db.write() as conn:
        await conn.execute(item.insert().values(id="h", n=9))
    pool = db.engine.sync_engine.pool
    async with db.lazy_read() as lazy:
        assert pool.checkedout() == 0
        assert lazy.info[engine_mod.BEGIN_SEQ] == db.commit_seq
    assert pool.checkedout() == 0
    async with db.lazy_read() as lazy:
        rows = (await lazy.execute(select(item.c.n).where(item.c.id == "h"))).all()
        assert [r.n for r in rows] == [9] and pool.checkedout() == 1
    assert pool.checkedout() == 0
    with pytest.raises(RuntimeError):           # an error in the block gives it back too
        async with db.lazy_read() as lazy:
            await lazy.execute(select(item))
            raise RuntimeError("boom")
    assert pool.checkedout() == 0


@pytest.mark.asyncio
async def test_a_burst_of_thirty_reuses_its_connections_the_next_time(db):
    """A mass boot on PostgreSQL keeps up to 30 connections busy at once
    (20 API clients, the conductor's steps, the scheduler, the agent hub).
    The default pool keeps them all: a second burst of that size opens no
    connection, where one of 20 opened and closed ten each time."""
    opened = 0

    def on_connect(*_):
        nonlocal opened
        opened += 1

    event.listen(db.engine.sync_engine, "connect", on_connect)
    everyone_in = asyncio.Barrier(30)

    async def reader() -> None:
        async with db.read() as conn:
            await conn.execute(select(item.c.id))
            await everyone_in.wait()        # all 30 hold a connection at once

    await asyncio.gather(*(reader() for _ in range(30)))
    first = opened
    assert first >= 30 - 1                  # a connection may have been open already
    await asyncio.gather(*(reader() for _ in range(30)))
    assert opened == first


@pytest.mark.asyncio
async def test_a_write_cancelled_mid_statement_ends_cancelled_and_changes_nothing(db):
    """Shutting down cancels actors mid-statement. SQLAlchemy then drops the
    connection, and touching it afterwards (its ``info``) would reconnect
    outside the async bridge: MissingGreenlet in place of CancelledError, so
    an actor that retries on errors kept running and shutdown hung. On
    SQLite the statement itself is interrupted, or it runs on in the
    driver's thread holding the database."""
    slow = ("SELECT pg_sleep(5)" if db.dialect == "postgresql" else
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 1000000000) SELECT count(*) FROM c")
    started = asyncio.Event()

    async def write() -> None:
        async with db.write(defer_inserts=True) as conn:
            await conn.execute(item.insert().values(id="x", n=1))
            started.set()
            await conn.exec_driver_sql(slow)

    task = asyncio.create_task(write())
    await started.wait()
    await asyncio.sleep(0.2)
    task.cancel()
    # The cancelled statement (minutes long) stops, not holding the database.
    async with asyncio.timeout(60):
        with pytest.raises(asyncio.CancelledError):
            await task
        async with db.write() as conn:
            await conn.execute(item.insert().values(id="y", n=2))
    async with db.read() as conn:
        assert [r.id for r in await conn.execute(select(item))] == ["y"]
