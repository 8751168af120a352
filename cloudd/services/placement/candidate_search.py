"""The allocation candidate search, in pure Python over a ``Snapshot``.

It follows Placement's algorithm (objects/allocation_candidate.py and
objects/research_context.py) step for step, so results and errors match:

1. root_required picks the acceptable anchor roots.
2. Each request group, in query order, yields partial requests, each tied to
   an *anchor* (the root of the tree it is for; a sharing provider's
   resources are offered to every tree it shares an aggregate with):
   - a suffixed (granular) group must be satisfied by one provider, which
     itself has the traits and is itself in the aggregates;
   - the unsuffixed group may spread over one tree plus sharing providers: one
     provider per resource class, the providers *together* having the
     required traits and none of them a forbidden one; member_of is met by
     the provider or its anchor root.
   If any group has nothing, there are no candidates.
3. Per anchor, one partial request per group is combined (group_policy
   isolate: distinct providers for the granular groups; same_subtree: the
   named groups' providers all lie under one of them), amounts of one class
   on one provider are added up and checked against capacity and max_unit,
   and duplicates are dropped.

Placement's order of results is that of Python sets; ours is deterministic
(anchors and providers by uuid), which also lets a limit stop the search early.
The usual request (one unsuffixed group, no nested or sharing providers
involved) takes a one-pass path, ``_whole_providers``, with the same result.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from cloudd.services.placement.candidate_db import Snapshot
from cloudd.services.placement.errors import error
from cloudd.services.placement.query import RequestGroup, RequestWideParams, flat_names


class GroupRequest(NamedTuple):
    """What one request group takes in one candidate (a named tuple: many
    are made per search)."""

    anchor: str
    suffix: str
    same_provider: bool
    resources: tuple[tuple[str, str, int], ...]     # (provider, class, amount)
    providers: frozenset[str]                       # the group's mapping


@dataclass
class Candidate:
    """One allocation request satisfying every group."""

    anchor: str
    resources: dict[tuple[str, str], int] = field(default_factory=dict)
    mappings: dict[str, set[str]] = field(default_factory=dict)

    def key(self) -> tuple:
        return (frozenset(self.resources.items()),
                frozenset((s, frozenset(p)) for s, p in self.mappings.items()))

    @property
    def providers(self) -> set[str]:
        return {rp for rp, _ in self.resources}


class WholeProviders(NamedTuple):
    """``_whole_providers``' answer: each candidate is one root provider (no
    trees in the snapshot) holding ``amounts`` of the group ``suffix``."""

    providers: list[str]
    suffix: str
    amounts: dict[str, int]


class SearchResult:
    """The candidates; made from ``whole`` only when asked for (rendering
    the usual answer needs just the providers)."""

    __slots__ = ("_candidates", "only", "roots", "whole")

    def __init__(self, candidates: list[Candidate] | None, roots: set[str],
                 only: set[str] | None = None, whole: WholeProviders | None = None) -> None:
        self._candidates = candidates
        # Provider summaries cover every provider of these trees...
        self.roots = roots
        # ...or, before 1.29 in a deployment with trees, only these providers.
        self.only = only
        self.whole = whole

    @property
    def candidates(self) -> list[Candidate]:
        if self._candidates is None:
            rps, suffix, amounts = self.whole
            self._candidates = [Candidate(rp, {(rp, rc): n for rc, n in amounts.items()},
                                          {suffix: {rp}}) for rp in rps]
        return self._candidates


class _NoCandidates(Exception):
    pass


def trait_not_found(name: str):
    return error(400, f"No such trait(s): {name}.")


def rc_not_found(name: str):
    return error(400, "Invalid resource class in resources parameter: "
                      f"No such resource class {name}.")


def search(snap: Snapshot, groups: dict[str, RequestGroup], params: RequestWideParams,
           *, nested_aware: bool = True, max_candidates: int | None = None) -> SearchResult:
    """All allocation candidates for ``groups`` (raises Placement's 400s for
    unknown resource classes and traits)."""
    exclude_nested = not nested_aware and snap.has_trees
    limit = params.limit
    stops = [x for x in (limit, max_candidates) if x]
    # Before 1.29 the summaries depend on every candidate, so no early stop.
    stop = min(stops) if stops and not exclude_nested else max_candidates
    try:
        anchors_ok = _anchor_roots(snap, params)
        if _whole_providers_only(snap, groups):
            suffix, group = next(iter(groups.items()))
            rps = _whole_providers(snap, group, anchors_ok, stop)
            if limit and limit < len(rps):
                rps = rps[:limit]
            return SearchResult(None, set(rps), None,
                                WholeProviders(rps, suffix, dict(group.resources)))
        else:
            per_group: dict[str, list[GroupRequest]] = {}
            for suffix, group in groups.items():
                per_group[suffix] = _group_requests(snap, suffix, group, anchors_ok)
            found = _merge(snap, per_group, params, exclude_nested, stop)
    except _NoCandidates:
        return SearchResult([], set())
    only = None
    if exclude_nested:
        only = set().union(*(c.providers for c in found)) if found else set()
    if limit and limit < len(found):
        found = found[:limit]
    roots = {snap.root(rp) for c in found for rp in c.providers}
    if only is not None:
        only = {rp for rp in only if snap.root(rp) in roots}
    return SearchResult(found, roots, only)


# -- per group -----------------------------------------------------------------------

def _check_traits(snap: Snapshot, names) -> None:
    for name in sorted(names):
        if name not in snap.trait_names:
            raise trait_not_found(name)


def _anchor_roots(snap: Snapshot, params: RequestWideParams) -> set[str] | None:
    """The roots allowed to anchor a candidate (None: any)."""
    required, forbidden = params.root_required, params.root_forbidden
    if not (required or forbidden):
        return None
    _check_traits(snap, required)
    _check_traits(snap, forbidden)
    roots = {rp for rp, (_, parent) in snap.providers.items() if parent is None
             and required <= snap.traits_of(rp) and not (forbidden & snap.traits_of(rp))}
    if not roots:
        raise _NoCandidates
    return roots


def _whole_providers_only(snap: Snapshot, groups: dict[str, RequestGroup]) -> bool:
    """True when every candidate is one root provider holding everything: one
    unsuffixed group with resources, no in_tree, no nested providers and no
    sharing provider with any requested class (Nova's usual request)."""
    if len(groups) != 1 or snap.has_trees:
        return False
    group = next(iter(groups.values()))
    if group.use_same_provider or not group.resources or group.in_tree:
        return False
    by_provider = snap.by_provider
    return not any(rc in by_provider.get(sp, ()) for sp in snap.sharing
                   for rc in group.resources)


def _whole_providers(snap: Snapshot, group: RequestGroup, anchors_ok: set[str] | None,
                     stop: int | None) -> list[str]:
    """The search for ``_whole_providers_only`` requests: the providers of the
    same candidates in the same order as the general path (by uuid), up to
    ``stop``. Over the index's snapshot it is set arithmetic: the providers
    each class fits on (kept per snapshot and usage state), the traits' and
    aggregates' members."""
    in_aggs = _check_group(snap, group)
    pool: set[str] | None = in_aggs if group.member_of else None
    if anchors_ok is not None:
        pool = anchors_ok if pool is None else pool & anchors_ok
    fitting = getattr(snap, "providers_fitting", None)
    if fitting is None:
        return _whole_providers_walk(snap, group, pool, stop)
    members = snap.trait_members
    # Never changed in place below: some of these sets are the index's own.
    wanted = [fitting(rc, amount) for rc, amount in group.resources.items()]
    for any_of in group.required_traits:
        wanted.append(members.get(next(iter(any_of)), set()) if len(any_of) == 1 else
                      set().union(*(members.get(name, ()) for name in any_of)))
    if pool is not None:
        wanted.append(pool)
    wanted.sort(key=len)                # smallest first: each & walks the smaller
    pool = wanted[0]
    for other in wanted[1:]:
        pool = pool & other
    for name in group.forbidden_traits:
        pool = pool - members.get(name, set())
    if group.forbidden_aggs:
        pool = pool - snap.in_any_agg(group.forbidden_aggs)
    ordered = snap.ordered
    if len(pool) * 4 < len(ordered):
        found = sorted(pool)
        return found[:stop] if stop is not None else found
    walk = (rp for rp in ordered if rp in pool)
    return list(itertools.islice(walk, stop) if stop is not None else walk)


def _whole_providers_walk(snap: Snapshot, group: RequestGroup, pool: set[str] | None,
                          stop: int | None) -> list[str]:
    """``_whole_providers`` over a Snapshot that is not the index's: one pass
    over the providers by uuid."""
    wanted = [(rc, amount, snap.inventories.get(rc, {}))
              for rc, amount in group.resources.items()]
    required, forbidden = group.required_traits, group.forbidden_traits
    bad_aggs = snap.in_any_agg(group.forbidden_aggs) if group.forbidden_aggs else None
    traits = snap.traits
    empty: set[str] = set()
    out: list[str] = []
    for rp in sorted(snap.providers):
        if pool is not None and rp not in pool:
            continue
        if not all((inv := per_rp.get(rp)) is not None and inv.fits(amount)
                   for _, amount, per_rp in wanted):
            continue
        if required or forbidden:
            have = traits.get(rp, empty)
            if forbidden and have & forbidden:
                continue
            if required and not all(any_of & have for any_of in required):
                continue
        if bad_aggs and rp in bad_aggs:
            continue
        out.append(rp)
        if stop is not None and len(out) >= stop:
            break
    return out


def _check_group(snap: Snapshot, group: RequestGroup) -> set[str]:
    """Placement's 400s for the group's unknown classes and traits, in its
    order; the providers in its member_of aggregates (no candidates: none)."""
    for rc in group.resources:
        if rc not in snap.rc_names:
            raise rc_not_found(rc)
    in_aggs: set[str] = set()
    if group.member_of:
        in_aggs = snap.in_all_aggs(group.member_of)
        if not in_aggs:
            raise _NoCandidates
    for any_of in group.required_traits:
        _check_traits(snap, any_of)
    _check_traits(snap, group.forbidden_traits)
    return in_aggs


def _group_requests(snap: Snapshot, suffix: str, group: RequestGroup,
                    anchors_ok: set[str] | None) -> list[GroupRequest]:
    in_aggs = _check_group(snap, group)
    tree_root = None
    if group.in_tree:
        if group.in_tree not in snap.providers:
            raise _NoCandidates
        tree_root = snap.root(group.in_tree)
    with_res: dict[str, set[str]] = {}
    for rc, amount in group.resources.items():
        fit = {rp for rp, inv in snap.inventories.get(rc, {}).items() if inv.fits(amount)
               and (tree_root is None or snap.root(rp) == tree_root)}
        if not fit:
            raise _NoCandidates
        with_res[rc] = fit
    if group.use_same_provider:
        found = _single_provider(snap, suffix, group, with_res, in_aggs, tree_root,
                                 anchors_ok)
    else:
        found = _spread(snap, suffix, group, with_res, in_aggs, tree_root, anchors_ok)
    if not found:
        raise _NoCandidates
    return found


def _single_provider(snap, suffix, group, with_res, in_aggs, tree_root,
                     anchors_ok) -> list[GroupRequest]:
    """A granular group: every resource, trait and aggregate on one provider."""
    allowed: set[str] | None = None       # None: not filtered
    if group.required_traits:
        allowed = snap.having_all(group.required_traits)
        if not allowed:
            return []
    if group.member_of:
        allowed = in_aggs if allowed is None else allowed & in_aggs
        if not allowed:
            return []
    refused: set[str] = set()
    for bad in (snap.in_any_agg(group.forbidden_aggs) if group.forbidden_aggs else None,
                snap.having_any(group.forbidden_traits) if group.forbidden_traits else None):
        if bad is None:
            continue
        refused |= bad
        if allowed is not None:
            allowed -= bad
            if not allowed:
                return []
    if group.resources:
        matched = set.intersection(*with_res.values())
    else:
        # Resourceless (1.36+, named in same_subtree): any provider that fits.
        matched = set(snap.providers)
        if tree_root is not None:
            matched = {rp for rp in matched if snap.root(rp) == tree_root}
    matched = matched & allowed if allowed is not None else matched - refused
    out = []
    for rp in sorted(matched):
        root = snap.root(rp)
        res = tuple((rp, rc, amount) for rc, amount in group.resources.items())
        anchors = [root] if anchors_ok is None or root in anchors_ok else []
        if rp in snap.sharing:
            anchors += [a for a in sorted(snap.anchors.get(rp, ()))
                        if a != root and (anchors_ok is None or a in anchors_ok)]
        out += [GroupRequest(a, suffix, True, res, frozenset([rp])) for a in anchors]
    return out


def _spread(snap, suffix, group, with_res, in_aggs, tree_root,
            anchors_ok) -> list[GroupRequest]:
    """The unsuffixed group: one provider per class, from one tree or shared."""
    if group.required_traits and not snap.having_any(flat_names(group.required_traits)):
        return []
    bad_aggs = snap.in_any_agg(group.forbidden_aggs) if group.forbidden_aggs else set()
    picks: set[tuple[str, str, str]] = set()        # (provider, anchor, class)
    providers = snap.providers
    for rc in group.resources:
        found = {(rp, providers[rp][0], rc) for rp in with_res[rc]}
        shared = snap.sharing & with_res[rc]
        if group.member_of:
            shared &= in_aggs
        if shared and tree_root is None:
            found |= {(sp, a, rc) for sp in shared for a in snap.anchors.get(sp, ())}
        if anchors_ok is not None:
            found = {x for x in found if x[1] in anchors_ok}
        if group.member_of:
            # An aggregate on the root spans its whole tree.
            found = {x for x in found if x[0] in in_aggs or x[1] in in_aggs}
        if bad_aggs:
            found = {x for x in found if x[0] not in bad_aggs and x[1] not in bad_aggs}
        if not found:
            return []
        if picks:
            common = {x[1] for x in picks} & {x[1] for x in found}
            found = {x for x in picks | found if x[1] in common}
        picks = found
        if not picks:
            return []
    by_anchor: dict[str, dict[str, list[str]]] = {}
    for rp, anchor, rc in picks:
        per_rc = by_anchor.get(anchor)
        if per_rc is None:
            per_rc = by_anchor[anchor] = {}
        rps = per_rc.get(rc)
        if rps is None:
            per_rc[rc] = [rp]
        else:
            rps.append(rp)
    rcs = list(group.resources)
    amounts = [group.resources[rc] for rc in rcs]
    forbidden, required = group.forbidden_traits, group.required_traits
    traits_of = snap.traits_of
    out = []
    for anchor in sorted(by_anchor):
        per_rc = by_anchor[anchor]
        lists = [sorted(per_rc.get(rc, ())) for rc in rcs]
        for combo in itertools.product(*lists):
            if forbidden and any(traits_of(rp) & forbidden for rp in combo):
                continue
            if required:
                have = set().union(*(traits_of(rp) for rp in combo))
                if not all(any_of & have for any_of in required):
                    continue
            res = tuple(zip(combo, rcs, amounts))
            out.append(GroupRequest(anchor, suffix, False, res, frozenset(combo)))
    return out


# -- combining groups ----------------------------------------------------------------------

def _merge(snap: Snapshot, per_group: dict[str, list[GroupRequest]],
           params: RequestWideParams, exclude_nested: bool,
           stop: int | None) -> list[Candidate]:
    suffixes = list(per_group)
    by_anchor: dict[str, dict[str, list[GroupRequest]]] = defaultdict(
        lambda: defaultdict(list))
    for suffix, reqs in per_group.items():
        for req in reqs:
            by_anchor[req.anchor][suffix].append(req)
    isolate = params.group_policy == "isolate"
    same_subtrees = params.same_subtrees
    found: dict[tuple, Candidate] = {}
    for anchor, lists in by_anchor.items():
        if len(lists) != len(suffixes):
            continue
        for combo in _combinations(snap, [lists[s] for s in suffixes], isolate):
            if same_subtrees and not all(_same_subtree(snap, combo, names)
                                         for names in same_subtrees):
                continue
            resources: dict[tuple[str, str], int] = {}
            mappings: dict[str, set[str]] = {}
            for req in combo:
                for rp, rc, amount in req.resources:
                    resources[(rp, rc)] = resources.get((rp, rc), 0) + amount
                mapped = mappings.get(req.suffix)
                if mapped is None:
                    mappings[req.suffix] = set(req.providers)
                else:
                    mapped.update(req.providers)
            if exclude_nested:
                roots = [snap.root(rp) for rp in {rp for rp, _ in resources}]
                if len(roots) != len(set(roots)):
                    continue
            key = (frozenset(resources.items()),
                   frozenset((s, frozenset(p)) for s, p in mappings.items()))
            if key not in found:
                found[key] = Candidate(anchor, resources, mappings)
                if stop is not None and len(found) >= stop:
                    return list(found.values())
    return list(found.values())


def _combinations(snap: Snapshot, lists: list[list[GroupRequest]], isolate: bool):
    """One request per group, pruning as soon as a partial pick exceeds
    capacity or max_unit, or (isolate) reuses a granular group's provider."""
    total: dict[tuple[str, str], int] = defaultdict(int)
    taken: set[str] = set()
    chosen: list[GroupRequest] = []
    inventories = snap.inventories

    def fits(req: GroupRequest) -> bool:
        ok = True
        for rp, rc, amount in req.resources:
            total[(rp, rc)] += amount
            inv = inventories[rc][rp]
            if inv.used + total[(rp, rc)] > inv.capacity or total[(rp, rc)] > inv.max_unit:
                ok = False
        return ok

    def undo(req: GroupRequest) -> None:
        for rp, rc, amount in req.resources:
            total[(rp, rc)] -= amount

    if len(lists) == 1:
        # One group: nothing to combine (and nothing taken for isolate).
        for req in lists[0]:
            if fits(req):
                yield [req]
            undo(req)
        return

    def walk(i: int):
        if i == len(lists):
            yield list(chosen)
            return
        for req in lists[i]:
            own = next(iter(req.providers)) if isolate and req.same_provider else None
            if own is not None and own in taken:
                continue
            if fits(req):
                chosen.append(req)
                if own is not None:
                    taken.add(own)
                yield from walk(i + 1)
                chosen.pop()
                taken.discard(own)
            undo(req)

    yield from walk(0)


def _same_subtree(snap: Snapshot, combo: list[GroupRequest], names: set[str]) -> bool:
    """The providers of the named groups all lie under one of them."""
    rps: set[str] = set()
    for req in combo:
        if req.suffix in names:
            rps |= req.providers
    if len(rps) <= 1:
        return True
    common: set[str] | None = None
    for rp in rps:
        line = _ancestry(snap, rp)
        common = line if common is None else common & line
    return bool(common & rps)


def _ancestry(snap: Snapshot, rp: str) -> set[str]:
    line = {rp}
    parent = snap.parent(rp)
    while parent is not None and parent not in line:
        line.add(parent)
        parent = snap.parent(parent)
    return line
