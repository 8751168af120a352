"""SQL about resource providers that several Placement handlers share.

Everything here takes an open connection (from ``Database.read()`` or
``Database.write()``) and runs inside the caller's transaction; nothing here
commits.  Errors are raised as Placement's own (``errors.error``) so a handler
can let them through unchanged.

The generation protocol (ARCHITECTURE rule 2): a handler that changes what a
provider has (inventory, allocations, traits, aggregates) reads the provider's
generation, does its checks, and then calls ``bump_generation(conn, uuid,
expected)`` in the same transaction.  That is a compare-and-swap
``UPDATE ... WHERE generation = :expected``; a lost race raises 409
``placement.concurrent_update`` and the transaction is rolled back by the
caller's ``async with db.write()`` block.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update

from cloudd.db import tables as t
from cloudd.services.placement.errors import CONCURRENT_UPDATE, error
from cloudd.services.placement.util import utcnow

RP = t.resource_provider

CONCURRENT_DETAIL = ("Another thread concurrently updated the data. "
                     "Please retry your update")


def not_found_detail(uuid: str) -> str:
    """Placement's usual 404 words for a missing provider."""
    return f"No resource provider with uuid {uuid} found"


async def find_provider(conn, uuid: str) -> Any | None:
    """The resource_provider row for ``uuid``, or None."""
    return (await conn.execute(select(RP).where(RP.c.uuid == uuid))).first()


async def get_provider(conn, uuid: str, detail: str | None = None) -> Any:
    """The resource_provider row for ``uuid``; 404 when there is none.

    The row has uuid, name, generation, root_provider_uuid,
    parent_provider_uuid, created_at, updated_at.  ``detail`` overrides the
    404 text (Placement's handlers word it slightly differently; the default
    is ``No resource provider with uuid <uuid> found``).
    """
    row = await find_provider(conn, uuid)
    if row is None:
        raise error(404, detail or not_found_detail(uuid))
    return row


async def lock_provider(conn, uuid: str, detail: str | None = None) -> Any:
    """``get_provider`` holding the row lock (``SELECT ... FOR UPDATE``) to the
    transaction's end.

    Writers on one provider then queue on PostgreSQL the way ``BEGIN
    IMMEDIATE`` makes them queue on SQLite (where FOR UPDATE is a no-op), so
    the loser reads the winner's generation and gets a clean 409 instead of,
    say, a duplicate-key error.  Writers that lock several providers lock them
    in uuid order (see ``lock_trees``) to stay deadlock-free.
    """
    row = (await conn.execute(select(RP).where(RP.c.uuid == uuid)
                              .with_for_update())).first()
    if row is None:
        raise error(404, detail or not_found_detail(uuid))
    return row


async def lock_trees(conn, roots: Iterable[str]) -> None:
    """Row-lock every provider in the trees rooted at ``roots``, in uuid order."""
    wanted = sorted(set(roots))
    if wanted:
        await conn.execute(select(RP.c.uuid).where(RP.c.root_provider_uuid.in_(wanted))
                           .order_by(RP.c.uuid).with_for_update())


async def get_providers(conn, uuids: Iterable[str]) -> dict[str, Any]:
    """Rows for the uuids that exist, keyed by uuid (missing ones are absent)."""
    wanted = list(set(uuids))
    if not wanted:
        return {}
    rows = (await conn.execute(select(RP).where(RP.c.uuid.in_(wanted)))).all()
    return {r.uuid: r for r in rows}


async def bump_generation(conn, uuid: str, expected: int,
                          detail: str | None = None) -> int:
    """Compare-and-swap the provider's generation from ``expected`` to +1.

    Returns the new generation.  Raises 409 ``placement.concurrent_update``
    (with ``detail``, default Placement's "Another thread concurrently updated
    the data. Please retry your update") when the provider's generation is no
    longer ``expected`` — or when the provider is gone.
    """
    result = await conn.execute(
        update(RP).where(RP.c.uuid == uuid, RP.c.generation == expected)
        .values(generation=expected + 1, updated_at=utcnow()))
    if result.rowcount != 1:
        raise error(409, detail or CONCURRENT_DETAIL, CONCURRENT_UPDATE)
    return expected + 1


async def increment_generation(conn, uuid: str, detail: str | None = None) -> int:
    """Read the current generation and compare-and-swap it one up.

    For writers that did not get a generation from the client (for example
    allocations touching every provider they consume from).  A concurrent
    writer in between still makes this a 409 rather than a lost update.
    """
    row = await get_provider(conn, uuid)
    return await bump_generation(conn, uuid, row.generation, detail)


def check_generation(row: Any, given: int, detail: str | None = None) -> None:
    """409 ``placement.concurrent_update`` unless the client's generation matches.

    An early check before doing work; ``bump_generation`` remains the one that
    guards against races.
    """
    if row.generation != given:
        raise error(409, detail or CONCURRENT_DETAIL, CONCURRENT_UPDATE)


async def tree_uuids(conn, root_uuid: str) -> list[str]:
    """Every provider uuid in the tree whose root is ``root_uuid``."""
    rows = await conn.execute(select(RP.c.uuid).where(RP.c.root_provider_uuid == root_uuid))
    return [r.uuid for r in rows]


async def descendants(conn, uuid: str) -> set[str]:
    """Uuids of every provider below ``uuid`` (not including itself)."""
    row = await get_provider(conn, uuid)
    rows = (await conn.execute(
        select(RP.c.uuid, RP.c.parent_provider_uuid)
        .where(RP.c.root_provider_uuid == row.root_provider_uuid))).all()
    children: dict[str, list[str]] = {}
    for r in rows:
        children.setdefault(r.parent_provider_uuid, []).append(r.uuid)
    found: set[str] = set()
    stack = [uuid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found
