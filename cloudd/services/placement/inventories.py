"""Placement handlers: /resource_providers/{uuid}/inventories.

Every write row-locks the provider (``provider_store.lock_provider``), checks
the client's generation, and finishes with a compare-and-swap of it
(``provider_store.bump_generation``), so a concurrent writer turns into a
clean 409 ``placement.concurrent_update`` on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, select, update

from cloudd.db import tables as t
from cloudd.services.placement import microversion, provider_store, util
from cloudd.services.placement.errors import CONCURRENT_UPDATE, INVENTORY_INUSE, error
from cloudd.services.placement.resource_classes import find as find_class
from cloudd.services.placement.respond import (
    authorize,
    db,
    empty,
    location,
    newest,
    read_body,
    require_json,
)
from cloudd.services.placement.schemas import inventory as schema
from cloudd.services.placement.sync import rc_sort_key

INV = t.inventory
ALLOC = t.allocation
FIELDS = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")
GENERATION_CONFLICT = "resource provider generation conflict"
RP_CONCURRENT = ("Another thread concurrently updated the resource provider data. "
                 "Please retry your update")


def _view(record, generation: int | None = None) -> dict:
    get = record.get if isinstance(record, dict) else record._mapping.get
    body = {f: get(f) for f in FIELDS}
    body["allocation_ratio"] = float(body["allocation_ratio"])
    if generation:
        body["resource_provider_generation"] = generation
    return body


def _with_defaults(data: dict) -> dict:
    record = dict(schema.DEFAULTS)
    record.update({k: v for k, v in data.items() if k in FIELDS})
    return record


def _capacity_problem(request: web.Request, rp_uuid: str, rc: str,
                      record: dict) -> str | None:
    """Placement's capacity rule: (total - reserved) * ratio must stay positive
    (from 1.26 it may be zero, so reserved may equal total)."""
    capacity = int((record["total"] - record["reserved"]) * record["allocation_ratio"])
    head = f"Invalid inventory for '{rc}' on resource provider '{rp_uuid}'. "
    if microversion.at_least(request, 1, 26):
        return head + "The reserved value is greater than total." if capacity < 0 else None
    return (head + "The reserved value is greater than or equal to total."
            if capacity <= 0 else None)


async def inventory_rows(conn, rp_uuid: str) -> list:
    """The provider's inventory rows, in Placement's resource class order."""
    rows = (await conn.execute(select(INV).where(INV.c.resource_provider_uuid == rp_uuid))).all()
    return sorted(rows, key=lambda r: rc_sort_key(r.resource_class))


async def _in_use(conn, rp_uuid: str, classes) -> str | None:
    """Placement's InventoryInUse text when any of ``classes`` has allocations."""
    classes = list(classes)
    if not classes:
        return None
    used = await conn.execute(
        select(ALLOC.c.resource_class).distinct()
        .where(ALLOC.c.resource_provider_uuid == rp_uuid,
               ALLOC.c.resource_class.in_(classes)))
    names = sorted((r.resource_class for r in used), key=rc_sort_key)
    if not names:
        return None
    return f"Inventory for '{', '.join(names)}' on resource provider '{rp_uuid}' in use."


def _not_found_detail(uuid: str) -> str:
    missing = provider_store.not_found_detail(uuid)
    return f"{missing} : {missing}"


def _path(uuid: str, rc: str | None = None) -> str:
    return f"/resource_providers/{uuid}/inventories" + (f"/{rc}" if rc else "")


async def get_inventories(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:inventories:list")
    util.check_accept(request)
    uuid = request.match_info["uuid"]
    async with db(request).read() as conn:
        rp = await provider_store.get_provider(conn, uuid, _not_found_detail(uuid))
        rows = await inventory_rows(conn, uuid)
    body = {"resource_provider_generation": rp.generation,
            "inventories": {r.resource_class: _view(r) for r in rows}}
    return util.json_response(request, body, last_modified=newest(rows))


async def get_inventory(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:inventories:show")
    util.check_accept(request)
    uuid, rc = request.match_info["uuid"], request.match_info["resource_class"]
    async with db(request).read() as conn:
        rp = await provider_store.get_provider(conn, uuid, _not_found_detail(uuid))
        row = (await conn.execute(select(INV).where(
            INV.c.resource_provider_uuid == uuid, INV.c.resource_class == rc))).first()
    if row is None:
        raise error(404, f"No inventory of class {rc} for {uuid}")
    return util.json_response(request, _view(row, rp.generation),
                              last_modified=row.updated_at or row.created_at)


async def create_inventory(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_providers:inventories:create")
    uuid = request.match_info["uuid"]
    async with db(request).read() as conn:
        await provider_store.get_provider(conn, uuid)
    data = await read_body(request, schema.POST_INVENTORY)
    rc = data["resource_class"]
    record = _with_defaults(data)
    prefix = f"Unable to create inventory for resource provider {uuid}: "
    problem = _capacity_problem(request, uuid, rc, record)
    if problem:
        raise error(400, prefix + problem)
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        if await find_class(conn, rc) is None:
            raise error(400, prefix + f"No such resource class {rc}.")
        exists = (await conn.execute(select(INV.c.resource_class).where(
            INV.c.resource_provider_uuid == uuid, INV.c.resource_class == rc))).first()
        if exists is not None:
            raise error(409, f"Update conflict: Inventory of class {rc} already exists "
                             f"on resource provider {uuid}.", CONCURRENT_UPDATE)
        await conn.execute(INV.insert().values(resource_provider_uuid=uuid,
                                               resource_class=rc,
                                               created_at=util.utcnow(), **record))
        generation = await provider_store.bump_generation(
            conn, uuid, rp.generation, f"Update conflict: {RP_CONCURRENT}")
    return util.json_response(request, _view(record, generation), status=201,
                              headers={"Location": location(request, _path(uuid, rc))})


async def update_inventory(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_providers:inventories:update")
    uuid, rc = request.match_info["uuid"], request.match_info["resource_class"]
    async with db(request).read() as conn:
        await provider_store.get_provider(conn, uuid)
    data = await read_body(request, schema.BASE_INVENTORY)
    record = _with_defaults(data)
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        if data["resource_provider_generation"] != rp.generation:
            raise error(409, GENERATION_CONFLICT, CONCURRENT_UPDATE)
        problem = _capacity_problem(request, uuid, rc, record)
        if problem:
            raise error(400, f"Unable to update inventory for resource provider "
                             f"{uuid}: {problem}")
        if await find_class(conn, rc) is None:
            raise error(404, f"No such resource class {rc}.")
        result = await conn.execute(
            update(INV).where(INV.c.resource_provider_uuid == uuid,
                              INV.c.resource_class == rc)
            .values(updated_at=util.utcnow(), **record))
        if result.rowcount != 1:
            raise error(400, "No inventory record with resource class for resource "
                             f"provider {uuid}: No inventory of class {rc} found.")
        generation = await provider_store.bump_generation(
            conn, uuid, rp.generation, f"update conflict: {RP_CONCURRENT}")
    return util.json_response(request, _view(record, generation))


async def replace_inventories(conn, rp, records: dict[str, dict]) -> int:
    """Make ``records`` ({resource class: fields}) the provider's whole inventory.

    Classes dropped from the inventory must have no allocations (409
    placement.inventory.inuse).  Lowering capacity below current usage is
    allowed, as in Placement.  The generation is bumped (compare-and-swap)
    even when nothing changed.  Returns the new generation.
    """
    have = {r.resource_class for r in await inventory_rows(conn, rp.uuid)}
    gone = have - set(records)
    in_use = await _in_use(conn, rp.uuid, gone)
    if in_use:
        raise error(409, f"update conflict: {in_use}", INVENTORY_INUSE)
    if gone:
        await conn.execute(delete(INV).where(INV.c.resource_provider_uuid == rp.uuid,
                                             INV.c.resource_class.in_(sorted(gone))))
    now = util.utcnow()
    for rc, record in records.items():
        if rc in have:
            await conn.execute(update(INV).where(INV.c.resource_provider_uuid == rp.uuid,
                                                 INV.c.resource_class == rc)
                               .values(updated_at=now, **record))
        else:
            await conn.execute(INV.insert().values(resource_provider_uuid=rp.uuid,
                                                   resource_class=rc, created_at=now,
                                                   **record))
    return await provider_store.bump_generation(conn, rp.uuid, rp.generation,
                                                f"update conflict: {RP_CONCURRENT}")


async def set_inventories(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_providers:inventories:update")
    uuid = request.match_info["uuid"]
    async with db(request).read() as conn:
        await provider_store.get_provider(conn, uuid)
    data = await read_body(request, schema.PUT_INVENTORIES)
    records = {rc: _with_defaults(raw) for rc, raw in data["inventories"].items()}
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        if data["resource_provider_generation"] != rp.generation:
            raise error(409, GENERATION_CONFLICT, CONCURRENT_UPDATE)
        for rc, record in records.items():
            problem = _capacity_problem(request, uuid, rc, record)
            if problem:
                raise error(400, f"Unable to update inventory for resource provider "
                                 f"{uuid}: {problem}")
        for rc in sorted(records, key=rc_sort_key):
            if await find_class(conn, rc) is None:
                raise error(400, "Unknown resource class in inventory for resource "
                                 f"provider {uuid}: No such resource class {rc}.")
        generation = await replace_inventories(conn, rp, records)
    body = {"resource_provider_generation": generation,
            "inventories": {rc: _view(r) for rc, r in records.items()}}
    return util.json_response(request, body)


async def delete_inventories(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:inventories:delete")
    uuid = request.match_info["uuid"]
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        have = [r.resource_class for r in await inventory_rows(conn, uuid)]
        in_use = await _in_use(conn, uuid, have)
        if in_use:
            raise error(409, in_use, INVENTORY_INUSE)
        await conn.execute(delete(INV).where(INV.c.resource_provider_uuid == uuid))
        await provider_store.bump_generation(
            conn, uuid, rp.generation,
            f"Unable to delete inventory for resource provider {uuid} because the "
            "inventory was updated by another process. Please retry your request.")
    return empty(204)


async def delete_inventory(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:inventories:delete")
    uuid, rc = request.match_info["uuid"], request.match_info["resource_class"]
    prefix = f"Unable to delete inventory of class {rc}: "
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        if await find_class(conn, rc) is None:
            raise error(404, f"No inventory of class {rc} found for delete: "
                             f"No such resource class {rc}.")
        in_use = await _in_use(conn, uuid, [rc])
        if in_use:
            raise error(409, prefix + in_use, CONCURRENT_UPDATE)
        result = await conn.execute(delete(INV).where(
            INV.c.resource_provider_uuid == uuid, INV.c.resource_class == rc))
        if result.rowcount != 1:
            detail = f"No inventory of class {rc} found for delete"
            raise error(404, f"{detail}: {detail}")
        await provider_store.bump_generation(conn, uuid, rp.generation,
                                             prefix + RP_CONCURRENT)
    return empty(204)
