"""The in-memory candidate index: it follows every committed write (and no
rolled-back one), and its one-pass search for whole-provider requests gives
what the general search gives."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from multidict import MultiDict

from cloudd.db import tables as t
from cloudd.services.placement import candidate_search
from cloudd.services.placement.candidate_db import Inv
from cloudd.services.placement.candidate_index import IndexedSnapshot
from cloudd.services.placement.candidates import find_candidates_json, render, render_json
from cloudd.services.placement.query import parse_candidate_query
from tests.placement.test_candidates_search import NOW, U, backend, candidates, db, seed  # noqa: F401 (fixtures)


@pytest.mark.asyncio
async def test_commit_hooks_name_the_tables_a_committed_write_changed(db):  # noqa: F811
    seen: list[set[str]] = []
    db.commit_hooks.append(seen.append)
    async with db.write() as conn:
        await conn.execute(t.resource_class.insert().values(
            name="CUSTOM_HOOKED", created_at=NOW))
    assert seen == [{"resource_class"}]
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(t.resource_class.insert().values(
                name="CUSTOM_ROLLED_BACK", created_at=NOW))
            raise RuntimeError("roll back")
    async with db.read() as conn:
        await conn.execute(t.resource_class.select())
    assert seen == [{"resource_class"}]


@pytest.mark.asyncio
async def test_candidates_follow_each_committed_write(db):  # noqa: F811
    await seed(db, [{"name": "cn1", "inv": {"VCPU": 4}},
                    {"name": "cn2", "inv": {"VCPU": 4}, "traits": ["HW_CPU_X86_AVX2"]}])
    v = (1, 39)

    async def used() -> dict[str, int]:
        body = await candidates(db, v, resources="VCPU:1")
        return {rp: s["resources"]["VCPU"]["used"]
                for rp, s in body["provider_summaries"].items()}

    assert await used() == {U("cn1"): 0, U("cn2"): 0}
    async with db.write() as conn:       # allocations only: the usage is re-read
        await conn.execute(t.allocation.insert().values(
            resource_provider_uuid=U("cn1"), consumer_uuid=str(uuid.uuid4()),
            resource_class="VCPU", used=4, created_at=NOW))
    assert await used() == {U("cn2"): 0}          # cn1 is full
    body = await candidates(db, v, resources="VCPU:1", required="HW_CPU_X86_AVX2")
    assert list(body["provider_summaries"]) == [U("cn2")]
    async with db.write() as conn:       # a trait: everything is re-read
        await conn.execute(t.resource_provider_trait.insert().values(
            resource_provider_uuid=U("cn1"), trait="HW_CPU_X86_AVX2"))
        await conn.execute(t.allocation.delete())
    body = await candidates(db, v, resources="VCPU:1", required="HW_CPU_X86_AVX2")
    assert sorted(body["provider_summaries"]) == sorted([U("cn1"), U("cn2")])
    assert await used() == {U("cn1"): 0, U("cn2"): 0}


def _world(n: int, seed_: int) -> IndexedSnapshot:
    rnd = random.Random(seed_)
    snap = IndexedSnapshot()
    aggs = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(3)]
    traits = ["HW_CPU_X86_AVX2", "STORAGE_DISK_SSD", "CUSTOM_X"]
    for _ in range(n):
        rp = str(uuid.UUID(int=rnd.getrandbits(128)))
        snap.providers[rp] = (rp, None)
        snap.trees[rp] = [rp]
        invs = {}
        for rc in ("VCPU", "MEMORY_MB", "DISK_GB"):
            if rnd.random() < 0.9:
                total = rnd.choice([2, 8, 64])
                invs[rc] = Inv(total, rnd.choice([0, 1]), 1, total, rnd.choice([1, 2]),
                               rnd.choice([1.0, 1.5]), rnd.randint(0, total))
                snap.inventories.setdefault(rc, {})[rp] = invs[rc]
        snap.by_provider[rp] = invs
        snap.traits[rp] = {x for x in traits if rnd.random() < 0.5}
        for x in snap.traits[rp]:
            snap.trait_members.setdefault(x, set()).add(rp)
        for agg in aggs:
            if rnd.random() < 0.3:
                snap.agg_members.setdefault(agg, set()).add(rp)
    snap.ordered = sorted(snap.providers)
    snap.rc_names = {"VCPU", "MEMORY_MB", "DISK_GB"}
    snap.trait_names = set(traits)
    snap.standard = set(traits[:2])
    snap.aggs = aggs
    return snap


def test_whole_provider_search_matches_the_general_search(monkeypatch):
    snap = _world(300, 7)
    a, b, c = snap.aggs
    queries = [
        "resources=VCPU:1,MEMORY_MB:2",
        "resources=VCPU:2,DISK_GB:1&limit=7",
        "resources=VCPU:1&required=HW_CPU_X86_AVX2,!CUSTOM_X",
        "resources=VCPU:1&required=in:HW_CPU_X86_AVX2,STORAGE_DISK_SSD",
        f"resources=MEMORY_MB:1&member_of=in:{a},{b}&member_of={c}",
        f"resources=MEMORY_MB:1&member_of=!{a}&limit=5",
        "resources=VCPU:1&root_required=STORAGE_DISK_SSD,!CUSTOM_X",
        "resources=VCPU:64",
    ]
    counts: list[int] = []
    for q in queries:
        query = MultiDict(p.split("=", 1) for p in q.split("&"))
        groups, params = parse_candidate_query(query, (1, 39))
        assert candidate_search._whole_providers_only(snap, groups)
        fast = candidate_search.search(snap, groups, params)
        with monkeypatch.context() as m:
            m.setattr(candidate_search, "_whole_providers_only", lambda *_: False)
            general = candidate_search.search(snap, groups, params)
        assert [(x.resources, x.mappings) for x in fast.candidates] == \
            [(x.resources, x.mappings) for x in general.candidates], q
        assert fast.roots == general.roots, q
        counts.append(len(fast.candidates))
    assert counts[0] > 50 and counts[1] == 7 and all(counts), counts


def test_rendered_json_is_the_rendered_body():
    """The HTTP body put together from cached pieces is the document
    ``render`` gives, at every microversion shape, cached or not."""
    snap = _world(300, 11)
    a, b, _ = snap.aggs
    queries = ["resources=VCPU:1,MEMORY_MB:2",
               "resources=VCPU:2,DISK_GB:1&limit=7",
               "resources=VCPU:1&required=HW_CPU_X86_AVX2,!CUSTOM_X",
               f"resources=MEMORY_MB:1&member_of=in:{a},{b}",
               "resources=VCPU:64"]
    pieces = 0
    for version in [(1, 26), (1, 27), (1, 29), (1, 34), (1, 39)]:
        for q in queries:
            query = MultiDict(p.split("=", 1) for p in q.split("&"))
            groups, params = parse_candidate_query(query, version)
            rcs = set(groups[""].resources)
            for _ in range(2):              # then from the cached pieces
                result = candidate_search.search(snap, groups, params,
                                                 nested_aware=version >= (1, 29))
                assert result.whole is not None, q
                expected = render(result, snap.summaries(result.roots), rcs, version)
                body = render_json(snap, result, rcs, version)
                assert json.loads(body) == expected, (version, q)
                pieces += bool(result.whole.providers and version >= (1, 27))
    assert pieces > 20 and snap.summary_json


@pytest.mark.asyncio
async def test_rendered_json_follows_usage(db):  # noqa: F811
    """The cached summaries and fitting providers are dropped when usage moves."""
    await seed(db, [{"name": "cn1", "inv": {"VCPU": 4}}, {"name": "cn2", "inv": {"VCPU": 4}}])
    query = MultiDict(resources="VCPU:2")
    groups, params = parse_candidate_query(query, (1, 39))

    async def used() -> dict[str, int]:
        body = json.loads(await find_candidates_json(db, groups, params, version=(1, 39)))
        return {rp: s["resources"]["VCPU"]["used"]
                for rp, s in body["provider_summaries"].items()}

    assert await used() == {U("cn1"): 0, U("cn2"): 0}
    consumer = str(uuid.uuid4())
    async with db.write() as conn:
        await conn.execute(t.allocation.insert(), [
            {"resource_provider_uuid": U("cn1"), "consumer_uuid": consumer,
             "resource_class": "VCPU", "used": 3, "created_at": NOW},
            {"resource_provider_uuid": U("cn2"), "consumer_uuid": consumer,
             "resource_class": "VCPU", "used": 1, "created_at": NOW}])
    assert await used() == {U("cn2"): 1}          # 2 more no longer fit on cn1
    async with db.write() as conn:
        await conn.execute(t.allocation.delete())
    assert await used() == {U("cn1"): 0, U("cn2"): 0}
