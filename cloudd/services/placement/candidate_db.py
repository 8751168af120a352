"""The SQL behind allocation candidates and GET /resource_providers filters.

Everything here reads; the search itself (candidate_search.py) is pure Python
over a ``Snapshot`` loaded in a handful of queries inside one read
transaction, so it sees one consistent state of the database.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t
from cloudd.services.placement.errors import error

SHARES = "MISC_SHARES_VIA_AGGREGATE"
RP, INV, ALLOC = t.resource_provider, t.inventory, t.allocation
RPT, RPA = t.resource_provider_trait, t.resource_provider_aggregate


@dataclass(frozen=True)
class Inv:
    """One inventory record plus what is allocated from it."""

    total: int
    reserved: int
    min_unit: int
    max_unit: int
    step_size: int
    allocation_ratio: float
    used: int

    def fits(self, amount: int) -> bool:
        """Placement's capacity check for one request of ``amount``."""
        return (self.used + amount <= (self.total - self.reserved) * self.allocation_ratio
                and self.min_unit <= amount <= self.max_unit
                and amount % self.step_size == 0)

    @property
    def capacity(self) -> int:
        return int((self.total - self.reserved) * self.allocation_ratio)


@dataclass
class Snapshot:
    """What one candidate search needs to know, read in one transaction."""

    # uuid -> (root uuid, parent uuid or None), for every provider.
    providers: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    rc_names: set[str] = field(default_factory=set)      # requested ones that exist
    trait_names: set[str] = field(default_factory=set)   # mentioned ones that exist
    # resource class -> provider -> inventory, for the requested classes.
    inventories: dict[str, dict[str, Inv]] = field(default_factory=dict)
    # provider -> the mentioned traits (and MISC_SHARES_VIA_AGGREGATE) it has.
    traits: dict[str, set[str]] = field(default_factory=dict)
    # aggregate -> member providers, for the mentioned aggregates.
    agg_members: dict[str, set[str]] = field(default_factory=dict)
    sharing: set[str] = field(default_factory=set)
    # sharing provider -> roots of every tree it shares with (its own included).
    anchors: dict[str, set[str]] = field(default_factory=dict)

    def root(self, rp: str) -> str:
        return self.providers[rp][0]

    def parent(self, rp: str) -> str | None:
        return self.providers[rp][1]

    @property
    def has_trees(self) -> bool:
        return any(parent is not None for _, parent in self.providers.values())

    def traits_of(self, rp: str) -> set[str]:
        return self.traits.get(rp, set())

    def in_any_agg(self, aggs: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for agg in aggs:
            out |= self.agg_members.get(agg, set())
        return out

    def in_all_aggs(self, member_of: list[set[str]]) -> set[str]:
        """Providers in (one of) each any-of set of aggregates."""
        found: set[str] | None = None
        for any_of in member_of:
            members = self.in_any_agg(any_of)
            found = members if found is None else found & members
        return found or set()

    def having_all(self, required: list[set[str]]) -> set[str]:
        """Providers that themselves have (one of) each any-of set of traits."""
        return {rp for rp, have in self.traits.items()
                if all(any_of & have for any_of in required)}

    def having_any(self, names: set[str]) -> set[str]:
        return {rp for rp, have in self.traits.items() if have & names}


# -- loading ------------------------------------------------------------------------

def _chunks(values: Iterable[str], size: int = 500) -> Iterable[list[str]]:
    items = sorted(set(values))
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def existing(conn: AsyncConnection, table, names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for part in _chunks(names):
        out |= set((await conn.execute(
            select(table.c.name).where(table.c.name.in_(part)))).scalars())
    return out


async def load_providers(conn: AsyncConnection) -> dict[str, tuple[str, str | None]]:
    rows = await conn.execute(select(RP.c.uuid, RP.c.root_provider_uuid,
                                     RP.c.parent_provider_uuid))
    return {r.uuid: (r.root_provider_uuid, r.parent_provider_uuid) for r in rows}


def _usage(rcs: list[str] | None = None):
    q = select(ALLOC.c.resource_provider_uuid.label("rp"), ALLOC.c.resource_class.label("rc"),
               func.sum(ALLOC.c.used).label("used"))
    if rcs is not None:
        q = q.where(ALLOC.c.resource_class.in_(rcs))
    return q.group_by(ALLOC.c.resource_provider_uuid, ALLOC.c.resource_class).subquery()


def _inv_row(r) -> Inv:
    return Inv(int(r.total), int(r.reserved), int(r.min_unit), int(r.max_unit),
               int(r.step_size), float(r.allocation_ratio), int(r.used or 0))


async def load_inventories(conn: AsyncConnection,
                           rcs: Iterable[str]) -> dict[str, dict[str, Inv]]:
    rcs = sorted(set(rcs))
    out: dict[str, dict[str, Inv]] = {rc: {} for rc in rcs}
    if not rcs:
        return out
    usage = _usage(rcs)
    q = (select(INV, usage.c.used)
         .select_from(INV.outerjoin(usage, (usage.c.rp == INV.c.resource_provider_uuid)
                                    & (usage.c.rc == INV.c.resource_class)))
         .where(INV.c.resource_class.in_(rcs)))
    for r in await conn.execute(q):
        out[r.resource_class][r.resource_provider_uuid] = _inv_row(r)
    return out


async def load_traits(conn: AsyncConnection, names: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for part in _chunks(names):
        rows = await conn.execute(select(RPT.c.resource_provider_uuid, RPT.c.trait)
                                  .where(RPT.c.trait.in_(part)))
        for rp, trait in rows:
            out[rp].add(trait)
    return dict(out)


async def load_agg_members(conn: AsyncConnection,
                           aggs: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for part in _chunks(aggs):
        rows = await conn.execute(select(RPA.c.aggregate_uuid, RPA.c.resource_provider_uuid)
                                  .where(RPA.c.aggregate_uuid.in_(part)))
        for agg, rp in rows:
            out[agg].add(rp)
    return dict(out)


async def load_anchors(conn: AsyncConnection) -> dict[str, set[str]]:
    """Each sharing provider -> the roots of the providers it shares an
    aggregate with (Placement's anchors_for_sharing_providers)."""
    mine, theirs, other = RPA.alias("mine"), RPA.alias("theirs"), RP.alias("other")
    sharing = select(RPT.c.resource_provider_uuid).where(RPT.c.trait == SHARES)
    q = (select(mine.c.resource_provider_uuid.label("sp"), other.c.root_provider_uuid)
         .select_from(mine.join(theirs, theirs.c.aggregate_uuid == mine.c.aggregate_uuid)
                      .join(other, other.c.uuid == theirs.c.resource_provider_uuid))
         .where(mine.c.resource_provider_uuid.in_(sharing)).distinct())
    out: dict[str, set[str]] = defaultdict(set)
    for sp, root in await conn.execute(q):
        out[sp].add(root)
    return dict(out)


async def load_snapshot(conn: AsyncConnection, *, rcs: Iterable[str],
                        traits: Iterable[str], aggs: Iterable[str]) -> Snapshot:
    """Everything a candidate search for these classes, traits and aggregates
    needs (six queries, whatever the request)."""
    snap = Snapshot()
    snap.providers = await load_providers(conn)
    snap.rc_names = await existing(conn, t.resource_class, rcs)
    traits = set(traits)
    snap.trait_names = await existing(conn, t.trait, traits)
    snap.inventories = await load_inventories(conn, snap.rc_names)
    snap.traits = await load_traits(conn, snap.trait_names | {SHARES})
    snap.sharing = {rp for rp, have in snap.traits.items() if SHARES in have}
    snap.agg_members = await load_agg_members(conn, aggs)
    snap.anchors = await load_anchors(conn) if snap.sharing else {}
    return snap


# -- provider summaries -----------------------------------------------------------------

@dataclass
class Summary:
    uuid: str
    root: str
    parent: str | None
    resources: dict[str, Inv] = field(default_factory=dict)
    traits: list[str] = field(default_factory=list)


async def load_summaries(conn: AsyncConnection, roots: Iterable[str]) -> dict[str, Summary]:
    """Every provider in the trees under ``roots``, with all its inventories,
    usages and traits."""
    out: dict[str, Summary] = {}
    roots = sorted(set(roots))
    for part in _chunks(roots):
        rows = await conn.execute(select(RP.c.uuid, RP.c.root_provider_uuid,
                                         RP.c.parent_provider_uuid)
                                  .where(RP.c.root_provider_uuid.in_(part)))
        for r in rows:
            out[r.uuid] = Summary(r.uuid, r.root_provider_uuid, r.parent_provider_uuid)
        usage = _usage()
        tree = select(RP.c.uuid).where(RP.c.root_provider_uuid.in_(part))
        q = (select(INV, usage.c.used)
             .select_from(INV.outerjoin(usage, (usage.c.rp == INV.c.resource_provider_uuid)
                                        & (usage.c.rc == INV.c.resource_class)))
             .where(INV.c.resource_provider_uuid.in_(tree)))
        for r in await conn.execute(q):
            out[r.resource_provider_uuid].resources[r.resource_class] = _inv_row(r)
        q = (select(RPT.c.resource_provider_uuid, RPT.c.trait, t.trait.c.standard)
             .select_from(RPT.join(t.trait, t.trait.c.name == RPT.c.trait))
             .where(RPT.c.resource_provider_uuid.in_(tree)))
        found: dict[str, list[tuple[bool, str]]] = defaultdict(list)
        for rp, trait, standard in await conn.execute(q):
            found[rp].append((not standard, trait))
        for rp, names in found.items():
            # Placement lists traits by id: the standard ones came first.
            out[rp].traits = [name for _, name in sorted(names)]
    return out


# -- GET /resource_providers filters ------------------------------------------------------

def _trait_error(name: str):
    return error(400, f'Invalid trait(s) in "required" parameter: No such trait(s): {name}.')


def _rc_error(name: str):
    return error(400, "Invalid resource class in resources parameter: "
                      f"No such resource class {name}.")


async def matching_providers(conn: AsyncConnection, *, resources: dict[str, int],
                             required: list[set[str]], forbidden: set[str],
                             member_of: list[set[str]], forbidden_aggs: set[str],
                             in_tree: str | None) -> set[str]:
    """Providers that themselves satisfy every given filter, checked in
    Placement's order (so the same error wins when several are wrong)."""
    providers = await load_providers(conn)
    found = set(providers)
    if in_tree is not None:
        if in_tree not in providers:
            return set()
        root = providers[in_tree][0]
        found = {rp for rp in found if providers[rp][0] == root}
    names = set().union(*required) | forbidden
    known = await existing(conn, t.trait, names)
    traits = await load_traits(conn, known)
    if required:
        for any_of in required:
            for name in sorted(any_of):
                if name not in known:
                    raise _trait_error(name)
        with_traits = {rp for rp, have in traits.items()
                       if all(any_of & have for any_of in required)}
        if not with_traits:
            return set()
        found &= with_traits
    if forbidden:
        for name in sorted(forbidden):
            if name not in known:
                raise _trait_error(name)
        found -= {rp for rp, have in traits.items() if have & forbidden}
    if member_of or forbidden_aggs:
        members = await load_agg_members(conn, set().union(*member_of) | forbidden_aggs)
        if member_of:
            in_aggs = set(providers)
            for any_of in member_of:
                in_aggs &= set().union(*(members.get(a, set()) for a in any_of))
            if not in_aggs:
                return set()
            found &= in_aggs
        for agg in forbidden_aggs:
            found -= members.get(agg, set())
    if resources:
        rcs = await existing(conn, t.resource_class, resources)
        for rc in resources:
            if rc not in rcs:
                raise _rc_error(rc)
        inventories = await load_inventories(conn, rcs)
        for rc, amount in resources.items():
            found &= {rp for rp, inv in inventories[rc].items() if inv.fits(amount)}
    return found
