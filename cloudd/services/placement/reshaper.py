"""Placement handler: POST /reshaper (1.30), as placement/handlers/reshaper.py.

Inventories and allocations move between providers in one transaction:

1. every provider in ``inventories`` must exist (400) at the generation given
   (409); consumers are checked (generations, 409) and created; every
   provider in ``allocations`` must exist (400);
2. each provider gets an interim inventory: what it has now plus what it
   should have (so nothing in use disappears and nothing needed is missing);
3. the allocations are replaced, with capacity checks (allocation_store);
4. each provider gets its final inventory (409 placement.inventory.inuse if
   a class still in use would go).

Every step compare-and-swaps the providers' generations, as Placement's does.
"""

from __future__ import annotations

import copy

from aiohttp import web
from sqlalchemy.exc import DBAPIError

from cloudd.services.placement import allocation_store as store
from cloudd.services.placement import inventories, microversion, provider_store
from cloudd.services.placement.allocation_schemas import reshaper_allocations
from cloudd.services.placement.allocations import (
    authorize,
    body_of,
    consumer_write,
    db_of,
    require_json,
)
from cloudd.services.placement.consumers import ConcurrentUpdate
from cloudd.services.placement.errors import (
    CONCURRENT_UPDATE,
    RESOURCE_PROVIDER_NOT_FOUND,
    error,
)
from cloudd.services.placement.resource_classes import find as find_class
from cloudd.services.placement.respond import empty
from cloudd.services.placement.schemas import inventory as inventory_schema

RESHAPE = "placement:reshaper:reshape"
FIELDS = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")
ATTEMPTS = 3          # a PostgreSQL deadlock victim starts again


def schema(version: tuple[int, int]) -> dict:
    return {
        "type": "object",
        "properties": {
            "inventories": {
                "type": "object",
                "patternProperties": {
                    "^[0-9a-fA-F-]{36}$": copy.deepcopy(inventory_schema.PUT_INVENTORIES)},
                "minProperties": 1,
                "additionalProperties": False,
            },
            "allocations": reshaper_allocations(version),
        },
        "required": ["inventories", "allocations"],
        "additionalProperties": False,
    }


def _record(raw: dict) -> dict:
    record = dict(inventory_schema.DEFAULTS)
    record.update({k: v for k, v in raw.items() if k in FIELDS})
    return record


async def reshape(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, RESHAPE)
    version = microversion.of(request)
    data = await body_of(request, schema(version))
    wanted = {rp: {rc: _record(raw) for rc, raw in body["inventories"].items()}
              for rp, body in data["inventories"].items()}
    given = {rp: body["resource_provider_generation"]
             for rp, body in data["inventories"].items()}
    writes = [consumer_write(uuid, body, version) for uuid, body in data["allocations"].items()]
    for attempt in range(ATTEMPTS):
        try:
            async with db_of(request).write() as conn:
                await _reshape(conn, wanted, given, writes)
            break
        except DBAPIError as exc:
            if not store.retryable(exc) or attempt == ATTEMPTS - 1:
                raise
        except ConcurrentUpdate as exc:
            raise error(409, f"update conflict: {exc}", CONCURRENT_UPDATE) from None
        except store.ResourceClassNotFound as exc:
            raise error(400, f"malformed reshaper data: {exc}") from None
        except store.InvalidInventory as exc:
            raise error(409, f"Unable to allocate inventory: {exc}") from None
    return empty(204)


async def _reshape(conn, wanted: dict, given: dict, writes: list) -> None:
    for rp_uuid in wanted:
        rp = await provider_store.find_provider(conn, rp_uuid)
        if rp is None:
            raise error(400, f"Resource provider {rp_uuid} in inventories not found: "
                             f"{provider_store.not_found_detail(rp_uuid)}",
                        RESOURCE_PROVIDER_NOT_FOUND)
        _check_generation(rp_uuid, rp.generation, given[rp_uuid])
    states = await store.prepare(conn, writes)
    await store.check_providers(conn, writes)
    allocs = await store.expand(conn, writes)
    # Lock every provider involved (after the consumers, sorted: the order
    # every allocation writer uses) and look again at the generations.
    generations = await store.lock_providers(
        conn, sorted(set(wanted) | {a.rp for a in allocs}))
    for rp_uuid in wanted:
        _check_generation(rp_uuid, generations[rp_uuid], given[rp_uuid])
    for rp_uuid, records in wanted.items():
        for rc in records:
            if await find_class(conn, rc) is None:
                raise store.ResourceClassNotFound(rc)
    for rp_uuid, records in wanted.items():
        if records:                      # an empty one would only bump the generation
            interim = {r.resource_class: {f: getattr(r, f) for f in FIELDS}
                       for r in await inventories.inventory_rows(conn, rp_uuid)}
            interim.update(records)
            await inventories.replace_inventories(
                conn, await provider_store.get_provider(conn, rp_uuid), interim)
    await store.apply(conn, writes, states, allocs)
    for rp_uuid, records in wanted.items():
        await inventories.replace_inventories(
            conn, await provider_store.get_provider(conn, rp_uuid), records)


def _check_generation(rp_uuid: str, actual: int, wanted: int) -> None:
    if actual != wanted:
        raise error(409, f"resource provider generation conflict for provider {rp_uuid}: "
                         f"actual: {actual}, given: {wanted}", CONCURRENT_UPDATE)
