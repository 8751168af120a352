"""Placement handlers: /resource_providers/{uuid}/aggregates (from 1.1)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, select

from cloudd.db import tables as t
from cloudd.services.placement import microversion, provider_store, util
from cloudd.services.placement.errors import CONCURRENT_UPDATE, error
from cloudd.services.placement.respond import authorize, db, read_body, require_json
from cloudd.services.placement.schemas import aggregate as schema

RPA = t.resource_provider_aggregate
GENERATION_CHANGED = ("Resource provider's generation already changed. Please update "
                      "the generation and try again.")


async def provider_aggregates(conn, rp_uuid: str) -> list[str]:
    rows = await conn.execute(select(RPA.c.aggregate_uuid)
                              .where(RPA.c.resource_provider_uuid == rp_uuid)
                              .order_by(RPA.c.aggregate_uuid))
    return [r.aggregate_uuid for r in rows]


async def set_provider_aggregates(conn, rp_uuid: str, wanted: list[str]) -> None:
    """Make ``wanted`` the provider's aggregates (no generation change here)."""
    have = set(await provider_aggregates(conn, rp_uuid))
    gone, new = have - set(wanted), [a for a in wanted if a not in have]
    if gone:
        await conn.execute(delete(RPA).where(RPA.c.resource_provider_uuid == rp_uuid,
                                             RPA.c.aggregate_uuid.in_(sorted(gone))))
    if new:
        await conn.execute(RPA.insert(), [
            {"resource_provider_uuid": rp_uuid, "aggregate_uuid": a} for a in new])


def _response(request: web.Request, aggregates: list[str], generation: int):
    body: dict = {"aggregates": aggregates}
    if microversion.at_least(request, 1, 19):
        body["resource_provider_generation"] = generation
    # Associations carry no time of their own: last-modified is now.
    return util.json_response(request, body)


async def get_aggregates(request: web.Request) -> web.Response:
    util.check_accept(request)
    authorize(request, "placement:resource_providers:aggregates:list")
    uuid = request.match_info["uuid"]
    async with db(request).read() as conn:
        rp = await provider_store.get_provider(conn, uuid)
        aggregates = await provider_aggregates(conn, uuid)
    return _response(request, aggregates, rp.generation)


async def set_aggregates(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_providers:aggregates:update")
    uuid = request.match_info["uuid"]
    with_generation = microversion.at_least(request, 1, 19)
    async with db(request).read() as conn:
        await provider_store.get_provider(conn, uuid)
    data = await read_body(
        request, schema.PUT_AGGREGATES_V1_19 if with_generation else schema.PUT_AGGREGATES_V1_1)
    aggregates = data["aggregates"] if with_generation else data
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        generation = rp.generation
        if with_generation and data["resource_provider_generation"] != generation:
            raise error(409, GENERATION_CHANGED, CONCURRENT_UPDATE)
        await set_provider_aggregates(conn, uuid, aggregates)
        if with_generation:
            # From 1.19 an aggregate change is a provider change, even a no-op one.
            generation = await provider_store.bump_generation(
                conn, uuid, generation,
                f"Update conflict: {provider_store.CONCURRENT_DETAIL}")
    return _response(request, aggregates, generation)
