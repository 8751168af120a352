"""Placement handlers: /traits and /resource_providers/{uuid}/traits."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.placement import provider_store, util
from cloudd.services.placement.errors import CONCURRENT_UPDATE, error
from cloudd.services.placement.respond import (
    authorize,
    cache_headers,
    db,
    empty,
    location,
    newest,
    read_body,
    require_json,
    validate_query,
    validator,
)
from cloudd.services.placement.schemas import trait as schema

TRAIT = t.trait
RPT = t.resource_provider_trait

INVALID_TRAIT = ('The trait is invalid. A valid trait must be no longer than 255 '
                 'characters, start with the prefix "CUSTOM_" and use following '
                 'characters: "A"-"Z", "0"-"9" and "_"')
GENERATION_CHANGED = ("Resource provider's generation already changed. Please update "
                      "the generation and try again.")


async def find(conn, name: str):
    return (await conn.execute(select(TRAIT).where(TRAIT.c.name == name))).first()


async def get_trait_row(conn, name: str):
    row = await find(conn, name)
    if row is None:
        raise error(404, f"No such trait(s): {name}.")
    return row


async def provider_traits(conn, rp_uuid: str) -> list:
    """The trait rows of one provider, by name."""
    q = (select(TRAIT).join(RPT, RPT.c.trait == TRAIT.c.name)
         .where(RPT.c.resource_provider_uuid == rp_uuid).order_by(TRAIT.c.name))
    return (await conn.execute(q)).all()


def _list_filter(request: web.Request, q):
    params = validate_query(request, schema.LIST_TRAITS_QUERY)
    if "name" in params:
        op, sep, value = params["name"].partition(":")
        if not sep:
            raise error(400, "Badly formatted name parameter. Expected name query "
                             "string parameter in form: "
                             "?name=[in|startswith]:[name1,name2|prefix]. "
                             f'Got: "{params["name"]}"')
        if op == "in":
            q = q.where(TRAIT.c.name.in_(value.split(",")))
        elif op == "startswith":
            q = q.where(TRAIT.c.name.startswith(value, autoescape=True))
    if "associated" in params:
        wanted = params["associated"].lower()
        if wanted not in ("true", "false"):
            raise error(400, 'The query parameter "associated" only accepts '
                             '"true" or "false"')
        used = exists().where(RPT.c.trait == TRAIT.c.name)
        q = q.where(used if wanted == "true" else ~used)
    return q


async def list_traits(request: web.Request) -> web.Response:
    authorize(request, "placement:traits:list")
    util.check_accept(request)
    q = _list_filter(request, select(TRAIT).order_by(TRAIT.c.name))
    async with db(request).read() as conn:
        rows = (await conn.execute(q)).all()
    return util.json_response(request, {"traits": [r.name for r in rows]},
                              last_modified=newest(rows))


async def get_trait(request: web.Request) -> web.Response:
    authorize(request, "placement:traits:show")
    async with db(request).read() as conn:
        row = await get_trait_row(conn, request.match_info["name"])
    return cache_headers(request, empty(204), row.created_at)


async def put_trait(request: web.Request) -> web.Response:
    authorize(request, "placement:traits:update")
    name = request.match_info["name"]
    if not validator(schema.CUSTOM_TRAIT).is_valid(name):
        raise error(400, INVALID_TRAIT)
    status, created = 204, None
    try:
        async with db(request).write() as conn:
            row = await find(conn, name)
            if row is None:
                created = util.utcnow()
                await conn.execute(TRAIT.insert().values(name=name, standard=False,
                                                         created_at=created))
                status = 201
            else:
                created = row.created_at
    except IntegrityError:
        status, created = 204, None     # someone created it just now
    resp = empty(status, {"Location": location(request, f"/traits/{name}")})
    return cache_headers(request, resp, created)


async def delete_trait(request: web.Request) -> web.Response:
    authorize(request, "placement:traits:delete")
    name = request.match_info["name"]
    async with db(request).write() as conn:
        await get_trait_row(conn, name)
        if not name.startswith("CUSTOM_"):
            raise error(400, f"Cannot delete standard trait {name}.")
        if await conn.scalar(select(exists().where(RPT.c.trait == name))):
            raise error(409, f"The trait {name} is in use by a resource provider.")
        await conn.execute(delete(TRAIT).where(TRAIT.c.name == name))
    return empty(204)


def _rp_traits_body(rows, generation: int) -> dict:
    return {"traits": [r.name for r in rows], "resource_provider_generation": generation}


async def list_traits_for_resource_provider(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:traits:list")
    util.check_accept(request)
    uuid = request.match_info["uuid"]
    async with db(request).read() as conn:
        missing = provider_store.not_found_detail(uuid)
        rp = await provider_store.get_provider(conn, uuid, f"{missing}: {missing}")
        rows = await provider_traits(conn, uuid)
    return util.json_response(request, _rp_traits_body(rows, rp.generation),
                              last_modified=newest(rows))


async def set_provider_traits(conn, rp, names: set[str]) -> int:
    """Make ``names`` the provider's traits; bump its generation if that changed.

    ``rp`` is the provider row read in this transaction; the bump is a
    compare-and-swap on its generation.  Returns the generation afterwards.
    """
    have = {r.trait for r in await conn.execute(
        select(RPT.c.trait).where(RPT.c.resource_provider_uuid == rp.uuid))}
    if have == names:
        return rp.generation
    if have - names:
        await conn.execute(delete(RPT).where(RPT.c.resource_provider_uuid == rp.uuid,
                                             RPT.c.trait.in_(have - names)))
    if names - have:
        await conn.execute(RPT.insert(), [
            {"resource_provider_uuid": rp.uuid, "trait": n} for n in sorted(names - have)])
    return await provider_store.bump_generation(conn, rp.uuid, rp.generation)


async def update_traits_for_resource_provider(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_providers:traits:update")
    uuid = request.match_info["uuid"]
    data = await read_body(request, schema.SET_TRAITS_FOR_RP)
    names = data["traits"]
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        if rp.generation != data["resource_provider_generation"]:
            raise error(409, GENERATION_CHANGED, CONCURRENT_UPDATE)
        rows = (await conn.execute(select(TRAIT).where(TRAIT.c.name.in_(names))
                                   .order_by(TRAIT.c.name))).all()
        unknown = sorted(set(names) - {r.name for r in rows})
        if unknown:
            raise error(400, f"No such trait {', '.join(unknown)}")
        generation = await set_provider_traits(conn, rp, {r.name for r in rows})
    return util.json_response(request, _rp_traits_body(rows, generation),
                              last_modified=newest(rows))


async def delete_traits_for_resource_provider(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:traits:delete")
    uuid = request.match_info["uuid"]
    async with db(request).write() as conn:
        rp = await provider_store.lock_provider(conn, uuid)
        await set_provider_traits(conn, rp, set())
    return empty(204)
