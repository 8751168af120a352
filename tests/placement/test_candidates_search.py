"""Allocation candidates and provider filters straight against the database
(SQLite and PostgreSQL): capacity math, sharing, nesting, granular groups,
group_policy, same_subtree, root_required, limit, microversion shapes."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import pytest_asyncio
from multidict import MultiDict

from cloudd.db import Database, migrate
from cloudd.db import tables as t
from cloudd.services.placement.candidates import candidates_for_query
from cloudd.services.placement.query import filter_providers
from cloudd.web.errors import ApiError

NOW = datetime(2024, 1, 1)
BACKENDS = ["sqlite", "postgresql"]


def U(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"cloudd-test-{name}"))


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def db(backend, database_url, tmp_path):
    database = Database(database_url(backend, tmp_path / "data"))
    await migrate.prepare(database)
    yield database
    await database.close()


async def seed(db: Database, providers: list[dict], allocations=()) -> None:
    """providers: {name, parent?, inv: {rc: total | {total, ...}}, traits, aggs}."""
    rcs, traits = set(), set()
    for p in providers:
        rcs |= set(p.get("inv", {}))
        traits |= set(p.get("traits", ()))
    async with db.write() as conn:
        await conn.execute(t.resource_class.insert(), [
            {"name": rc, "standard": not rc.startswith("CUSTOM_"), "created_at": NOW}
            for rc in sorted(rcs)])
        if traits:
            await conn.execute(t.trait.insert(), [
                {"name": n, "standard": not n.startswith("CUSTOM_"), "created_at": NOW}
                for n in sorted(traits | {"CUSTOM_UNUSED"})])
        roots: dict[str, str] = {}
        for p in providers:
            parent = p.get("parent")
            roots[p["name"]] = roots[parent] if parent else U(p["name"])
            await conn.execute(t.resource_provider.insert().values(
                uuid=U(p["name"]), name=p["name"], generation=0, created_at=NOW,
                root_provider_uuid=roots[p["name"]],
                parent_provider_uuid=U(parent) if parent else None))
            for rc, spec in p.get("inv", {}).items():
                spec = {"total": spec} if isinstance(spec, int) else dict(spec)
                spec.setdefault("max_unit", spec["total"])
                await conn.execute(t.inventory.insert().values(
                    resource_provider_uuid=U(p["name"]), resource_class=rc,
                    created_at=NOW, **spec))
            for trait in p.get("traits", ()):
                await conn.execute(t.resource_provider_trait.insert().values(
                    resource_provider_uuid=U(p["name"]), trait=trait))
            for agg in p.get("aggs", ()):
                await conn.execute(t.resource_provider_aggregate.insert().values(
                    resource_provider_uuid=U(p["name"]), aggregate_uuid=U(agg)))
        for consumer, name, rc, used in allocations:
            await conn.execute(t.allocation.insert().values(
                resource_provider_uuid=U(name), consumer_uuid=U(consumer),
                resource_class=rc, used=used, created_at=NOW))


async def candidates(db, version, **params):
    query = MultiDict()
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            query.add(key, v)
    return await candidates_for_query(db, query, version=version)


def names(body, world) -> list[dict[str, dict]]:
    """allocation_requests as [{provider name: resources}] (1.12+ format)."""
    by_uuid = {U(p["name"]): p["name"] for p in world}
    return [{by_uuid[rp]: v["resources"] for rp, v in ar["allocations"].items()}
            for ar in body["allocation_requests"]]


GRANULAR = [
    {"name": "cn_left", "aggs": ["aggA"],
     "inv": {"VCPU": 8, "MEMORY_MB": 4096, "DISK_GB": 500, "VGPU": 8, "SRIOV_NET_VF": 8,
             "CUSTOM_NET_MBPS": 4000},
     "traits": ["HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_GPU_API_DXVA", "HW_NIC_DCB_PFC",
                "CUSTOM_FOO"]},
    {"name": "cn_middle", "aggs": ["aggA", "aggB"],
     "inv": {"VCPU": 8, "MEMORY_MB": 4096, "SRIOV_NET_VF": 8, "CUSTOM_NET_MBPS": 4000},
     "traits": ["HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_CPU_X86_SSE", "HW_NIC_ACCEL_TLS"]},
    {"name": "cn_right", "aggs": ["aggB", "aggC"],
     "inv": {"VCPU": 8, "MEMORY_MB": 4096, "DISK_GB": 500,
             "VGPU": {"total": 8, "max_unit": 2}},
     "traits": ["HW_CPU_X86_MMX", "HW_GPU_API_DXVA", "CUSTOM_DISK_SSD"]},
    {"name": "shr_disk_1", "aggs": ["aggA"], "inv": {"DISK_GB": 1000},
     "traits": ["MISC_SHARES_VIA_AGGREGATE", "CUSTOM_DISK_SSD"]},
    {"name": "shr_disk_2", "aggs": ["aggA", "aggB"], "inv": {"DISK_GB": 1000},
     "traits": ["MISC_SHARES_VIA_AGGREGATE"]},
    {"name": "shr_net", "aggs": ["aggC"],
     "inv": {"SRIOV_NET_VF": 16, "CUSTOM_NET_MBPS": 40000},
     "traits": ["MISC_SHARES_VIA_AGGREGATE"]},
]


@pytest.mark.asyncio
async def test_granular_scenarios(db):
    await seed(db, GRANULAR)
    v = (1, 25)
    body = await candidates(db, v, resources1="VCPU:1", resources2="MEMORY_MB:1024",
                            group_policy="none")
    assert len(body["allocation_requests"]) == 3 and len(body["provider_summaries"]) == 3
    body = await candidates(db, v, resources1="VCPU:1", resources2="MEMORY_MB:1024",
                            group_policy="isolate")
    assert body == {"allocation_requests": [], "provider_summaries": {}}
    body = await candidates(db, v, resources="VCPU:3,MEMORY_MB:512",
                            resources1="VCPU:1,MEMORY_MB:1024", resources2="VCPU:2",
                            group_policy="none")
    assert all(list(ar.values()) == [{"VCPU": 6, "MEMORY_MB": 1536}]
               for ar in names(body, GRANULAR))
    for policy, count in (("isolate", 5), ("none", 7)):
        body = await candidates(db, v, resources1="VCPU:1,MEMORY_MB:1024",
                                resources2="DISK_GB:100", group_policy=policy)
        assert len(body["allocation_requests"]) == count
        assert len(body["provider_summaries"]) == 5
    for key in ("resources", "resources1"):
        body = await candidates(db, v, **{key: "DISK_GB:800"})
        assert sorted(n for ar in names(body, GRANULAR) for n in ar) == [
            "shr_disk_1", "shr_disk_2"]
    body = await candidates(db, v, resources1="VCPU:1", required1="!HW_CPU_X86_SSE",
                            resources2="DISK_GB:100", required2="CUSTOM_DISK_SSD",
                            member_of2=f"in:{U('aggA')},{U('aggC')}", group_policy="none")
    assert sorted(sorted(ar) for ar in names(body, GRANULAR)) == [
        ["cn_left", "shr_disk_1"], ["cn_right"]]
    body = await candidates(db, v, resources1="VCPU:1", resources2="DISK_GB:100",
                            member_of2=[f"in:{U('aggB')},{U('aggC')}", U("aggA")],
                            group_policy="isolate")
    assert len(body["allocation_requests"]) == 3
    body = await candidates(
        db, v, resources1="VCPU:1", resources2="VGPU:1", required2="HW_GPU_API_DXVA",
        resources3="MEMORY_MB:1024", resources4="DISK_GB:100", required4="CUSTOM_DISK_SSD",
        resources5="DISK_GB:50", required5="!CUSTOM_DISK_SSD",
        resources6="SRIOV_NET_VF:1,CUSTOM_NET_MBPS:1000",
        resources7="SRIOV_NET_VF:2,CUSTOM_NET_MBPS:2000", group_policy="none")
    assert len(body["allocation_requests"]) == 3
    assert len(body["provider_summaries"]) == 5
    # Combined amounts are checked against capacity and max_unit.
    body = await candidates(db, v, resources="VCPU:2,MEMORY_MB:2048,SRIOV_NET_VF:1,"
                            "CUSTOM_NET_MBPS:2000", resources1="SRIOV_NET_VF:1,"
                            "CUSTOM_NET_MBPS:3000")
    assert names(body, GRANULAR) == [{"cn_right": {"VCPU": 2, "MEMORY_MB": 2048},
                                      "shr_net": {"SRIOV_NET_VF": 2,
                                                  "CUSTOM_NET_MBPS": 5000}}]
    body = await candidates(db, v, resources="VGPU:1", resources1="VGPU:1",
                            resources2="VGPU:1", group_policy="none")
    assert names(body, GRANULAR) == [{"cn_left": {"VGPU": 3}}]


@pytest.mark.asyncio
async def test_any_traits_and_mappings(db):
    await seed(db, GRANULAR)
    body = await candidates(db, (1, 39), required=["in:HW_GPU_API_DXVA,HW_NIC_ACCEL_TLS",
                                                   "HW_CPU_X86_AVX,!CUSTOM_FOO"],
                            resources="VCPU:1,DISK_GB:1")
    assert sorted(sorted(ar) for ar in names(body, GRANULAR)) == [
        ["cn_middle", "shr_disk_1"], ["cn_middle", "shr_disk_2"]]
    for ar in body["allocation_requests"]:
        assert sorted(ar["mappings"][""]) == sorted(ar["allocations"])
    body = await candidates(db, (1, 34), resources="VCPU:1", resources_DISK_A="DISK_GB:1",
                            resources_DISK_B="DISK_GB:1", required="HW_CPU_X86_SSE",
                            group_policy="isolate")
    assert len(body["allocation_requests"]) == 2
    for ar in body["allocation_requests"]:
        assert ar["mappings"][""] == [U("cn_middle")]
        assert {ar["mappings"]["_DISK_A"][0], ar["mappings"]["_DISK_B"][0]} == {
            U("shr_disk_1"), U("shr_disk_2")}
    body = await candidates(db, (1, 33), resources="VCPU:1", required="HW_CPU_X86_SSE")
    assert list(body["allocation_requests"][0]) == ["allocations"]


SHARED_NESTED = [
    {"name": "cn1", "aggs": ["agg"], "inv": {
        "VCPU": {"total": 24, "allocation_ratio": 16.0},
        "MEMORY_MB": {"total": 131072, "allocation_ratio": 1.5}},
     "traits": ["HW_CPU_X86_SSE", "HW_CPU_X86_SSE2"]},
    {"name": "cn2", "aggs": ["agg"], "inv": {
        "VCPU": {"total": 24, "allocation_ratio": 16.0},
        "MEMORY_MB": {"total": 131072, "allocation_ratio": 1.5},
        "DISK_GB": {"total": 2000, "reserved": 100}}},
    {"name": "ss", "aggs": ["agg"], "inv": {"DISK_GB": {"total": 2000, "reserved": 100}},
     "traits": ["MISC_SHARES_VIA_AGGREGATE"]},
    {"name": "ss2", "aggs": ["agg"], "inv": {"DISK_GB": {"total": 2000, "reserved": 100}},
     "traits": ["MISC_SHARES_VIA_AGGREGATE"]},
    {"name": "numa1_1", "parent": "cn1"}, {"name": "numa1_2", "parent": "cn1"},
    {"name": "numa2_1", "parent": "cn2"}, {"name": "numa2_2", "parent": "cn2"},
    {"name": "pf1_1", "parent": "numa1_1", "inv": {"SRIOV_NET_VF": 8}},
    {"name": "pf1_2", "parent": "numa1_2", "inv": {"SRIOV_NET_VF": 8}},
    {"name": "pf2_1", "parent": "numa2_1", "inv": {"SRIOV_NET_VF": 8}},
    {"name": "pf2_2", "parent": "numa2_2", "inv": {"SRIOV_NET_VF": 8}},
]


@pytest.mark.asyncio
async def test_shared_and_nested(db):
    await seed(db, SHARED_NESTED)
    body = await candidates(db, (1, 10), resources="VCPU:1,MEMORY_MB:1024,DISK_GB:100")
    assert len(body["allocation_requests"]) == 5
    sums = body["provider_summaries"]
    assert len(sums) == 4
    assert sums[U("cn1")] == {"resources": {"VCPU": {"capacity": 384, "used": 0},
                                            "MEMORY_MB": {"capacity": 196608, "used": 0}}}
    assert sums[U("cn2")]["resources"]["DISK_GB"] == {"capacity": 1900, "used": 0}
    # Before 1.12 allocations are a list.
    first = body["allocation_requests"][0]["allocations"]
    assert isinstance(first, list) and set(first[0]) == {"resource_provider", "resources"}
    body = await candidates(db, (1, 17), resources="VCPU:1,MEMORY_MB:1024,DISK_GB:100",
                            required="HW_CPU_X86_SSE")
    assert len(body["allocation_requests"]) == 2 and len(body["provider_summaries"]) == 3
    assert sorted(body["provider_summaries"][U("cn1")]["traits"]) == [
        "HW_CPU_X86_SSE", "HW_CPU_X86_SSE2"]
    # Nested: invisible combinations before 1.29, whole trees summarised after.
    assert len((await candidates(db, (1, 28), resources="SRIOV_NET_VF:4"))
               ["provider_summaries"]) == 4
    body = await candidates(db, (1, 29), resources="SRIOV_NET_VF:4")
    assert len(body["allocation_requests"]) == 4 and len(body["provider_summaries"]) == 10
    assert body["provider_summaries"][U("pf1_1")]["parent_provider_uuid"] == U("numa1_1")
    assert body["provider_summaries"][U("pf1_1")]["root_provider_uuid"] == U("cn1")
    assert (await candidates(db, (1, 28), resources="VCPU:1,SRIOV_NET_VF:4")) == {
        "allocation_requests": [], "provider_summaries": {}}
    body = await candidates(db, (1, 28), resources="DISK_GB:10,SRIOV_NET_VF:4")
    assert len(body["allocation_requests"]) == 8 and len(body["provider_summaries"]) == 6
    body = await candidates(db, (1, 29), resources="VCPU:1,SRIOV_NET_VF:4", limit="1")
    assert len(body["allocation_requests"]) == 1 and len(body["provider_summaries"]) == 5
    # in_tree
    body = await candidates(db, (1, 31), resources="VCPU:1,SRIOV_NET_VF:4",
                            in_tree=U("pf1_2"))
    assert len(body["allocation_requests"]) == 2
    assert (await candidates(db, (1, 31), resources="VCPU:1,DISK_GB:10",
                             in_tree=U("cn1")))["allocation_requests"] == []
    body = await candidates(db, (1, 31), resources="VCPU:1", resources1="DISK_GB:10",
                            in_tree1=U("ss"))
    assert len(body["allocation_requests"]) == 2
    body = await candidates(db, (1, 31), resources1="VCPU:1", in_tree1=U("cn1"),
                            resources2="DISK_GB:10", in_tree2=U("ss"), group_policy="none")
    assert names(body, SHARED_NESTED) == [{"cn1": {"VCPU": 1}, "ss": {"DISK_GB": 10}}]
    body = await candidates(db, (1, 31), resources="VCPU:1", resources1="VCPU:1",
                            in_tree1=str(uuid.uuid4()))
    assert body["allocation_requests"] == []


@pytest.mark.asyncio
async def test_usage_and_inventory_constraints(db):
    world = [{"name": "cn", "inv": {
        "VCPU": {"total": 4, "reserved": 1, "allocation_ratio": 2.0},
        "DISK_GB": {"total": 100, "min_unit": 10, "max_unit": 50, "step_size": 5}}}]
    await seed(db, world, allocations=[("vm1", "cn", "VCPU", 4)])
    # (4 - 1) * 2.0 - 4 = 2 VCPU left
    assert len((await candidates(db, (1, 12), resources="VCPU:2"))
               ["allocation_requests"]) == 1
    assert (await candidates(db, (1, 12), resources="VCPU:3"))["allocation_requests"] == []
    for amount, fits in ((5, False), (10, True), (12, False), (15, True), (55, False)):
        body = await candidates(db, (1, 12), resources=f"DISK_GB:{amount}")
        assert bool(body["allocation_requests"]) is fits, amount
    body = await candidates(db, (1, 12), resources="VCPU:1")
    assert body["provider_summaries"][U("cn")]["resources"]["VCPU"] == {
        "capacity": 6, "used": 4}
    with pytest.raises(ApiError) as info:
        await candidates(db, (1, 12), resources="MCPU:99")
    assert info.value.message == ("Invalid resource class in resources parameter: "
                                  "No such resource class MCPU.")
    with pytest.raises(ApiError) as info:
        await candidates(db, (1, 17), resources="VCPU:1", required="INVALID_TRAIT")
    assert info.value.message == "No such trait(s): INVALID_TRAIT."


NUMA_NET = [
    {"name": "cn1", "traits": ["COMPUTE_VOLUME_MULTI_ATTACH"], "aggs": ["aggA"]},
    {"name": "numa0", "parent": "cn1", "inv": {"VCPU": 4, "MEMORY_MB": 2048},
     "traits": ["HW_NUMA_ROOT"]},
    {"name": "numa1", "parent": "cn1", "inv": {"VCPU": 4, "MEMORY_MB": 2048},
     "traits": ["HW_NUMA_ROOT", "CUSTOM_FOO"]},
    {"name": "fpga0", "parent": "numa0", "inv": {"FPGA": 1}},
    {"name": "fpga1_0", "parent": "numa1", "inv": {"FPGA": 1}},
    {"name": "fpga1_1", "parent": "numa1", "inv": {"FPGA": 1}},
    {"name": "cn2", "inv": {"VCPU": 8, "MEMORY_MB": 2048, "DISK_GB": 1000},
     "traits": ["CUSTOM_FOO"], "aggs": ["aggA"]},
    {"name": "ss1", "inv": {"DISK_GB": 1000}, "aggs": ["aggA"],
     "traits": ["MISC_SHARES_VIA_AGGREGATE"]},
]


@pytest.mark.asyncio
async def test_same_subtree_and_root_required(db):
    await seed(db, NUMA_NET)
    v = (1, 36)
    body = await candidates(db, v, resources_COMPUTE="VCPU:1", resources_ACCEL="FPGA:1",
                            group_policy="none")
    assert len(body["allocation_requests"]) == 6
    body = await candidates(db, v, resources_COMPUTE="VCPU:1", resources_ACCEL="FPGA:1",
                            same_subtree="_COMPUTE,_ACCEL", group_policy="none")
    assert len(body["allocation_requests"]) == 3
    body = await candidates(db, v, required_NUMA="HW_NUMA_ROOT", resources_ACCEL1="FPGA:1",
                            resources_ACCEL2="FPGA:1", same_subtree="_NUMA,_ACCEL1,_ACCEL2",
                            group_policy="isolate")
    assert len(body["allocation_requests"]) == 2
    for ar in body["allocation_requests"]:
        assert ar["mappings"]["_NUMA"] == [U("numa1")]
        assert set(ar["allocations"]) == {U("fpga1_0"), U("fpga1_1")}
    body = await candidates(db, v, resources_C1="VCPU:1", required_C2="CUSTOM_FOO",
                            required_C3="HW_NUMA_ROOT", same_subtree="_C1,_C2,_C3",
                            group_policy="none")
    assert names(body, NUMA_NET) == [{"numa1": {"VCPU": 1}}]
    assert len(body["allocation_requests"][0]["mappings"]) == 3
    # root_required
    body = await candidates(db, v, resources="VCPU:1,MEMORY_MB:1024",
                            root_required="COMPUTE_VOLUME_MULTI_ATTACH")
    assert len(body["allocation_requests"]) == 4
    assert (await candidates(db, v, resources="VCPU:1",
                             root_required="HW_NUMA_ROOT"))["allocation_requests"] == []
    body = await candidates(db, v, resources="VCPU:1,DISK_GB:100", required="CUSTOM_FOO")
    assert len(body["allocation_requests"]) == 3
    body = await candidates(db, v, resources="VCPU:1,DISK_GB:100",
                            root_required="CUSTOM_FOO")
    assert len(body["allocation_requests"]) == 2
    body = await candidates(db, v, resources1="VCPU:1", required1="CUSTOM_FOO",
                            root_required="!CUSTOM_FOO")
    assert names(body, NUMA_NET) == [{"numa1": {"VCPU": 1}}]
    assert body["provider_summaries"][U("numa1")]["traits"] == ["HW_NUMA_ROOT", "CUSTOM_FOO"]
    with pytest.raises(ApiError) as info:
        await candidates(db, v, resources="VCPU:1", root_required="!CUSTOM_NO_EXIST")
    assert info.value.message == "No such trait(s): CUSTOM_NO_EXIST."


async def providers(db, version, **params):
    query = MultiDict()
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            query.add(key, v)
    async with db.read() as conn:
        found = await filter_providers(conn, query, version)
    return None if found is None else sorted(p["name"] for p in GRANULAR + NUMA_NET
                                             if U(p["name"]) in found)


@pytest.mark.asyncio
async def test_provider_filter(db):
    await seed(db, GRANULAR)
    latest = (1, 39)
    assert await providers(db, latest, name="x") is None
    assert await providers(db, latest, resources="DISK_GB:600") == ["shr_disk_1",
                                                                   "shr_disk_2"]
    assert await providers(db, latest, resources="VGPU:3") == ["cn_left"]
    assert await providers(db, latest, resources="VCPU:1,DISK_GB:1") == [
        "cn_left", "cn_right"]
    assert await providers(db, (1, 38), required=["CUSTOM_FOO", "HW_CPU_X86_MMX"]) == [
        "cn_right"]
    assert await providers(db, latest, required=["in:HW_GPU_API_DXVA,HW_NIC_ACCEL_TLS",
                                                 "HW_CPU_X86_AVX,!CUSTOM_FOO"]) == [
        "cn_middle"]
    assert await providers(db, latest, member_of=f"in:{U('aggB')},{U('aggC')}",
                           resources="VCPU:1") == ["cn_middle", "cn_right"]
    assert await providers(db, latest, member_of=f"!{U('aggA')}") == ["cn_right", "shr_net"]
    assert await providers(db, latest, in_tree=U("cn_left")) == ["cn_left"]
    assert await providers(db, latest, in_tree=str(uuid.uuid4()), resources="NOPE:1") == []
    with pytest.raises(ApiError) as info:
        await providers(db, latest, resources="MYMISSINGCLASS:1")
    assert info.value.message == ("Invalid resource class in resources parameter: "
                                  "No such resource class MYMISSINGCLASS.")
    with pytest.raises(ApiError) as info:
        await providers(db, latest, required="CUSTOM_NOPE")
    assert info.value.message == ('Invalid trait(s) in "required" parameter: '
                                  "No such trait(s): CUSTOM_NOPE.")


@pytest.mark.asyncio
async def test_scheduler_api(db):
    from cloudd.services.placement.query import RequestGroup, RequestWideParams
    from cloudd.services.placement.service import PlacementService
    world = [{"name": "cn", "inv": {"VCPU": 4, "MEMORY_MB": 4096}},
             {"name": "gpu", "parent": "cn", "inv": {"VGPU": 2}}]
    await seed(db, world)
    svc = PlacementService(db)
    body = await svc.candidates(query={"resources": "VCPU:2,MEMORY_MB:1024",
                                       "resources_GPU": "VGPU:1", "group_policy": "none"})
    assert len(body["allocation_requests"]) == 1
    ar = body["allocation_requests"][0]
    assert ar["mappings"] == {"": [U("cn")], "_GPU": [U("gpu")]}
    same = await svc.candidates({"": RequestGroup(False, {"VCPU": 2, "MEMORY_MB": 1024}),
                                 "_GPU": RequestGroup(True, {"VGPU": 1})},
                                RequestWideParams(group_policy="none"))
    assert same == body
    allocations = {rp: v["resources"] for rp, v in ar["allocations"].items()}
    assert await svc.claim(U("vm1"), allocations, "p", "u")
    left = await svc.candidates({"": RequestGroup(False, {"VCPU": 3})})
    assert left["allocation_requests"] == []
    left = await svc.candidates({"": RequestGroup(False, {"VCPU": 2})})
    assert left["provider_summaries"][U("cn")]["resources"]["VCPU"] == {
        "capacity": 4, "used": 2}
    with pytest.raises(ApiError):
        await svc.candidates(query={"resources1": "VCPU:1", "resources2": "VCPU:1"})
