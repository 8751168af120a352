"""Many concurrent claims against one provider never exceed its capacity.

Twice, on SQLite and PostgreSQL: in-process through PlacementService (several
engines on one database, as several processes would be), and over HTTP
against a real `cloudd serve` (PUT /allocations/{consumer_uuid} racing).
"""

from __future__ import annotations

import asyncio
import random
import uuid

import aiohttp
import pytest
import pytest_asyncio

from cloudd.db import Database, migrate
from cloudd.services.placement.service import PlacementService
from cloudd.services.placement.sync import sync_standards
from cloudd.testing.process import CloudProcess
from tests.placement.allocation_helpers import U, add_provider, generation, used

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest_asyncio.fixture
async def engines(backend, database_url, tmp_path):
    url = database_url(backend, tmp_path / "data")
    dbs = [Database(url, pool_size=10) for _ in range(3)]
    await migrate.prepare(dbs[0])
    await sync_standards(dbs[0])
    yield dbs
    for db in dbs:
        await db.close()


@pytest.mark.asyncio
async def test_concurrent_claims_in_process(engines):
    db = engines[0]
    cn = await add_provider(db, "cn", VCPU={"total": 12, "reserved": 2, "max_unit": 4},
                            MEMORY_MB=4096)
    services = [PlacementService(e) for e in engines]
    rng = random.Random(7)
    wants = [rng.randint(1, 3) for _ in range(60)]

    async def claim(i: int, vcpus: int) -> bool:
        return await services[i % len(services)].claim(
            U(f"vm{i}"), {cn: {"VCPU": vcpus, "MEMORY_MB": 64}}, "p", "u")

    results = await asyncio.gather(*(claim(i, w) for i, w in enumerate(wants)))
    granted = sum(w for w, ok in zip(wants, results) if ok)
    assert granted <= 10
    assert granted >= 8            # losers only lose for lack of room
    assert await used(db, cn, "VCPU") == granted
    assert await used(db, cn, "MEMORY_MB") == 64 * sum(results)
    assert await generation(db, cn) == sum(results)


@pytest.mark.asyncio
async def test_concurrent_claims_exact_fill_across_providers(engines):
    db = engines[0]
    cn = await add_provider(db, "cn", VCPU=20)
    disk = await add_provider(db, "disk", DISK_GB=7)
    services = [PlacementService(e) for e in engines]

    async def claim(i: int) -> bool:
        return await services[i % 3].claim(U(f"vm{i}"), {cn: {"VCPU": 1},
                                                         disk: {"DISK_GB": 1}}, "p", "u")

    results = await asyncio.gather(*(claim(i) for i in range(30)))
    assert sum(results) == 7                   # the disk is the limit
    assert await used(db, disk, "DISK_GB") == 7
    assert await used(db, cn, "VCPU") == 7     # no half-written claim


# --- over HTTP ----------------------------------------------------------------

@pytest.fixture
def cloud(backend, request, tmp_path):
    env = {"CLOUDD_AUTH__STRATEGY": "noauth2", "CLOUDD_IDENTITY__PASSWORD_HASH_ROUNDS": "4"}
    if backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        env["CLOUDD_DATABASE__URL"] = pg.create_database(f"t_{uuid.uuid4().hex[:12]}")
    proc = CloudProcess(tmp_path / "data", env=env).start()
    yield proc
    assert proc.stop() == 0, proc.log_path.read_text()[-3000:]


HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement 1.28",
           "accept": "application/json"}


@pytest.mark.asyncio
async def test_concurrent_put_allocations_over_http(cloud):
    base = cloud.url + "/placement"
    rp = str(uuid.uuid4())
    async with aiohttp.ClientSession(headers=HEADERS) as http:
        async with http.post(f"{base}/resource_providers",
                             json={"name": "cn", "uuid": rp}) as r:
            assert r.status == 200, await r.text()
        async with http.put(f"{base}/resource_providers/{rp}/inventories", json={
                "resource_provider_generation": 0,
                "inventories": {"VCPU": {"total": 5, "max_unit": 5}}}) as r:
            assert r.status == 200, await r.text()

        async def put(i: int) -> tuple[int, str]:
            body = {"allocations": {rp: {"resources": {"VCPU": 1}}},
                    "project_id": "p", "user_id": "u", "consumer_generation": None}
            async with http.put(f"{base}/allocations/{uuid.uuid4()}", json=body) as r:
                return r.status, await r.text()

        answers = await asyncio.gather(*(put(i) for i in range(25)))
        statuses = [s for s, _ in answers]
        assert statuses.count(204) == 5, answers
        assert statuses.count(409) == 20
        assert all("would exceed the capacity" in text for s, text in answers if s == 409)
        async with http.get(f"{base}/resource_providers/{rp}/allocations") as r:
            body = await r.json()
        assert len(body["allocations"]) == 5
        assert body["resource_provider_generation"] == 1 + 5
