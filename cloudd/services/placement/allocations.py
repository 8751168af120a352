"""Placement handlers: allocations (as placement/handlers/allocation.py).

GET/PUT/DELETE /allocations/{consumer_uuid}, POST /allocations (1.13) and
GET /resource_providers/{uuid}/allocations.  The SQL is in allocation_store.
"""

from __future__ import annotations

import uuid as uuidlib

from aiohttp import web

from cloudd.services.placement import allocation_store as store
from cloudd.services.placement import microversion, provider_store
from cloudd.services.placement.allocation_schemas import post_schema, put_schema
from cloudd.services.placement.consumers import ConcurrentUpdate
from cloudd.services.placement.errors import CONCURRENT_UPDATE, error
from cloudd.services.placement.respond import empty, validate
from cloudd.services.placement.util import check_accept, extract_json, json_response
from cloudd.web.auth import ctx_of

ALLOC_LIST = "placement:allocations:list"
ALLOC_MANAGE = "placement:allocations:manage"
ALLOC_UPDATE = "placement:allocations:update"
ALLOC_DELETE = "placement:allocations:delete"
RP_ALLOC_LIST = "placement:resource_providers:allocations:list"


def db_of(request: web.Request):
    return request.config_dict["cloud"].db


def authorize(request: web.Request, rule: str) -> None:
    """Placement's context.can(rule) with its default target."""
    ctx = ctx_of(request)
    ctx.authorize(rule, {"project_id": ctx.project_id, "user_id": ctx.user_id})


def require_json(request: web.Request) -> None:
    """Placement's @require_content: checked before policy and the body."""
    if request.content_type != "application/json":
        shown = request.headers.get("Content-Type", "None")
        raise error(415, f"The media type {shown} is not supported, use application/json")


async def body_of(request: web.Request, schema: dict):
    """The JSON body, checked against ``schema`` with Placement's full error text."""
    data = await extract_json(request)
    validate(data, schema)
    return data


def failure(exc: Exception, not_found_prefix: str):
    """Placement's words for the errors writing allocations can end in."""
    if isinstance(exc, store.ResourceClassNotFound):
        return error(400, f"{not_found_prefix}{exc}")
    if isinstance(exc, store.InvalidInventory):
        return error(409, f"Unable to allocate inventory: {exc}")
    if isinstance(exc, ConcurrentUpdate):
        return error(409, "Inventory and/or allocations changed while attempting to "
                          f"allocate: {exc}", CONCURRENT_UPDATE)
    return exc


def consumer_write(uuid: str, data: dict, version: tuple[int, int]
                   ) -> store.ConsumerAllocations:
    """One consumer's body (PUT's, or one entry of POST's) as a store request."""
    allocations = data["allocations"]
    if isinstance(allocations, list):        # before 1.12
        allocations = {a["resource_provider"]["uuid"]: {"resources": a["resources"]}
                       for a in allocations}
    return store.ConsumerAllocations(
        uuid=uuid,
        allocations={rp: dict(v["resources"]) for rp, v in allocations.items()},
        project_id=data.get("project_id"), user_id=data.get("user_id"),
        generation=data.get("consumer_generation"),
        check_generation=version >= (1, 28),
        consumer_type=data.get("consumer_type") if version >= (1, 38) else None)


async def list_for_consumer(request: web.Request) -> web.Response:
    check_accept(request)
    authorize(request, ALLOC_LIST)
    consumer_uuid = request.match_info["consumer_uuid"]
    async with db_of(request).read() as conn:
        rows = await store.for_consumer(conn, consumer_uuid)
    version = microversion.of(request)
    return json_response(request, store.consumer_body(rows, version),
                         last_modified=store.last_modified(rows))


async def list_for_resource_provider(request: web.Request) -> web.Response:
    check_accept(request)
    authorize(request, RP_ALLOC_LIST)
    uuid = request.match_info["uuid"]
    async with db_of(request).read() as conn:
        rp = await provider_store.find_provider(conn, uuid)
        if rp is None:
            raise error(404, f"Resource provider '{uuid}' not found: "
                             f"{provider_store.not_found_detail(uuid)}")
        rows = await store.for_provider(conn, uuid)
    version = microversion.of(request)
    return json_response(request, store.provider_body(rows, rp.generation, version),
                         last_modified=store.last_modified(rows))


async def set_allocations_for_consumer(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, ALLOC_UPDATE)
    raw = request.match_info["consumer_uuid"]
    try:
        consumer_uuid = str(uuidlib.UUID(raw))
    except ValueError:
        raise error(400, f"Malformed consumer_uuid: {raw}") from None
    version = microversion.of(request)
    data = await body_of(request, put_schema(version))
    write = consumer_write(consumer_uuid, data, version)
    try:
        await store.write(db_of(request), [write])
    except (store.AllocationFailure, ConcurrentUpdate) as exc:
        raise failure(exc, f"Unable to allocate inventory for consumer {consumer_uuid}: ")
    return empty(204)


async def set_allocations(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, ALLOC_MANAGE)
    version = microversion.of(request)
    data = await body_of(request, post_schema(version))
    writes = [consumer_write(uuid, body, version) for uuid, body in data.items()]
    try:
        await store.write(db_of(request), writes)
    except (store.AllocationFailure, ConcurrentUpdate) as exc:
        raise failure(exc, "Unable to allocate inventory ")
    return empty(204)


async def delete_allocations(request: web.Request) -> web.Response:
    authorize(request, ALLOC_DELETE)
    consumer_uuid = request.match_info["consumer_uuid"]
    if not await store.delete_all(db_of(request), consumer_uuid):
        raise error(404, f"No allocations for consumer '{consumer_uuid}'")
    return empty(204)
