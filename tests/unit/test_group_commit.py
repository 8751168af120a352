"""Group commit on both backends: creates arriving together share one
transaction, a refused job fails alone and leaves no rows, a job whose rows
break a constraint fails alone after the others are retried one by one, and
a job that counts sees the rows of the jobs before it."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from sqlalchemy import (
    Column,
    ForeignKey,
    MetaData,
    String,
    Table,
    event,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from cloudd.db.group_commit import GroupCommit
from cloudd.testing.scratch_db import database_with

BACKENDS = ["sqlite", "postgresql"]
md = MetaData()
parent = Table("gc_parent", md, Column("id", String(36), primary_key=True))
child = Table("gc_child", md, Column("id", String(36), primary_key=True),
              Column("parent_id", String(36), ForeignKey("gc_parent.id"), nullable=False))


class Refused(Exception):
    pass


@pytest_asyncio.fixture(params=BACKENDS)
async def db(request, database_url, tmp_path):
    async with database_with(database_url(request.param, tmp_path), md) as database:
        yield database


def adder(name: str, children: int = 1):
    async def job(batch):
        batch.insert(parent, {"id": name})
        for n in range(children):
            batch.insert(child, {"id": f"{name}.{n}", "parent_id": name})
        return name
    return job


async def ids(db, table) -> list[str]:
    async with db.read() as conn:
        return [r.id for r in await conn.execute(select(table).order_by(table.c.id))]


@pytest.mark.asyncio
async def test_jobs_arriving_together_commit_together(db):
    group = GroupCommit(db)
    names = [f"p{n:02d}" for n in range(20)]
    sent: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: sent.append(statement))
    results = await asyncio.gather(*(group.run(adder(name, 2)) for name in names))
    assert results == names
    assert group.batches == 1           # all twenty queued before the first began
    if db.dialect == "postgresql":      # one statement; the parents' INSERT a CTE
        assert len(sent) == 1 and sent[0].startswith("WITH")
    else:                               # one executemany per table
        assert len(sent) == 2
    assert await ids(db, parent) == names
    assert len(await ids(db, child)) == 40
    # One at a time, each is a transaction of its own.
    for name in ("s1", "s2", "s3"):
        assert await group.run(adder(name)) == name
    assert group.batches == 4


@pytest.mark.asyncio
async def test_a_refused_job_fails_alone_and_leaves_nothing(db):
    group = GroupCommit(db, refusals=(Refused,))

    async def refusing(batch):
        batch.insert(parent, {"id": "no"})
        raise Refused("over quota")

    outcomes = await asyncio.gather(group.run(adder("a")), group.run(adder("b")),
                                    group.run(refusing), group.run(adder("c")),
                                    return_exceptions=True)
    assert outcomes[:2] == ["a", "b"] and outcomes[3] == "c"
    assert isinstance(outcomes[2], Refused)
    assert await ids(db, parent) == ["a", "b", "c"]


@pytest.mark.asyncio
async def test_a_job_breaking_a_constraint_fails_alone(db):
    group = GroupCommit(db)
    await group.run(adder("taken"))
    outcomes = await asyncio.gather(group.run(adder("x")), group.run(adder("y")),
                                    group.run(adder("taken")), group.run(adder("z")),
                                    return_exceptions=True)
    assert outcomes[:2] == ["x", "y"] and outcomes[3] == "z"
    assert isinstance(outcomes[2], IntegrityError)
    assert await ids(db, parent) == ["taken", "x", "y", "z"]
    assert await ids(db, child) == ["taken.0", "x.0", "y.0", "z.0"]


@pytest.mark.asyncio
async def test_a_counting_job_sees_the_jobs_before_it(db):
    """What quota enforcement relies on: no overshoot within a shared commit."""
    group = GroupCommit(db, refusals=(Refused,))
    limit = 5

    def bounded(name: str):
        async def job(batch):
            conn = await batch.flushed()
            used = (await conn.execute(select(func.count()).select_from(parent))).scalar()
            if used + 1 > limit:
                raise Refused(name)
            batch.insert(parent, {"id": name})
            return name
        return job

    outcomes = await asyncio.gather(*(group.run(bounded(f"q{n:02d}")) for n in range(12)),
                                    return_exceptions=True)
    assert sum(isinstance(o, Refused) for o in outcomes) == 12 - limit
    assert len(await ids(db, parent)) == limit
