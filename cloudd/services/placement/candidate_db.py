"""The SQL behind allocation candidates and GET /resource_providers filters.

Everything here reads. The search (candidate_search.py) is pure Python over
a ``Snapshot``; allocation candidates take theirs from the in-memory index
(candidate_index.py, which fills it with its own queries), GET
/resource_providers filters load the few tables they need here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t
from cloudd.services.placement.errors import error
from cloudd.services.placement.listparam import member, statement, value

SHARES = "MISC_SHARES_VIA_AGGREGATE"
RP, INV, ALLOC = t.resource_provider, t.inventory, t.allocation
RPT, RPA = t.resource_provider_trait, t.resource_provider_aggregate


class Inv:
    """One inventory record plus what is allocated from it."""

    __slots__ = (
        "allocation_ratio",
        "capacity",
        "limit",
        "max_unit",
        "min_unit",
        "reserved",
        "step_size",
        "total",
        "used",
    )

    def __init__(self, total: int, reserved: int, min_unit: int, max_unit: int,
                 step_size: int, allocation_ratio: float, used: int) -> None:
        self.total = total
        self.reserved = reserved
        self.min_unit = min_unit
        self.max_unit = max_unit
        self.step_size = step_size
        self.allocation_ratio = allocation_ratio
        self.used = used
        # What may be allocated in all (Placement compares against this float).
        self.limit = (total - reserved) * allocation_ratio
        self.capacity = int(self.limit)

    def fits(self, amount: int) -> bool:
        """Placement's capacity check for one request of ``amount``."""
        return (self.used + amount <= self.limit
                and self.min_unit <= amount <= self.max_unit
                and amount % self.step_size == 0)


@dataclass
class Snapshot:
    """What one candidate search needs to know, read in one transaction."""

    # uuid -> (root uuid, parent uuid or None), for every provider.
    providers: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    rc_names: set[str] = field(default_factory=set)      # requested ones that exist
    trait_names: set[str] = field(default_factory=set)   # mentioned ones that exist
    # resource class -> provider -> inventory, for every class...
    inventories: dict[str, dict[str, Inv]] = field(default_factory=dict)
    # ...and the same records by provider -> resource class (for summaries).
    by_provider: dict[str, dict[str, Inv]] = field(default_factory=dict)
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
#
# Every statement is built once per dialect (listparam.statement) with lists
# bound as one parameter, so SQLAlchemy compiles it once and asyncpg prepares
# it once per connection.

def _names_stmt(table):
    def build(dialect: str):
        return select(table.c.name).where(member(table.c.name, "names", dialect))
    return build


_RC_NAMES, _TRAIT_NAMES = _names_stmt(t.resource_class), _names_stmt(t.trait)


async def existing(conn: AsyncConnection, table, names: Iterable[str]) -> set[str]:
    names = set(names)
    if not names:
        return set()
    build = _RC_NAMES if table is t.resource_class else _TRAIT_NAMES
    dialect = conn.dialect.name
    rows = await conn.execute(statement(build, conn), {"names": value(names, dialect)})
    return set(rows.scalars())


def _providers_stmt(_dialect: str):
    return select(RP.c.uuid, RP.c.root_provider_uuid, RP.c.parent_provider_uuid)


async def load_providers(conn: AsyncConnection) -> dict[str, tuple[str, str | None]]:
    rows = (await conn.execute(statement(_providers_stmt, conn))).all()
    return {uuid: (root, parent) for uuid, root, parent in rows}


def _inventory_stmt(dialect: str | None, requested: bool):
    """Inventory rows (provider, class, total, reserved, min_unit, max_unit,
    step_size, allocation_ratio, used): of the classes bound as ``rcs`` when
    ``requested``, else of every class."""
    usage = select(ALLOC.c.resource_provider_uuid.label("rp"),
                   ALLOC.c.resource_class.label("rc"),
                   cast(func.sum(ALLOC.c.used), BigInteger).label("used"))
    if requested:
        usage = usage.where(member(ALLOC.c.resource_class, "rcs", dialect))
    usage = usage.group_by(ALLOC.c.resource_provider_uuid, ALLOC.c.resource_class).subquery()
    q = (select(INV.c.resource_provider_uuid, INV.c.resource_class, INV.c.total,
                INV.c.reserved, INV.c.min_unit, INV.c.max_unit, INV.c.step_size,
                INV.c.allocation_ratio, func.coalesce(usage.c.used, literal_column("0")))
         .select_from(INV.outerjoin(usage, (usage.c.rp == INV.c.resource_provider_uuid)
                                    & (usage.c.rc == INV.c.resource_class))))
    if requested:
        q = q.where(member(INV.c.resource_class, "rcs", dialect))
    return q


def _requested_inventory_stmt(dialect: str):
    return _inventory_stmt(dialect, True)


def _inv(rows, by_class: dict[str, dict[str, Inv]],
         by_provider: dict[str, dict[str, Inv]] | None = None) -> None:
    for rp, rc, total, reserved, min_unit, max_unit, step, ratio, used in rows:
        inv = Inv(total, reserved, min_unit, max_unit, step, float(ratio), int(used))
        per_class = by_class.get(rc)
        if per_class is None:
            per_class = by_class[rc] = {}
        per_class[rp] = inv
        if by_provider is not None:
            per_rp = by_provider.get(rp)
            if per_rp is None:
                per_rp = by_provider[rp] = {}
            per_rp[rc] = inv


async def load_inventories(conn: AsyncConnection,
                           rcs: Iterable[str]) -> dict[str, dict[str, Inv]]:
    rcs = sorted(set(rcs))
    out: dict[str, dict[str, Inv]] = {rc: {} for rc in rcs}
    if not rcs:
        return out
    rows = (await conn.execute(statement(_requested_inventory_stmt, conn),
                               {"rcs": value(rcs, conn.dialect.name)})).all()
    _inv(rows, out)
    return out


def _traits_stmt(dialect: str):
    return (select(RPT.c.resource_provider_uuid, RPT.c.trait)
            .where(member(RPT.c.trait, "names", dialect)))


async def load_traits(conn: AsyncConnection, names: Iterable[str]) -> dict[str, set[str]]:
    names = set(names)
    out: dict[str, set[str]] = {}
    if not names:
        return out
    rows = (await conn.execute(statement(_traits_stmt, conn),
                               {"names": value(names, conn.dialect.name)})).all()
    for rp, trait in rows:
        have = out.get(rp)
        if have is None:
            out[rp] = {trait}
        else:
            have.add(trait)
    return out


def _agg_members_stmt(dialect: str):
    return (select(RPA.c.aggregate_uuid, RPA.c.resource_provider_uuid)
            .where(member(RPA.c.aggregate_uuid, "aggs", dialect)))


async def load_agg_members(conn: AsyncConnection,
                           aggs: Iterable[str]) -> dict[str, set[str]]:
    aggs = set(aggs)
    out: dict[str, set[str]] = defaultdict(set)
    if not aggs:
        return {}
    rows = await conn.execute(statement(_agg_members_stmt, conn),
                              {"aggs": value(aggs, conn.dialect.name)})
    for agg, rp in rows:
        out[agg].add(rp)
    return dict(out)


# -- provider summaries -----------------------------------------------------------------

@dataclass
class Summary:
    uuid: str
    root: str
    parent: str | None
    resources: dict[str, Inv] = field(default_factory=dict)
    traits: list[str] = field(default_factory=list)


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
