"""Allocations through PlacementService / allocation_store, on SQLite and PostgreSQL:
capacity math, atomicity, generations, consumers, move, idempotent claims, retry."""

from __future__ import annotations

import pytest
import pytest_asyncio
from sqlalchemy.exc import DBAPIError

from cloudd.services.placement import allocation_store as store
from cloudd.services.placement.consumers import INCOMPLETE_PROJECT_ID
from cloudd.services.placement.errors import CONCURRENT_UPDATE
from cloudd.services.placement.service import PlacementService
from cloudd.web.errors import ApiError
from tests.placement.allocation_helpers import (
    U,
    add_provider,
    consumer_row,
    generation,
    set_inventory,
    used,
)

BACKENDS = ["sqlite", "postgresql"]
PROJECT, USER = "proj", "user"


@pytest_asyncio.fixture
async def svc(db):
    return PlacementService(db)


@pytest.mark.asyncio
async def test_claim_and_read_back(db, svc):
    cn = await add_provider(db, "cn", VCPU=8, MEMORY_MB=4096)
    assert await svc.claim(U("i1"), {cn: {"VCPU": 2, "MEMORY_MB": 512}}, PROJECT, USER)
    body = await svc.get_allocations(U("i1"))
    assert body == {"allocations": {cn: {"generation": 1,
                                         "resources": {"MEMORY_MB": 512, "VCPU": 2}}},
                    "project_id": PROJECT, "user_id": USER, "consumer_generation": 1,
                    "consumer_type": "INSTANCE"}
    assert await svc.get_allocations(U("nobody")) == {"allocations": {}}


@pytest.mark.asyncio
async def test_capacity_reserved_and_ratio(db, svc):
    cn = await add_provider(db, "cn", VCPU={"total": 4, "reserved": 1,
                                            "allocation_ratio": 2.0, "max_unit": 6})
    # capacity (4 - 1) * 2 = 6
    assert await svc.claim(U("a"), {cn: {"VCPU": 5}}, PROJECT, USER)
    assert not await svc.claim(U("b"), {cn: {"VCPU": 2}}, PROJECT, USER)
    assert await svc.claim(U("b"), {cn: {"VCPU": 1}}, PROJECT, USER)
    assert await used(db, cn, "VCPU") == 6


@pytest.mark.asyncio
async def test_unit_constraints(db, svc):
    cn = await add_provider(db, "cn", DISK_GB={"total": 100, "min_unit": 10,
                                               "max_unit": 50, "step_size": 5})
    for amount in (5, 55, 12):
        assert not await svc.claim(U(f"c{amount}"), {cn: {"DISK_GB": amount}}, PROJECT, USER)
    assert await svc.claim(U("ok"), {cn: {"DISK_GB": 15}}, PROJECT, USER)


@pytest.mark.asyncio
async def test_multi_provider_claim_is_all_or_nothing(db, svc):
    cn = await add_provider(db, "cn", VCPU=4)
    disk = await add_provider(db, "disk", DISK_GB=10)
    assert not await svc.claim(U("i"), {cn: {"VCPU": 1}, disk: {"DISK_GB": 11}}, PROJECT, USER)
    assert await used(db, cn, "VCPU") == 0
    assert await consumer_row(db, U("i")) is None          # auto-created, rolled back
    assert await generation(db, cn) == 0
    assert await svc.claim(U("i"), {cn: {"VCPU": 1}, disk: {"DISK_GB": 10}}, PROJECT, USER)
    assert (await generation(db, cn), await generation(db, disk)) == (1, 1)


@pytest.mark.asyncio
async def test_consumer_generations(db, svc):
    cn = await add_provider(db, "cn", VCPU=8)
    assert await svc.claim(U("i"), {cn: {"VCPU": 1}}, PROJECT, USER)
    # The same claim again (a re-delivered request) is fine and writes nothing.
    assert await svc.claim(U("i"), {cn: {"VCPU": 1}}, PROJECT, USER)
    assert (await consumer_row(db, U("i"))).generation == 1
    # A different claim that expects a new consumer is a conflict.
    with pytest.raises(ApiError) as err:
        await svc.claim(U("i"), {cn: {"VCPU": 2}}, PROJECT, USER)
    assert err.value.status == 409 and err.value.code == CONCURRENT_UPDATE
    assert "expected 1 but got None" in err.value.message
    with pytest.raises(ApiError):
        await svc.claim(U("i"), {cn: {"VCPU": 2}}, PROJECT, USER, consumer_generation=7)
    assert await svc.claim(U("i"), {cn: {"VCPU": 2}}, PROJECT, USER, consumer_generation=1)
    assert (await consumer_row(db, U("i"))).generation == 2
    assert await used(db, cn, "VCPU") == 2


@pytest.mark.asyncio
async def test_release(db, svc):
    cn = await add_provider(db, "cn", VCPU=8)
    assert await svc.claim(U("i"), {cn: {"VCPU": 3}}, PROJECT, USER)

    async def indexed_usage() -> int:       # what the candidate index saw committed
        body = await svc.candidates(query={"resources": "VCPU:1"})
        return body["provider_summaries"][cn]["resources"]["VCPU"]["used"]

    assert await indexed_usage() == 3
    assert await svc.release(U("i"))
    assert await used(db, cn, "VCPU") == 0
    assert await indexed_usage() == 0
    assert await consumer_row(db, U("i")) is None
    assert not await svc.release(U("i"))                    # idempotent
    assert await generation(db, cn) == 1                     # Placement: no bump on delete


@pytest.mark.asyncio
async def test_move_for_resize_and_revert(db, svc):
    src = await add_provider(db, "src", VCPU=4, MEMORY_MB=1024)
    dst = await add_provider(db, "dst", VCPU=4, MEMORY_MB=1024)
    inst, mig = U("instance"), U("migration")
    assert await svc.claim(inst, {src: {"VCPU": 2, "MEMORY_MB": 512}}, PROJECT, USER)
    assert await svc.move(inst, mig)
    held = await svc.get_allocations(mig)
    assert held["allocations"][src]["resources"] == {"VCPU": 2, "MEMORY_MB": 512}
    assert held["consumer_type"] == "MIGRATION" and held["project_id"] == PROJECT
    assert await svc.get_allocations(inst) == {"allocations": {}}
    # The instance now claims the destination as a new consumer.
    assert await svc.claim(inst, {dst: {"VCPU": 4, "MEMORY_MB": 512}}, PROJECT, USER)
    assert await used(db, src, "VCPU") == 2 and await used(db, dst, "VCPU") == 4
    # Revert: the migration's source allocations go back to the instance.
    assert await svc.move(mig, inst, target_consumer_type="INSTANCE")
    back = await svc.get_allocations(inst)
    assert list(back["allocations"]) == [src] and back["consumer_type"] == "INSTANCE"
    assert await used(db, dst, "VCPU") == 0
    assert await svc.get_allocations(mig) == {"allocations": {}}
    assert not await svc.move(mig, inst)                     # nothing to move


@pytest.mark.asyncio
async def test_move_keeping_source_allocations_that_do_not_fit(db, svc):
    src = await add_provider(db, "src", VCPU=4)
    assert await svc.claim(U("i"), {src: {"VCPU": 3}}, PROJECT, USER)
    # Moving to the migration while the instance keeps 2 more on src: 5 > 4.
    assert not await svc.move(U("i"), U("m"), source_allocations={src: {"VCPU": 2}})
    assert (await svc.get_allocations(U("i")))["allocations"][src]["resources"] == {"VCPU": 3}
    assert await svc.move(U("i"), U("m"), source_allocations={src: {"VCPU": 1}})
    assert await used(db, src, "VCPU") == 4


@pytest.mark.asyncio
async def test_over_capacity_may_shrink_but_not_grow(db, svc):
    cn = await add_provider(db, "cn", VCPU=8)
    assert await svc.claim(U("i"), {cn: {"VCPU": 6}}, PROJECT, USER)
    await set_inventory(db, cn, "VCPU", total=4, max_unit=8)
    # Still over capacity (5 > 4) but better than before (6): allowed.
    assert await svc.claim(U("i"), {cn: {"VCPU": 5}}, PROJECT, USER, consumer_generation=1)
    assert not await svc.claim(U("i"), {cn: {"VCPU": 6}}, PROJECT, USER,
                               consumer_generation=2)


@pytest.mark.asyncio
async def test_unknown_provider_and_class(db, svc):
    cn = await add_provider(db, "cn", VCPU=8)
    with pytest.raises(ApiError) as err:
        await svc.claim(U("i"), {U("ghost"): {"VCPU": 1}}, PROJECT, USER)
    assert err.value.status == 400 and "that does not exist" in err.value.message
    with pytest.raises(ApiError) as err:
        await svc.claim(U("i"), {cn: {"CUSTOM_NOPE": 1}}, PROJECT, USER)
    assert err.value.status == 400 and "No such resource class CUSTOM_NOPE" in err.value.message
    # No inventory of a known class on the provider: does not fit.
    assert not await svc.claim(U("i"), {cn: {"DISK_GB": 1}}, PROJECT, USER)
    assert await consumer_row(db, U("i")) is None


@pytest.mark.asyncio
async def test_many_consumers_one_write(db):
    cn = await add_provider(db, "cn", VCPU=2)
    writes = [store.ConsumerAllocations(U(f"c{i}"), {cn: {"VCPU": 1}}, PROJECT, USER,
                                        check_generation=True) for i in range(3)]
    with pytest.raises(store.CapacityExceeded):
        await store.write(db, writes)
    assert await used(db, cn, "VCPU") == 0
    await store.write(db, writes[:2])
    assert await used(db, cn, "VCPU") == 2
    assert await generation(db, cn) == 1                     # one write, one bump
    # Empty allocations remove; the freed capacity is usable in the same write.
    await store.write(db, [
        store.ConsumerAllocations(U("c0"), {}, PROJECT, USER, generation=1,
                                  check_generation=True),
        store.ConsumerAllocations(U("c2"), {cn: {"VCPU": 1}}, PROJECT, USER,
                                  check_generation=True)])
    assert await consumer_row(db, U("c0")) is None
    assert await used(db, cn, "VCPU") == 2


@pytest.mark.asyncio
async def test_new_consumers_created_together_beside_an_existing_one(db):
    cn = await add_provider(db, "cn", VCPU=8)
    await store.write(db, [store.ConsumerAllocations(
        U("old"), {cn: {"VCPU": 1}}, PROJECT, USER, check_generation=True,
        consumer_type="INSTANCE")])
    await store.write(db, [
        store.ConsumerAllocations(U(f"n{i}"), {cn: {"VCPU": 1}}, f"p{i}", USER,
                                  check_generation=True, consumer_type="INSTANCE")
        for i in range(3)] + [store.ConsumerAllocations(
            U("old"), {cn: {"VCPU": 2}}, PROJECT, USER, generation=1,
            check_generation=True, consumer_type="INSTANCE")])
    for i in range(3):
        row = await consumer_row(db, U(f"n{i}"))
        assert (row.project_id, row.user_id, row.generation, row.consumer_type) == (
            f"p{i}", USER, 1, "INSTANCE")
    assert (await consumer_row(db, U("old"))).generation == 2
    assert await used(db, cn, "VCPU") == 5


@pytest.mark.asyncio
async def test_incomplete_consumer(db):
    cn = await add_provider(db, "cn", VCPU=2)
    await store.write(db, [store.ConsumerAllocations(U("old"), {cn: {"VCPU": 1}})])
    row = await consumer_row(db, U("old"))
    assert (row.project_id, row.user_id, row.consumer_type) == (
        INCOMPLETE_PROJECT_ID, INCOMPLETE_PROJECT_ID, None)


class _Deadlock(Exception):
    sqlstate = "40P01"


def _deadlock() -> DBAPIError:
    return DBAPIError("UPDATE resource_provider ...", {}, _Deadlock("deadlock detected"))


@pytest.mark.asyncio
async def test_provider_race_is_retried(db, svc, monkeypatch):
    """A write that loses a race on the providers' locks (a deadlock) runs again
    from scratch, and the generations move once."""
    cn = await add_provider(db, "cn", VCPU=8)
    real = store.apply
    calls = {"n": 0}

    async def flaky(*args, **kwargs):
        calls["n"] += 1
        await real(*args, **kwargs)
        if calls["n"] <= 2:        # somebody else "won" twice
            raise _deadlock()

    monkeypatch.setattr(store, "apply", flaky)
    assert await svc.claim(U("i"), {cn: {"VCPU": 1}}, PROJECT, USER)
    assert calls["n"] == 3 and await generation(db, cn) == 1
    assert (await consumer_row(db, U("i"))).generation == 1


@pytest.mark.asyncio
async def test_provider_race_gives_up(db, svc, monkeypatch):
    cn = await add_provider(db, "cn", VCPU=8)
    real = store.apply

    async def always_lost(*args, **kwargs):
        await real(*args, **kwargs)
        raise _deadlock()

    monkeypatch.setattr(store, "apply", always_lost)
    with pytest.raises(ApiError) as err:
        await svc.claim(U("i"), {cn: {"VCPU": 1}}, PROJECT, USER)
    assert err.value.status == 409 and err.value.code == CONCURRENT_UPDATE
    assert "concurrently updated the resource provider data" in err.value.message
    assert await used(db, cn, "VCPU") == 0 and await consumer_row(db, U("i")) is None
    assert await generation(db, cn) == 0


@pytest.mark.asyncio
async def test_a_claim_and_its_release_are_few_statements(db, svc):
    """A new consumer's claim: on PostgreSQL the consumer and the provider
    lock in one statement, then inventories with usage, then the inserts;
    its release is one statement sent alone. SQLite takes one more for each."""
    from sqlalchemy import event

    cn = await add_provider(db, "cn", VCPU=8, MEMORY_MB=1024)
    for warm in ("warm1", "warm2"):      # the second finds the type there: it is known
        await svc.claim(U(warm), {cn: {"VCPU": 1}}, PROJECT, USER)
    sent: list[str] = []

    def count(_conn, _cursor, statement, *_):
        sent.append(statement.split()[0].upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert await svc.claim(U("i"), {cn: {"VCPU": 2, "MEMORY_MB": 64}}, PROJECT, USER)
        claim, sent[:] = list(sent), []
        assert await svc.release(U("i"))
        release = list(sent)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    pg = db.dialect == "postgresql"
    assert claim == (["WITH", "SELECT", "INSERT"] if pg else
                     ["INSERT", "UPDATE", "SELECT", "INSERT"]), claim
    assert release == (["WITH"] if pg else ["DELETE", "DELETE"]), release
    assert await used(db, cn, "VCPU") == 2 and await consumer_row(db, U("i")) is None
