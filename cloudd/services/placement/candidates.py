"""GET /allocation_candidates (1.10-1.39), and the same search for the scheduler.

The handler parses the query (query.py), takes the in-memory index's
snapshot of every provider (candidate_index.py; no database round trip once
it is current) and searches it (candidate_search.py), then renders
Placement's body for the request's microversion:

* allocation_requests: a list of {"allocations": [{"resource_provider":
  {"uuid"}, "resources"}]} before 1.12; {"allocations": {uuid: {"resources"}}}
  from 1.12, plus "mappings" {suffix: [uuid, ...]} from 1.34;
* provider_summaries: {uuid: {"resources": {class: {"capacity", "used"}}}}
  (only the requested classes before 1.27), "traits" from 1.17,
  "parent_provider_uuid" / "root_provider_uuid" from 1.29.

In-process callers use ``find_candidates`` (or PlacementService.candidates).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiDict

from cloudd.services.placement import candidate_index, microversion
from cloudd.services.placement.candidate_db import Summary
from cloudd.services.placement.candidate_search import Candidate, SearchResult, search
from cloudd.services.placement.query import RequestGroup, RequestWideParams, parse_candidate_query
from cloudd.services.placement.respond import authorize, db
from cloudd.services.placement.util import check_accept, json_response

LIST = "placement:allocation_candidates:list"
Version = tuple[int, int]


async def list_allocation_candidates(request: web.Request) -> web.Response:
    check_accept(request)
    authorize(request, LIST)
    version = microversion.of(request)
    groups, params = parse_candidate_query(request.query, version)
    return json_response(request, await find_candidates_json(db(request), groups, params,
                                                             version=version))


async def find_candidates(database, groups: Mapping[str, RequestGroup],
                          params: RequestWideParams | None = None, *,
                          version: Version = microversion.MAX,
                          max_candidates: int | None = None) -> dict[str, Any]:
    """Allocation candidates for ``groups`` as GET /allocation_candidates
    answers at ``version`` (default: the newest, with mappings).

    ``groups`` maps a suffix ('' for the unsuffixed group) to a RequestGroup;
    ``database`` is the cloud's Database (its candidate index is used);
    ``params`` holds limit / group_policy / root_required / same_subtree.  The
    groups are taken as given (``query.parse_candidate_query`` does the
    checks the HTTP API does); unknown resource classes or traits raise
    Placement's 400 ApiError.  ``max_candidates`` caps the search (Placement's
    [placement]max_allocation_candidates; None means no cap).
    """
    snap, result, rcs = await _search(database, groups, params, version, max_candidates)
    return render(result, _summaries(snap, result), rcs, version)


async def find_candidates_json(database, groups: Mapping[str, RequestGroup],
                               params: RequestWideParams | None = None, *,
                               version: Version = microversion.MAX) -> bytes:
    """``find_candidates``' body as the JSON the HTTP API sends."""
    snap, result, rcs = await _search(database, groups, params, version, None)
    return render_json(snap, result, rcs, version)


async def _search(database, groups: Mapping[str, RequestGroup],
                  params: RequestWideParams | None, version: Version,
                  max_candidates: int | None):
    groups = dict(groups)
    params = params or RequestWideParams()
    rcs: set[str] = set()
    for group in groups.values():
        rcs |= set(group.resources)
    snap = await candidate_index.of(database).snapshot()
    # From here on pure Python over the snapshot, run inline (in a thread it
    # would hold the GIL all the same) and with no await, so no write can
    # change the snapshot under the search or its rendering.
    result = search(snap, groups, params, nested_aware=version >= (1, 29),
                    max_candidates=max_candidates)
    return snap, result, rcs


def _summaries(snap, result: SearchResult) -> dict[str, Summary]:
    summaries = snap.summaries(result.roots) if result.candidates else {}
    if result.only is not None:
        summaries = {rp: s for rp, s in summaries.items() if rp in result.only}
    return summaries


# A provider uuid's stand-in while a template is rendered: '@' is in no
# uuid, resource class or suffix, and JSON leaves it as it is.
_HOLE = "@@rp@@"


def render_json(snap, result: SearchResult, requested: set[str], version: Version) -> bytes:
    """``render``'s body as JSON, the same document ``json.dumps`` makes of it.

    For the usual answer (``result.whole``: every candidate one root
    provider with the same amounts; 1.27 on, where summaries do not depend
    on the request) it is put together from pieces: one allocation request
    rendered once with a stand-in uuid, and each provider's summary rendered
    once per snapshot and usage state (kept in the index's snapshot). The
    rest goes through ``render``.
    """
    cache = getattr(snap, "summary_json", None)
    whole = result.whole
    if whole is None or not whole.providers or version < (1, 27) or cache is None:
        return json.dumps(render(result, _summaries(snap, result), requested,
                                 version)).encode()
    sample = Candidate(_HOLE, {(_HOLE, rc): n for rc, n in whole.amounts.items()},
                       {whole.suffix: {_HOLE}})
    template = json.dumps(render(SearchResult([sample], set()), {}, requested,
                                 version)["allocation_requests"][0]).split(_HOLE)
    rendered = cache.get(version >= (1, 29))
    if rendered is None:
        rendered = cache[version >= (1, 29)] = {}
    summaries = []
    for rp in whole.providers:
        piece = rendered.get(rp)
        if piece is None:
            body = render(SearchResult([], set()), snap.summaries([rp]), requested,
                          version)["provider_summaries"]
            piece = rendered[rp] = json.dumps(body)[1:-1]
        summaries.append(piece)
    requests = ", ".join(rp.join(template) for rp in whole.providers)
    return (f'{{"allocation_requests": [{requests}], '
            f'"provider_summaries": {{{", ".join(summaries)}}}}}').encode()


def render(result: SearchResult, summaries: dict[str, Summary], requested: set[str],
           version: Version) -> dict[str, Any]:
    requests = []
    keyed, with_mappings = version >= (1, 12), version >= (1, 34)
    for cand in result.candidates:
        per_rp: dict[str, dict[str, int]] = {}
        for (rp, rc), amount in cand.resources.items():
            res = per_rp.get(rp)
            if res is None:
                per_rp[rp] = {rc: amount}
            else:
                res[rc] = amount
        if keyed:
            entry: dict[str, Any] = {"allocations": {
                rp: {"resources": res} for rp, res in per_rp.items()}}
            if with_mappings:
                entry["mappings"] = {s: sorted(p) for s, p in cand.mappings.items()}
        else:
            entry = {"allocations": [{"resource_provider": {"uuid": rp}, "resources": res}
                                     for rp, res in per_rp.items()]}
        requests.append(entry)
    all_classes = version >= (1, 27)
    with_traits, with_tree = version >= (1, 17), version >= (1, 29)
    out: dict[str, Any] = {}
    for rp, s in summaries.items():
        body: dict[str, Any] = {"resources": {
            rc: {"capacity": inv.capacity, "used": inv.used}
            for rc, inv in s.resources.items() if all_classes or rc in requested}}
        if with_traits:
            body["traits"] = list(s.traits)
        if with_tree:
            body["parent_provider_uuid"] = s.parent
            body["root_provider_uuid"] = s.root
        out[rp] = body
    return {"allocation_requests": requests, "provider_summaries": out}


def query_from(values: Mapping[str, Any]) -> MultiDict:
    """A query multidict from {key: value or [values]} (for in-process callers
    that build GET /allocation_candidates parameters, as Nova's
    ResourceRequest.to_querystring does)."""
    query: MultiDict = MultiDict()
    for key, value in values.items():
        for one in (value if isinstance(value, (list, tuple)) else [value]):
            query.add(key, str(one))
    return query


async def candidates_for_query(database, values: Mapping[str, Any], *,
                               version: Version = microversion.MAX,
                               max_candidates: int | None = None) -> dict[str, Any]:
    """``find_candidates`` from query parameters, checked as the API checks them."""
    query = values if hasattr(values, "getall") else query_from(values)
    groups, params = parse_candidate_query(query, version)
    return await find_candidates(database, groups, params, version=version,
                                 max_candidates=max_candidates)
