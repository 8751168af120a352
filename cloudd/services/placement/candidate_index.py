"""An in-memory index of every provider, for allocation candidates.

cloudd is the one process that writes Placement's tables, so it can answer
GET /allocation_candidates from memory: providers and their trees,
inventories with usage, traits and aggregates, loaded from the database on
first use and kept current by the database's commit hooks (Database.write
reports the tables each committed transaction changed):

* a committed change to allocations only re-reads the usage sums;
* any other change to a provider, inventory, trait, aggregate, trait or
  resource class name re-reads everything.

Both happen lazily, on the next search, under one lock, and before the
writing request has answered (the hook runs right after commit), so a client
reads its own writes. A snapshot loaded while a write commits is tagged with
the epoch seen before loading, so that write makes it stale at once.

The database stays the truth: a claim checks generations and capacity there
(allocation_store), so a stale index can only offer a stale candidate, never
over-allocate.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from sqlalchemy import BigInteger, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t
from cloudd.services.placement.candidate_db import (
    ALLOC,
    INV,
    RP,
    RPA,
    RPT,
    SHARES,
    Inv,
    Snapshot,
    Summary,
)
from cloudd.services.placement.listparam import statement

# Tables whose committed changes the index follows; a change to allocations
# alone only moves usage.
WATCHED = frozenset({"resource_provider", "inventory", "allocation",
                     "resource_provider_trait", "resource_provider_aggregate",
                     "trait", "resource_class"})
USAGE_ONLY = frozenset({"allocation"})

_ATTR = "_placement_candidate_index"
# How many (class, amount) sets of fitting providers a snapshot keeps.
FITTING_KEPT = 64


class IndexedSnapshot(Snapshot):
    """A Snapshot of everything (every class, trait and aggregate), plus the
    trees and the trait order that provider summaries need."""

    def __init__(self) -> None:
        super().__init__()
        self.trees: dict[str, list[str]] = {}           # root -> its providers
        self.ordered: list[str] = []                    # every provider, by uuid
        self.trait_members: dict[str, set[str]] = {}    # trait -> providers with it
        self.standard: set[str] = set()                 # standard trait names
        self._sorted_traits: dict[str, list[str]] = {}
        self._has_trees = False
        # Derived from usage, so cleared when it changes (usage_changed):
        # rendered provider summaries, (with the tree, 1.29 on) -> provider -> the
        # JSON of '"uuid": {...}' (candidates.render_json)...
        self.summary_json: dict[bool, dict[str, str]] = {}
        # ...and (class, amount) -> the providers it fits on.
        self._fitting: dict[tuple[str, int], set[str]] = {}

    def usage_changed(self) -> None:
        self.summary_json.clear()
        self._fitting.clear()

    def providers_fitting(self, rc: str, amount: int) -> set[str]:
        """The providers with inventory of ``rc`` that ``amount`` more fits on
        (Inv.fits). The set is the index's own: do not change it."""
        key = (rc, amount)
        found = self._fitting.get(key)
        if found is None:
            if len(self._fitting) >= FITTING_KEPT:
                self._fitting.clear()
            found = self._fitting[key] = {
                rp for rp, inv in self.inventories.get(rc, {}).items() if inv.fits(amount)}
        return found

    @property
    def has_trees(self) -> bool:
        return self._has_trees

    def sorted_traits(self, rp: str) -> list[str]:
        """The provider's traits as Placement lists them (by id: the
        standard ones, made first, before the custom ones)."""
        out = self._sorted_traits.get(rp)
        if out is None:
            standard = self.standard
            out = self._sorted_traits[rp] = sorted(
                self.traits.get(rp, ()), key=lambda n: (n not in standard, n))
        return out

    def summaries(self, roots) -> dict[str, Summary]:
        """Every provider in the trees under ``roots``, as load_summaries
        gives them."""
        out: dict[str, Summary] = {}
        providers, by_provider, trees = self.providers, self.by_provider, self.trees
        empty: dict = {}
        for root in roots:
            for rp in trees.get(root, ()):
                parent = providers[rp][1]
                out[rp] = Summary(rp, root, parent, by_provider.get(rp, empty),
                                  self.sorted_traits(rp))
        return out


class CandidateIndex:
    """One per Database (see :func:`of`)."""

    def __init__(self, db) -> None:
        self.db = db
        self.snap: IndexedSnapshot | None = None
        self.epoch = 0          # bumped by every watched commit
        self.loaded = -1        # the epoch self.snap reflects
        self.structural = True  # a change beyond usage is pending
        self.lock = asyncio.Lock()
        db.commit_hooks.append(self._committed)

    def _committed(self, tables: set[str]) -> None:
        hit = WATCHED.intersection(tables)
        if not hit:
            return
        self.epoch += 1
        if not hit <= USAGE_ONLY:
            self.structural = True

    async def snapshot(self) -> IndexedSnapshot:
        snap = self.snap
        if snap is not None and self.loaded == self.epoch:
            return snap
        async with self.lock:
            if self.snap is not None and self.loaded == self.epoch:
                return self.snap
            target = self.epoch
            full = self.structural or self.snap is None
            self.structural = False
            try:
                async with _snapshot_read(self.db) as conn:
                    if full:
                        snap = await load_everything(conn)
                    else:
                        snap = self.snap
                        await reload_usage(conn, snap)
            except BaseException:
                self.structural = True
                raise
            self.snap, self.loaded = snap, target
            return snap


def of(db) -> CandidateIndex:
    """The index of ``db`` (made on first use)."""
    index = getattr(db, _ATTR, None)
    if index is None:
        index = CandidateIndex(db)
        setattr(db, _ATTR, index)
    return index


class _snapshot_read:
    """A read transaction that sees one state for all its statements
    (REPEATABLE READ on PostgreSQL; a SQLite read transaction already does)."""

    def __init__(self, db) -> None:
        self.db = db

    async def __aenter__(self) -> AsyncConnection:
        self.conn = await self.db.engine.connect()
        if self.db.dialect != "sqlite":
            await self.conn.execution_options(isolation_level="REPEATABLE READ")
        self.tx = await self.conn.begin()
        return self.conn

    async def __aexit__(self, *exc) -> None:
        try:
            await self.tx.rollback()
        finally:
            await self.conn.close()


# -- loading ------------------------------------------------------------------------

def _usage_stmt(_dialect: str):
    return (select(ALLOC.c.resource_provider_uuid, ALLOC.c.resource_class,
                   cast(func.sum(ALLOC.c.used), BigInteger))
            .group_by(ALLOC.c.resource_provider_uuid, ALLOC.c.resource_class))


def _providers_stmt(_dialect: str):
    return select(RP.c.uuid, RP.c.root_provider_uuid, RP.c.parent_provider_uuid)


def _inventory_stmt(_dialect: str):
    return select(INV.c.resource_provider_uuid, INV.c.resource_class, INV.c.total,
                  INV.c.reserved, INV.c.min_unit, INV.c.max_unit, INV.c.step_size,
                  INV.c.allocation_ratio)


def _classes_stmt(_dialect: str):
    return select(t.resource_class.c.name)


def _traits_stmt(_dialect: str):
    return select(t.trait.c.name, t.trait.c.standard)


def _provider_traits_stmt(_dialect: str):
    return select(RPT.c.resource_provider_uuid, RPT.c.trait)


def _aggregates_stmt(_dialect: str):
    return select(RPA.c.aggregate_uuid, RPA.c.resource_provider_uuid)


async def _rows(conn: AsyncConnection, build) -> list:
    return (await conn.execute(statement(build, conn))).all()


async def load_everything(conn: AsyncConnection) -> IndexedSnapshot:
    snap = IndexedSnapshot()
    providers = snap.providers
    trees: dict[str, list[str]] = defaultdict(list)
    has_trees = False
    for uuid, root, parent in await _rows(conn, _providers_stmt):
        providers[uuid] = (root, parent)
        trees[root].append(uuid)
        if parent is not None:
            has_trees = True
    snap.trees, snap._has_trees = dict(trees), has_trees
    snap.ordered = sorted(providers)
    snap.rc_names = set((await conn.execute(statement(_classes_stmt, conn))).scalars())
    for name, standard in await _rows(conn, _traits_stmt):
        snap.trait_names.add(name)
        if standard:
            snap.standard.add(name)
    used = {(rp, rc): int(n) for rp, rc, n in await _rows(conn, _usage_stmt)}
    by_class, by_provider = snap.inventories, snap.by_provider
    for rc in snap.rc_names:
        by_class[rc] = {}
    for rp, rc, total, reserved, min_unit, max_unit, step, ratio in \
            await _rows(conn, _inventory_stmt):
        inv = Inv(total, reserved, min_unit, max_unit, step, float(ratio),
                  used.get((rp, rc), 0))
        by_class.setdefault(rc, {})[rp] = inv
        per_rp = by_provider.get(rp)
        if per_rp is None:
            by_provider[rp] = {rc: inv}
        else:
            per_rp[rc] = inv
    traits, trait_members = snap.traits, snap.trait_members
    for rp, trait in await _rows(conn, _provider_traits_stmt):
        have = traits.get(rp)
        if have is None:
            traits[rp] = {trait}
        else:
            have.add(trait)
        members = trait_members.get(trait)
        if members is None:
            trait_members[trait] = {rp}
        else:
            members.add(rp)
    aggs_of: dict[str, set[str]] = defaultdict(set)
    members: dict[str, set[str]] = defaultdict(set)
    for agg, rp in await _rows(conn, _aggregates_stmt):
        members[agg].add(rp)
        aggs_of[rp].add(agg)
    snap.agg_members = dict(members)
    snap.sharing = {rp for rp, have in traits.items() if SHARES in have}
    # Placement's anchors_for_sharing_providers: the roots of every provider
    # sharing an aggregate with a sharing provider.
    for sp in snap.sharing:
        roots: set[str] = set()
        for agg in aggs_of.get(sp, ()):
            roots.update(providers[rp][0] for rp in members[agg])
        if roots:
            snap.anchors[sp] = roots
    return snap


async def reload_usage(conn: AsyncConnection, snap: IndexedSnapshot) -> None:
    """Re-read the usage sums into the snapshot's inventory records."""
    rows = await _rows(conn, _usage_stmt)
    snap.usage_changed()
    for per_rp in snap.by_provider.values():
        for inv in per_rp.values():
            inv.used = 0
    by_provider = snap.by_provider
    for rp, rc, n in rows:
        inv = by_provider.get(rp, {}).get(rc)
        if inv is not None:
            inv.used = int(n)
