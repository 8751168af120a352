"""SQL about Placement consumers: find-or-create, generation checks, clean-up.

Everything runs on the caller's connection, inside its write transaction.
Consumer rows are read ``FOR UPDATE`` (a no-op on SQLite, whose writers are
already serialised by ``BEGIN IMMEDIATE``), so on PostgreSQL two writers for
the same consumer queue instead of racing.  Lock order for every allocation
writer is: consumers (sorted by uuid), then resource providers (sorted).

A consumer this transaction creates is inserted as it will be when the write
ends (generation 1, its project, user and type), so ``finish`` needs no
further statement for it; Placement creates it at 0 and increments it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, select, update

from cloudd.db import tables as t
from cloudd.services.placement.errors import CONCURRENT_UPDATE, error
from cloudd.services.placement.util import utcnow

C = t.consumer
A = t.allocation

# Placement's [placement] incomplete_consumer_project_id / _user_id defaults:
# what a pre-1.8 PUT (which names no project or user) is recorded under.
INCOMPLETE_PROJECT_ID = "00000000-0000-0000-0000-000000000000"
INCOMPLETE_USER_ID = "00000000-0000-0000-0000-000000000000"
# A consumer whose consumer_type is NULL shows as this from 1.38 on.
UNKNOWN_TYPE = "unknown"


class ConcurrentUpdate(Exception):
    """A generation compare-and-swap lost (Placement's ConcurrentUpdateDetected)."""

    default = "Another thread concurrently updated the data. Please retry your update"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default)


@dataclass
class ConsumerState:
    """A consumer as this transaction found (or made) it.

    ``created``: this transaction inserted the row, already at
    ``generation + 1`` and with its final project, user and type.
    """

    uuid: str
    project_id: str
    user_id: str
    generation: int
    consumer_type: str | None
    created: bool = False


def _insert_ignoring_duplicates(conn, table, values: dict | None = None):
    """INSERT ... ON CONFLICT DO NOTHING: a racing writer's row wins quietly.
    Without ``values`` the statement takes a list of rows at execution."""
    # Imported here: only the dialect in use is loaded (PostgreSQL's is 2 MB).
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    if values is not None:
        stmt = stmt.values(**values)
    return stmt.on_conflict_do_nothing()


# Consumer types known to be committed, per engine: a type row is never
# deleted, so one seen once need not be inserted again.
_KNOWN_TYPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STATEMENTS: dict = {}


def cached_statement(conn, name: str, build):
    """A statement built once per dialect (building costs more than running)."""
    key = (conn.dialect.name, name)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build(conn)
    return stmt


async def ensure_consumer_type(conn, name: str) -> None:
    known = _KNOWN_TYPES.setdefault(conn.sync_engine, set())
    if name in known:
        return
    result = await conn.execute(_insert_ignoring_duplicates(
        conn, t.consumer_type, {"name": name, "created_at": utcnow()}))
    if result.rowcount == 0:        # it was there, committed (not only in this transaction)
        known.add(name)


async def lock_consumers(conn, uuids: Iterable[str]) -> dict[str, Any]:
    """The consumer rows that exist for ``uuids``, locked, keyed by uuid."""
    wanted = sorted(set(uuids))
    if not wanted:
        return {}
    stmt = cached_statement(conn, "lock", lambda _c: select(C).where(
        C.c.uuid.in_(bindparam("uuids", expanding=True))).order_by(C.c.uuid).with_for_update())
    rows = (await conn.execute(stmt, {"uuids": wanted})).all()
    return {r.uuid: r for r in rows}


async def insert_consumers(conn, new: list[tuple[str, str | None, str | None, str | None]]
                           ) -> dict[str, ConsumerState]:
    """Create the consumers of ``new`` (uuid, project_id, user_id, consumer_type)
    that do not exist yet, in one statement, sorted by uuid (the lock order).

    Returns the states of those this statement created; one that already
    existed (or that a racing writer made first) is left out, for the caller
    to lock and check.  Their consumer types must exist already.
    """
    rows = new_rows(new)
    stmt = cached_statement(conn, "insert", lambda c: _insert_ignoring_duplicates(c, C)
                            .returning(C.c.uuid))
    made = {r.uuid for r in await conn.execute(stmt, rows[0] if len(rows) == 1 else rows)}
    return created_states([r for r in rows if r["uuid"] in made])


def new_rows(new: list[tuple[str, str | None, str | None, str | None]]) -> list[dict]:
    """The rows ``insert_consumers`` inserts for ``new``, sorted by uuid."""
    now = utcnow()
    rows = []
    for uuid, project_id, user_id, consumer_type in sorted(new):
        if project_id is None:
            project_id, user_id = INCOMPLETE_PROJECT_ID, INCOMPLETE_USER_ID
        rows.append({"uuid": uuid, "project_id": project_id, "user_id": user_id,
                     "generation": 1, "consumer_type": consumer_type, "created_at": now})
    return rows


def created_states(rows: list[dict]) -> dict[str, ConsumerState]:
    return {r["uuid"]: ConsumerState(r["uuid"], r["project_id"], r["user_id"], 0,
                                     r["consumer_type"], created=True) for r in rows}


def generation_conflict(expected: Any, given: Any):
    shown = "null" if expected is None else expected
    return error(409, f"consumer generation conflict - expected {shown} but got {given}",
                 CONCURRENT_UPDATE)


async def ensure_consumer(conn, uuid: str, row: Any | None, *, project_id: str | None,
                          user_id: str | None, generation: int | None,
                          check_generation: bool, consumer_type: str | None
                          ) -> ConsumerState:
    """Placement's ensure_consumer: check the generation, create when missing.

    ``row`` is the consumer's locked row (None when there is none).  With
    ``check_generation`` (1.28+) the client's generation must match the
    row's, or be null for a consumer that does not exist yet.  The consumer
    type (1.38+) must exist already (``ensure_consumer_type``).  Project and
    user changes are applied by ``finish``.
    """
    if row is not None:
        if check_generation and row.generation != generation:
            raise generation_conflict(row.generation, generation)
        return ConsumerState(uuid, row.project_id, row.user_id, row.generation,
                             row.consumer_type)
    if check_generation and generation is not None:
        raise generation_conflict(None, generation)
    made = await insert_consumers(conn, [(uuid, project_id, user_id, consumer_type)])
    if uuid in made:
        return made[uuid]
    # A writer that created the same consumer concurrently (PostgreSQL) wins:
    # use its row, as Placement does on ConsumerExists.
    found = (await lock_consumers(conn, [uuid]))[uuid]
    return ConsumerState(uuid, found.project_id, found.user_id, found.generation,
                         found.consumer_type)


async def finish(conn, state: ConsumerState, project_id: str | None, user_id: str | None,
                 consumer_type: str | None) -> None:
    """The end of a write for a consumer: its generation one up (compare-and-swap),
    with a changed project/user (and, from 1.38, type) in the same statement."""
    if state.created:            # inserted as it ends (see the module's doc)
        state.generation += 1
        return
    if project_id is None:
        project_id, user_id = INCOMPLETE_PROJECT_ID, INCOMPLETE_USER_ID
    values: dict[str, Any] = {}
    if (project_id, user_id) != (state.project_id, state.user_id):
        values.update(project_id=project_id, user_id=user_id)
    if consumer_type and consumer_type != state.consumer_type:
        values["consumer_type"] = consumer_type
    result = await conn.execute(
        update(C).where(C.c.uuid == state.uuid, C.c.generation == state.generation)
        .values(generation=state.generation + 1, updated_at=utcnow(), **values))
    if result.rowcount != 1:
        raise ConcurrentUpdate()
    state.generation += 1
    state.project_id = values.get("project_id", state.project_id)
    state.user_id = values.get("user_id", state.user_id)
    state.consumer_type = values.get("consumer_type", state.consumer_type)


async def delete_if_no_allocations(conn, uuids: Iterable[str]) -> None:
    """Drop the consumer rows of ``uuids`` that no allocation refers to any more."""
    wanted = list(set(uuids))
    if not wanted:
        return
    stmt = cached_statement(conn, "drop", lambda _c: delete(C).where(and_(
        C.c.uuid.in_(bindparam("uuids", expanding=True)),
        ~exists().where(A.c.consumer_uuid == C.c.uuid))))
    await conn.execute(stmt, {"uuids": wanted})
