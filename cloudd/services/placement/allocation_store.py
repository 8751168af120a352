"""The SQL of allocations: replace the allocations of some consumers atomically.

One write transaction does everything Placement's ``replace_all`` does, in
Placement's order (so the same request fails with the same error):

1. ``prepare``: create the consumers that should be new and lock and check
   the others (generation from 1.28; consumer type from 1.38).
2. ``check_providers``: every provider named must exist (400).
3. ``expand``: the flat list of allocations; a consumer given ``{}`` gets
   its current allocations with ``used`` 0 (meaning "remove").
4. ``apply``: lock the providers and move their generations one up (one
   UPDATE; a provider missing is the 400 of step 2), check resource classes
   (400) and capacity against everybody else's usage (409; inventories and
   usage sums in one SELECT), replace the allocations, move every consumer's
   generation one up with its project/user/type changes, and drop consumers
   left with nothing.

A claim by a new consumer is four statements: INSERT the consumer, UPDATE
the provider, SELECT inventories with usage, INSERT the allocations.

Holding the provider rows locked from the first UPDATE makes it the
compare-and-swap: nobody can move the generation or the usage of those
providers (every allocation writer and inventory writer locks them first)
until this transaction ends, and the usage is read by a statement that
starts after the lock is taken (PostgreSQL's READ COMMITTED takes a snapshot
per statement; SQLite has one writer at a time).

``write`` runs the lot in ``Database.write()`` and retries it from scratch on
a deadlock or a provider race, as Placement does
(``allocation_conflict_retry_count``).  The reshaper runs the phases itself,
with inventory changes in between, in its own transaction.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from cloudd.db import tables as t
from cloudd.services.placement import consumers, provider_store
from cloudd.services.placement.consumers import ConcurrentUpdate, ConsumerState, cached_statement
from cloudd.services.placement.errors import error
from cloudd.services.placement.util import utcnow

A, C, RP, INV, RC = t.allocation, t.consumer, t.resource_provider, t.inventory, t.resource_class

# Placement's [placement] allocation_conflict_retry_count default.
RETRY_COUNT = 10


@dataclass
class ConsumerAllocations:
    """What one consumer should hold when the write is done.

    ``allocations`` maps provider uuid -> {resource class: amount}; an empty
    dict removes everything the consumer holds.  ``project_id`` None means
    Placement's "incomplete consumer" ids (pre-1.8 requests).
    ``check_generation`` is 1.28's rule; ``consumer_type`` None (pre-1.38)
    leaves the type alone.
    """

    uuid: str
    allocations: dict[str, dict[str, int]]
    project_id: str | None = None
    user_id: str | None = None
    generation: int | None = None
    check_generation: bool = False
    consumer_type: str | None = None


@dataclass
class Alloc:
    rp: str
    consumer: str
    rc: str
    used: int


class AllocationFailure(Exception):
    """Base of the failures handlers word differently (Placement's exceptions)."""


class ResourceClassNotFound(AllocationFailure):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such resource class {name}.")


class InvalidInventory(AllocationFailure):
    def __init__(self, rc: str, rp: str, message: str | None = None) -> None:
        super().__init__(message or f"Inventory for '{rc}' on resource provider '{rp}' invalid.")
        self.rc, self.rp = rc, rp


class CapacityExceeded(InvalidInventory):
    def __init__(self, rc: str, rp: str) -> None:
        super().__init__(rc, rp, f"Unable to create allocation for '{rc}' on resource provider "
                                 f"'{rp}'. The requested amount would exceed the capacity.")


class ConstraintsViolated(InvalidInventory):
    def __init__(self, rc: str, rp: str) -> None:
        super().__init__(rc, rp, f"Unable to create allocation for '{rc}' on resource provider "
                                 f"'{rp}'. The requested amount would violate inventory "
                                 "constraints.")


class ProviderConcurrentUpdate(ConcurrentUpdate):
    default = ("Another thread concurrently updated the resource provider data. "
               "Please retry your update")


# --- writing -----------------------------------------------------------------

async def prepare(conn, writes: list[ConsumerAllocations]) -> dict[str, ConsumerState]:
    for name in sorted({w.consumer_type for w in writes if w.consumer_type}):
        await consumers.ensure_consumer_type(conn, name)
    # Consumers given no generation should be new: try to create them (one
    # INSERT for all); the rest, and any that existed after all, are locked.
    fresh = [(w.uuid, w.project_id, w.user_id, w.consumer_type)
             for w in writes if w.generation is None]
    states = await consumers.insert_consumers(conn, fresh) if fresh else {}
    rows = await consumers.lock_consumers(conn, [w.uuid for w in writes
                                                 if w.uuid not in states])
    for w in writes:
        if w.uuid in states:
            continue
        states[w.uuid] = await consumers.ensure_consumer(
            conn, w.uuid, rows.get(w.uuid), project_id=w.project_id, user_id=w.user_id,
            generation=w.generation, check_generation=w.check_generation,
            consumer_type=w.consumer_type)
    return states


async def check_providers(conn, writes: list[ConsumerAllocations]) -> None:
    found = await provider_store.get_providers(conn, [rp for w in writes for rp in w.allocations])
    for w in writes:
        for rp in w.allocations:
            if rp not in found:
                raise error(400, f"Allocation for resource provider '{rp}' that does not exist.")


async def expand(conn, writes: list[ConsumerAllocations]) -> list[Alloc]:
    out: list[Alloc] = []
    for w in writes:
        if w.allocations:
            out.extend(Alloc(rp, w.uuid, rc, used)
                       for rp, resources in w.allocations.items()
                       for rc, used in resources.items())
        else:
            rows = await conn.execute(select(A.c.resource_provider_uuid, A.c.resource_class)
                                      .where(A.c.consumer_uuid == w.uuid))
            out.extend(Alloc(r.resource_provider_uuid, w.uuid, r.resource_class, 0)
                       for r in rows)
    return out


async def apply(conn, writes: list[ConsumerAllocations], states: dict[str, ConsumerState],
                allocs: list[Alloc], bumped: bool = False) -> None:
    """(``bumped``: the providers are locked and bumped already.)"""
    rps = _unique(a.rp for a in allocs)
    classes = _unique(a.rc for a in allocs)
    if not bumped:
        await bump_providers(conn, rps)
    # Only consumers that existed before this transaction can hold allocations
    # (every allocation is written with its consumer's row).
    existing = [w.uuid for w in writes if not states[w.uuid].created]
    if allocs:
        inventory = await inventory_with_usage(conn, rps, classes, existing)
        if not set(classes) <= {rc for _, rc in inventory}:
            await _check_classes(conn, classes)
        _check_capacity(allocs, inventory, rps, classes)
    if existing:
        await conn.execute(cached_statement(conn, "delete_allocs", lambda _c: delete(A).where(
            A.c.consumer_uuid.in_(bindparam("consumers", expanding=True)))),
            {"consumers": existing})
    now = utcnow()
    rows = [{"resource_provider_uuid": a.rp, "consumer_uuid": a.consumer,
             "resource_class": a.rc, "used": a.used, "created_at": now}
            for a in allocs if a.used > 0]
    if rows:
        await conn.execute(cached_statement(conn, "insert_allocs", lambda _c: insert(A)), rows)
    for w in writes:
        await consumers.finish(conn, states[w.uuid], w.project_id, w.user_id,
                               w.consumer_type)
    holding = {a.consumer for a in allocs if a.used > 0}
    await consumers.delete_if_no_allocations(
        conn, [w.uuid for w in writes if w.uuid not in holding])


async def replace_all(conn, writes: list[ConsumerAllocations],
                      one_trip: bool = False) -> dict[str, ConsumerState]:
    """All four phases on one open write transaction (``apply`` finds the
    providers that do not exist, so step 2 costs no statement of its own).

    ``one_trip`` (PostgreSQL, one new consumer given allocations, as in a
    claim): create the consumer and lock and bump the providers in one
    statement; raises _NotAllNew when that does not hold after all.
    """
    if one_trip and len(writes) == 1 and conn.dialect.name == "postgresql" \
            and writes[0].generation is None and writes[0].allocations:
        states = await _create_and_bump(conn, writes[0])
        await apply(conn, writes, states, await expand(conn, writes), bumped=True)
        return states
    states = await prepare(conn, writes)
    allocs = await expand(conn, writes)
    await apply(conn, writes, states, allocs)
    return states


class _NotAllNew(Exception):
    """The consumer thought new exists, or a provider is missing: the general
    path runs instead (and finds the right error, in Placement's order)."""


def _create_and_bump_statement(conn, many: bool):
    def build(_c):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        made = (pg_insert(C).values({name: bindparam(f"c_{name}") for name in (
                    "uuid", "project_id", "user_id", "generation", "consumer_type",
                    "created_at")})
                .on_conflict_do_nothing().returning(C.c.uuid).cte("made"))
        wanted = RP.c.uuid.in_(bindparam("rps", expanding=True))
        if many:                # lock in uuid order, as bump_providers
            wanted = RP.c.uuid.in_(select(RP.c.uuid).where(wanted).order_by(RP.c.uuid)
                                   .with_for_update())
        return (update(RP).where(wanted)
                .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
                .returning(RP.c.uuid, select(func.count()).select_from(made)
                           .scalar_subquery().label("made"))
                .add_cte(made)
                .execution_options(cloudd_note_as=("consumer", "resource_provider.generation")))
    return cached_statement(conn, f"create_and_bump_many={many}", build)


async def _create_and_bump(conn, w: ConsumerAllocations) -> dict[str, ConsumerState]:
    if w.consumer_type:
        await consumers.ensure_consumer_type(conn, w.consumer_type)
    rows = consumers.new_rows([(w.uuid, w.project_id, w.user_id, w.consumer_type)])
    rps = sorted(w.allocations)
    params = {f"c_{k}": v for k, v in rows[0].items()}
    params.update(rps=rps, now=utcnow())
    found = (await conn.execute(_create_and_bump_statement(conn, len(rps) > 1),
                                params)).all()
    if len(found) != len(rps) or any(r.made != 1 for r in found):
        raise _NotAllNew()
    return consumers.created_states(rows)


async def write(db, writes: list[ConsumerAllocations],
                retries: int = RETRY_COUNT) -> dict[str, ConsumerState]:
    """``replace_all`` in its own transaction, retried on a provider race
    (and once more, on the general path, when the one-trip claim does not
    apply after all)."""
    one_trip, attempts = True, 0
    while attempts < max(1, retries):
        try:
            async with db.write() as conn:
                return await replace_all(conn, writes, one_trip)
        except _NotAllNew:
            one_trip = False
            continue
        except ProviderConcurrentUpdate:
            pass
        except DBAPIError as exc:
            if not retryable(exc):
                raise
        attempts += 1
    raise ProviderConcurrentUpdate()


def retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialisation failure (PostgreSQL), or a busy SQLite."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in ("40P01", "40001") or "database is locked" in str(orig)


async def lock_providers(conn, uuids: list[str]) -> dict[str, int]:
    """Lock the providers' rows (sorted, so writers never deadlock) -> generations."""
    if not uuids:
        return {}
    rows = await conn.execute(select(RP.c.uuid, RP.c.generation)
                              .where(RP.c.uuid.in_(sorted(uuids)))
                              .order_by(RP.c.uuid).with_for_update())
    found = {r.uuid: r.generation for r in rows}
    for rp in uuids:
        if rp not in found:       # deleted since check_providers (PostgreSQL only)
            raise error(400, f"Allocation for resource provider '{rp}' that does not exist.")
    return found


def _bump_statement(conn, many: bool):
    def build(c):
        wanted = RP.c.uuid.in_(bindparam("rps", expanding=True))
        if many and c.dialect.name == "postgresql":
            # Lock in uuid order, the order every writer uses: no deadlocks.
            wanted = RP.c.uuid.in_(select(RP.c.uuid).where(wanted).order_by(RP.c.uuid)
                                   .with_for_update())
        return (update(RP).where(wanted)
                .values(generation=RP.c.generation + 1, updated_at=bindparam("now"))
                .returning(RP.c.uuid, RP.c.generation)
                # Generations are not in the candidate index: not a change it follows.
                .execution_options(cloudd_note_as="resource_provider.generation"))
    return cached_statement(conn, f"bump_many={many}", build)


async def bump_providers(conn, uuids: list[str]) -> dict[str, int]:
    """Lock the providers and move each generation one up, in one statement
    -> {uuid: new generation}. A provider that does not exist is a 400."""
    if not uuids:
        return {}
    rows = await conn.execute(_bump_statement(conn, len(uuids) > 1),
                              {"rps": sorted(uuids), "now": utcnow()})
    found = {r.uuid: r.generation for r in rows}
    for rp in uuids:
        if rp not in found:
            raise error(400, f"Allocation for resource provider '{rp}' that does not exist.")
    return found


def _inventory_statement(conn, others: bool):
    def build(_c):
        def used(*where):
            return (select(func.coalesce(func.sum(A.c.used), 0))
                    .where(A.c.resource_provider_uuid == INV.c.resource_provider_uuid,
                           A.c.resource_class == INV.c.resource_class, *where)
                    .scalar_subquery())
        columns = [INV.c.resource_provider_uuid, INV.c.resource_class, INV.c.total,
                   INV.c.reserved, INV.c.min_unit, INV.c.max_unit, INV.c.step_size,
                   INV.c.allocation_ratio, used().label("used")]
        if others:
            columns.append(used(A.c.consumer_uuid.not_in(
                bindparam("consumers", expanding=True))).label("others"))
        return select(*columns).where(
            INV.c.resource_provider_uuid.in_(bindparam("rps", expanding=True)),
            INV.c.resource_class.in_(bindparam("classes", expanding=True)))
    return cached_statement(conn, f"inventory_others={others}", build)


async def inventory_with_usage(conn, rps: list[str], classes: list[str],
                               consumers_: list[str]) -> dict[tuple[str, str], Any]:
    """{(provider, class): inventory row} with ``used`` (everybody's usage) and
    ``others`` (the usage of all but ``consumers_``)."""
    params: dict[str, Any] = {"rps": rps, "classes": classes}
    if consumers_:
        params["consumers"] = consumers_
    rows = await conn.execute(_inventory_statement(conn, bool(consumers_)), params)
    out = {}
    for r in rows:
        used = int(r.used)
        out[(r.resource_provider_uuid, r.resource_class)] = _Inventory(
            r.total, r.reserved, r.min_unit, r.max_unit, r.step_size, r.allocation_ratio,
            used, int(r.others) if consumers_ else used)
    return out


@dataclass
class _Inventory:
    total: int
    reserved: int
    min_unit: int
    max_unit: int
    step_size: int
    allocation_ratio: float
    used: int        # everybody's, before this write
    others: int      # all but the consumers being written


async def _check_classes(conn, classes: list[str]) -> None:
    if not classes:
        return
    rows = await conn.execute(select(RC.c.name).where(RC.c.name.in_(classes)))
    known = {r.name for r in rows}
    for name in classes:
        if name not in known:
            raise ResourceClassNotFound(name)


def _check_capacity(allocs: list[Alloc], inventory: dict[tuple[str, str], _Inventory],
                    rps: list[str], classes: list[str]) -> None:
    """Placement's _check_capacity_exceeded, against usage without these consumers."""
    with_inventory = {rp for rp, _ in inventory}
    missing = [rp for rp in rps if rp not in with_inventory]
    if missing:
        raise InvalidInventory(", ".join(classes), ", ".join(missing))
    wanted: dict[tuple[str, str], int] = collections.defaultdict(int)
    for a in allocs:
        key = (a.rp, a.rc)
        wanted[key] += a.used
        if a.used == 0:
            continue
        inv = inventory.get(key)
        if inv is None:
            raise InvalidInventory(a.rc, a.rp)
        if a.used < inv.min_unit or a.used > inv.max_unit or a.used % inv.step_size:
            raise ConstraintsViolated(a.rc, a.rp)
        used = inv.others
        capacity = (inv.total - inv.reserved) * inv.allocation_ratio
        # Over capacity is still fine when it is no worse than before.
        if (capacity < used + a.used or capacity < used + wanted[key]) \
                and (not inv.used or used + wanted[key] > inv.used):
            raise CapacityExceeded(a.rc, a.rp)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


async def delete_all(db, consumer_uuid: str) -> bool:
    """Remove a consumer's allocations (and the consumer); False if it had none.

    Like Placement, this bumps no generation: freeing capacity cannot break
    anybody's assumptions.
    """
    if db.dialect == "postgresql":
        # Both deletes in one statement, sent alone: one round trip.
        async with db.write(one_statement=True) as conn:
            row = (await conn.execute(cached_statement(conn, "delete_all", _delete_all),
                                      {"consumer": consumer_uuid})).one()
        return bool(row.allocations)
    async with db.write() as conn:
        result = await conn.execute(cached_statement(conn, "delete_consumer_allocs", lambda _c: delete(A)
                                          .where(A.c.consumer_uuid == bindparam("consumer"))),
                                    {"consumer": consumer_uuid})
        if not result.rowcount:
            return False
        await consumers.delete_if_no_allocations(conn, [consumer_uuid])
    return True


def _delete_all(_conn):
    """delete_all's PostgreSQL statement: the allocations, then the consumer
    if they were its (every allocation is written with its consumer's row,
    so then it has none left) -> (allocations, consumers) deleted."""
    gone = (delete(A).where(A.c.consumer_uuid == bindparam("consumer"))
            .returning(A.c.consumer_uuid).cte("gone"))
    dropped = (delete(C).where(C.c.uuid == bindparam("consumer"),
                               exists(select(gone.c.consumer_uuid)))
               .returning(C.c.uuid).cte("dropped"))
    return (select(select(func.count()).select_from(gone).scalar_subquery().label("allocations"),
                   select(func.count()).select_from(dropped).scalar_subquery()
                   .label("consumers"))
            .execution_options(cloudd_note_as=("allocation", "consumer")))


# --- reading -----------------------------------------------------------------

async def for_consumer(conn, consumer_uuid: str) -> list[Any]:
    rows = await conn.execute(
        select(A.c.resource_provider_uuid, A.c.resource_class, A.c.used, A.c.created_at,
               A.c.updated_at, RP.c.generation.label("rp_generation"), C.c.project_id,
               C.c.user_id, C.c.generation.label("consumer_generation"), C.c.consumer_type)
        .select_from(A.join(RP, RP.c.uuid == A.c.resource_provider_uuid)
                     .outerjoin(C, C.c.uuid == A.c.consumer_uuid))
        .where(A.c.consumer_uuid == consumer_uuid)
        .order_by(A.c.resource_provider_uuid, A.c.resource_class))
    return rows.all()


async def for_provider(conn, rp_uuid: str) -> list[Any]:
    rows = await conn.execute(
        select(A.c.consumer_uuid, A.c.resource_class, A.c.used, A.c.created_at,
               A.c.updated_at, C.c.generation.label("consumer_generation"))
        .select_from(A.outerjoin(C, C.c.uuid == A.c.consumer_uuid))
        .where(A.c.resource_provider_uuid == rp_uuid)
        .order_by(A.c.consumer_uuid, A.c.resource_class))
    return rows.all()


def consumer_body(rows: list[Any], version: tuple[int, int]) -> dict:
    """GET /allocations/{consumer_uuid}'s body at ``version``."""
    allocations: dict[str, dict] = {}
    for r in rows:
        entry = allocations.setdefault(r.resource_provider_uuid,
                                       {"generation": r.rp_generation, "resources": {}})
        entry["resources"][r.resource_class] = r.used
    body: dict[str, Any] = {"allocations": allocations}
    if rows and version >= (1, 12):
        first = rows[0]
        body["project_id"] = first.project_id
        body["user_id"] = first.user_id
        if version >= (1, 28):
            body["consumer_generation"] = first.consumer_generation
        if version >= (1, 38):
            body["consumer_type"] = first.consumer_type or consumers.UNKNOWN_TYPE
    return body


def provider_body(rows: list[Any], generation: int, version: tuple[int, int]) -> dict:
    """GET /resource_providers/{uuid}/allocations's body at ``version``."""
    allocations: dict[str, dict] = {}
    for r in rows:
        entry = allocations.setdefault(r.consumer_uuid, {"resources": {}})
        entry["resources"][r.resource_class] = r.used
        if version >= (1, 28):
            entry["consumer_generation"] = r.consumer_generation
    return {"allocations": allocations, "resource_provider_generation": generation}


def last_modified(rows: list[Any]) -> dt.datetime | None:
    stamps = [r.updated_at or r.created_at for r in rows]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else None
