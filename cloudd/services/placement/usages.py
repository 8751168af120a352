"""Placement handlers: usages of one provider, and totals per project/user (1.9)."""

from __future__ import annotations

from collections import defaultdict

from aiohttp import web
from sqlalchemy import and_, func, select

from cloudd.db import tables as t
from cloudd.services.placement import microversion, provider_store, util
from cloudd.services.placement.respond import authorize, db, validate_query
from cloudd.services.placement.schemas import usage as schema

INV, ALLOC, CONSUMER = t.inventory, t.allocation, t.consumer
UNKNOWN = "unknown"   # how a consumer without a type is grouped (1.38)


async def provider_usages(conn, rp_uuid: str) -> dict[str, int]:
    """Used amount per resource class the provider has inventory of."""
    q = (select(INV.c.resource_class, func.coalesce(func.sum(ALLOC.c.used), 0))
         .select_from(INV.outerjoin(ALLOC, and_(
             ALLOC.c.resource_provider_uuid == INV.c.resource_provider_uuid,
             ALLOC.c.resource_class == INV.c.resource_class)))
         .where(INV.c.resource_provider_uuid == rp_uuid)
         .group_by(INV.c.resource_class))
    return {rc: int(used) for rc, used in await conn.execute(q)}


async def list_usages(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:usages")
    util.check_accept(request)
    uuid = request.match_info["uuid"]
    missing = provider_store.not_found_detail(uuid)
    async with db(request).read() as conn:
        rp = await provider_store.get_provider(conn, uuid, f"{missing}: {missing}")
        usages = await provider_usages(conn, uuid)
    # "What is the usage now?": last-modified is now.
    return util.json_response(request, {"resource_provider_generation": rp.generation,
                                        "usages": usages})


def _owned(q, project_id: str, user_id: str | None):
    q = q.where(CONSUMER.c.project_id == project_id)
    if user_id:
        q = q.where(CONSUMER.c.user_id == user_id)
    return q


_JOINED = ALLOC.join(CONSUMER, CONSUMER.c.uuid == ALLOC.c.consumer_uuid)


async def project_usages(conn, project_id: str, user_id: str | None) -> dict[str, int]:
    """Used amount per resource class over a project's (and user's) consumers."""
    q = _owned(select(ALLOC.c.resource_class, func.sum(ALLOC.c.used))
               .select_from(_JOINED), project_id, user_id)
    q = q.group_by(ALLOC.c.resource_class)
    return {rc: int(used) for rc, used in await conn.execute(q)}


async def usages_by_consumer_type(conn, project_id: str, user_id: str | None,
                                  consumer_type: str | None) -> dict[str, dict]:
    """1.38: {type: {rc: used, ..., "consumer_count": n}}.

    ``consumer_type`` "all" puts everything under "all", "unknown" keeps only
    consumers without a type; any other value keeps just that type.
    """
    ctype = CONSUMER.c.consumer_type
    base = _owned(select().select_from(_JOINED), project_id, user_id)
    if consumer_type == UNKNOWN:
        base = base.where(ctype.is_(None))
    elif consumer_type and consumer_type != "all":
        base = base.where(ctype == consumer_type)
    if consumer_type in ("all", UNKNOWN):
        group = [], lambda row: consumer_type
    else:
        group = [ctype], lambda row: row[0] or UNKNOWN

    columns, key_of = group
    counts = await conn.execute(base.add_columns(
        *columns, func.count(func.distinct(ALLOC.c.consumer_uuid))).group_by(*columns))
    out: dict[str, dict] = defaultdict(dict)
    for row in counts:
        if row[-1]:
            out[key_of(row)]["consumer_count"] = int(row[-1])
    sums = await conn.execute(base.add_columns(
        *columns, ALLOC.c.resource_class, func.sum(ALLOC.c.used))
        .group_by(*columns, ALLOC.c.resource_class))
    for row in sums:
        out[key_of(row)][row[-2]] = int(row[-1])
    return dict(out)


async def get_total_usages(request: web.Request) -> web.Response:
    query = request.query
    authorize(request, "placement:usages", {"project_id": query.get("project_id")})
    util.check_accept(request)
    by_type = microversion.at_least(request, 1, 38)
    params = validate_query(request,
                            schema.GET_USAGES_V1_38 if by_type else schema.GET_USAGES_V1_9)
    project_id, user_id = params["project_id"], params.get("user_id")
    async with db(request).read() as conn:
        if by_type:
            usages = await usages_by_consumer_type(conn, project_id, user_id,
                                                   params.get("consumer_type"))
        else:
            usages = await project_usages(conn, project_id, user_id)
    return util.json_response(request, {"usages": usages})
