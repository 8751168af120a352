"""Group commit: concurrent small write jobs share one write transaction.

A burst of API creates (say twenty clients booting servers) is a stream of
small, independent transactions. Each one alone costs a BEGIN, its INSERTs
and a COMMIT; on SQLite it also holds the one write turn for a trip to the
database thread and back through the event loop, so the creates queue behind
each other's trips, and on PostgreSQL every statement is a round trip.

``GroupCommit.run(job)`` queues ``job`` (``async def job(batch) -> result``)
and returns its result once it has committed. Jobs queued while a
transaction is in progress go together into the next one: one write turn,
one BEGIN and one COMMIT. (On PostgreSQL a few such transactions are in
flight at once: ``parallel``.) A job adds its rows with ``batch.insert(table,
row)``; they are sent per table as one executemany, parents first (the
schema's foreign-key order), when the jobs have run or when a job asks for
``await batch.flushed()`` (the connection, after everything added so far is
in: call it before reading or writing anything else; the transaction
begins then). On SQLite the whole transaction is one trip to the database
thread (``defer_inserts``). On PostgreSQL, when no job asked for the
connection, it is one statement in autocommit mode, each table's INSERT an
``unnest`` of per-column arrays and the earlier ones data-modifying CTEs:
one round trip, its SQL the same whatever the number of rows. Otherwise it
is BEGIN, one executemany per table and COMMIT. The transaction is as
durable as any other; a job's caller hears back only after the COMMIT.

The rules a job keeps:
- It may raise one of the ``refusals`` (``ApiError``: a quota exceeded,
  say); the rows it added and did not flush are dropped, and only that job
  fails. What it wrote through the connection before (a quota lock touched)
  is committed with the others, so it refuses before writing anything that
  matters.
- Any other exception (an INSERT's IntegrityError surfaces at a later
  statement or at the COMMIT, so it may not even be raised inside the job
  that caused it) rolls the whole transaction back, and every job of it runs
  again alone, each in its own transaction, so each caller gets its own
  outcome.
- A job runs inside the shared transaction after the jobs queued before it,
  and sees their rows through ``flushed()`` (quota counts stay exact, without
  overshoot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cloudd.db import prebuilt as pb
from cloudd.db import write_queue
from cloudd.db.engine import TOUCHED
from cloudd.db.tables import metadata

log = logging.getLogger(__name__)

Job = Callable[["Batch"], Awaitable[Any]]
# Parents before children: a table's place in the schema's foreign-key order.
_ORDER = {table.name: place for place, table in enumerate(metadata.sorted_tables)}
MAX_JOBS = 200               # jobs in one transaction at most


class Batch:
    """What a job writes through: rows to add, and the shared transaction,
    opened when a job first asks for it (``flushed()``)."""

    def __init__(self, db) -> None:
        self._db = db
        self._rows: dict = {}
        self._stack = contextlib.AsyncExitStack()
        self._conn = None

    def insert(self, table, row: dict) -> None:
        self._rows.setdefault(table, []).append(row)

    def _mark(self) -> dict:
        return {table: len(rows) for table, rows in self._rows.items()}

    def _undo(self, mark: dict) -> None:
        """Drop the rows added since ``mark`` (a refused job's)."""
        for table in list(self._rows):
            del self._rows[table][mark.get(table, 0):]

    def _tables(self) -> list:
        """The tables with rows to send, parents first; tables the schema
        does not know keep the order they were first added in."""
        return sorted((table for table, rows in self._rows.items() if rows),
                      key=lambda table: _ORDER.get(table.name, len(_ORDER)))

    async def flushed(self):
        """The transaction's connection, once every row added so far has been sent."""
        if self._conn is None:
            self._conn = await self._stack.enter_async_context(
                self._db.write(defer_inserts=True))
        tables, rows = self._tables(), self._rows
        self._rows = {}
        for table in tables:
            await self._conn.execute(pb.insert_into(table), rows[table])
        return self._conn

    async def commit(self) -> None:
        """Send what is left and commit. On PostgreSQL, when no job opened
        the transaction (and each table's rows name the same columns), every
        table's rows go as one statement in autocommit mode
        (``_one_statement``): one round trip, atomic by itself."""
        async with self._stack:
            tables, rows = self._tables(), self._rows
            if self._conn is None and tables and self._db.dialect == "postgresql" and all(
                    row.keys() == rows[table][0].keys()
                    for table in tables for row in rows[table]):
                async with self._db.write(one_statement=True) as conn:
                    sql, args = _one_statement(conn.dialect, tables, rows)
                    conn.info[TOUCHED].update(table.name for table in tables)
                    await conn.exec_driver_sql(sql, tuple(args))
                self._rows = {}
                return
            await self.flushed()

    async def abandon(self, error: BaseException) -> None:
        """Roll back whatever was sent."""
        await self._stack.__aexit__(type(error), error, error.__traceback__)


class GroupCommit:
    def __init__(self, db, refusals: tuple[type[Exception], ...] = (),
                 parallel: int | None = None) -> None:
        """``parallel``: transactions in flight at once; by default 1 on
        SQLite (one writer anyway) and 4 on PostgreSQL, where a transaction
        waits on round trips that others can overlap."""
        self._db = db
        self._refusals = refusals
        self._parallel = parallel or (1 if db.dialect == "sqlite" else 4)
        self._pending: list[tuple[Job, asyncio.Future]] = []
        self._drainers: set[asyncio.Task] = set()
        self.batches = 0            # transactions committed (for tests and benchmarks)

    async def run(self, job: Job) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((job, fut))
        if len(self._drainers) < self._parallel:
            self._drainers.add(asyncio.create_task(self._drain(), name="group-commit"))
        return await fut

    async def _drain(self) -> None:
        """Commit what is pending, again and again until nothing is."""
        token = write_queue.foreground()        # the jobs are API requests' writes
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_JOBS], self._pending[MAX_JOBS:]
                await self._commit(batch)
        finally:
            write_queue.background(token)
            # At once, not in a done callback: a job queued from here on
            # must find a drainer missing and start one.
            self._drainers.discard(asyncio.current_task())

    async def _commit(self, batch: list[tuple[Job, asyncio.Future]]) -> None:
        outcomes: list[tuple[asyncio.Future, Any, BaseException | None]] = []
        try:
            await self._together(batch, outcomes)
        except Exception as error:  # noqa: BLE001 - each job then gets its own outcome
            if len(batch) == 1:
                _settle(batch[0][1], None, error)
                return
            log.info("group commit of %d jobs failed (%s); running them one by one",
                     len(batch), error)
            for job, fut in batch:
                alone: list = []
                try:
                    await self._together([(job, fut)], alone)
                except Exception as failed:  # noqa: BLE001 - handed to its caller
                    _settle(fut, None, failed)
                else:
                    _settle(*alone[0])
            return
        except BaseException as error:
            for _, fut in batch:
                _settle(fut, None, error if not isinstance(error, asyncio.CancelledError)
                        else RuntimeError("the write was cancelled"))
            raise
        self.batches += 1
        for fut, result, error in outcomes:
            _settle(fut, result, error)

    async def _together(self, batch, outcomes: list) -> None:
        """Run the jobs against one Batch and commit it."""
        shared = Batch(self._db)
        try:
            for job, fut in batch:
                mark = shared._mark()
                try:
                    outcomes.append((fut, await job(shared), None))
                except self._refusals as refused:
                    shared._undo(mark)
                    outcomes.append((fut, None, refused))
        except BaseException as error:
            await shared.abandon(error)
            raise
        await shared.commit()


_SQL_CACHE: dict = {}


def _one_statement(dialect, tables: list, rows: dict) -> tuple[str, list]:
    """PostgreSQL: one INSERT per table of ``unnest`` over one array per
    column, the earlier tables' as data-modifying CTEs (their foreign keys
    are checked at the end of the statement, so children may come later).
    The SQL depends only on the tables and columns, not on how many rows,
    so it is built and prepared once per shape. Values pass through each
    column type's bind processor, as SQLAlchemy's own INSERT would."""
    shape = tuple((table.name, tuple(rows[table][0])) for table in tables)
    built = _SQL_CACHE.get(shape)
    if built is None:
        quote = dialect.identifier_preparer.quote
        parts, procs, n = [], [], 0
        for table in tables:
            names = list(rows[table][0])
            casts = []
            for name in names:
                column = table.c[name]
                n += 1
                casts.append(f"${n}::{column.type.compile(dialect=dialect)}[]")
                procs.append(column.type.dialect_impl(dialect).bind_processor(dialect))
            parts.append(f"INSERT INTO {quote(table.name)} "
                         f"({', '.join(quote(name) for name in names)}) "
                         f"SELECT * FROM unnest({', '.join(casts)})")
        *firsts, last = parts
        sql = (("WITH " + ", ".join(f"w{i} AS ({part})" for i, part in enumerate(firsts))
                + " ") if firsts else "") + last
        built = _SQL_CACHE[shape] = (sql, procs)
    sql, procs = built
    args = []
    for table in tables:
        for name in rows[table][0]:
            args.append([row[name] for row in rows[table]])
    args = [values if proc is None else [proc(v) for v in values]
            for values, proc in zip(args, procs, strict=True)]
    return sql, args


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():                      # its caller went away (a dropped request)
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
