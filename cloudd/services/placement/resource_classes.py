"""Placement handlers: /resource_classes (standard and CUSTOM_* classes)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.placement import microversion, util
from cloudd.services.placement.errors import error
from cloudd.services.placement.respond import (
    authorize,
    db,
    empty,
    href,
    location,
    read_body,
    require_json,
    validate,
)
from cloudd.services.placement.schemas import resource_class as schema
from cloudd.services.placement.sync import rc_sort_key

RC = t.resource_class


def _path(name: str) -> str:
    return f"/resource_classes/{name}"


def _view(request: web.Request, name: str) -> dict:
    return {"name": name, "links": [{"rel": "self", "href": href(request, _path(name))}]}


async def find(conn, name: str):
    """The resource_class row called ``name``, or None."""
    return (await conn.execute(select(RC).where(RC.c.name == name))).first()


async def get_class(conn, name: str):
    """The resource_class row called ``name``; 404 as Placement words it."""
    row = await find(conn, name)
    if row is None:
        raise error(404, f"No such resource class {name}.")
    return row


async def list_resource_classes(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_classes:list")
    util.check_accept(request)
    async with db(request).read() as conn:
        rows = (await conn.execute(select(RC.c.name))).all()
    names = sorted((r.name for r in rows), key=rc_sort_key)
    # Standard classes carry no meaningful time, so the list is always "now".
    return util.json_response(
        request, {"resource_classes": [_view(request, n) for n in names]})


async def get_resource_class(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    authorize(request, "placement:resource_classes:show")
    util.check_accept(request)
    async with db(request).read() as conn:
        row = await get_class(conn, name)
    stamp = None if row.standard else (row.updated_at or row.created_at)
    return util.json_response(request, _view(request, name), last_modified=stamp)


async def _create(conn, name: str) -> None:
    await conn.execute(RC.insert().values(name=name, standard=False,
                                          created_at=util.utcnow()))


async def create_resource_class(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_classes:create")
    data = await read_body(request, schema.POST_RC_V1_2)
    name = data["name"]
    taken = False
    try:
        async with db(request).write() as conn:
            taken = await find(conn, name) is not None
            if not taken:
                await _create(conn, name)
    except IntegrityError:
        taken = True                    # someone created it just now
    if taken:
        raise error(409, f"Conflicting resource class already exists: {name}")
    return empty(201, {"Location": location(request, _path(name))})


async def update_resource_class(request: web.Request) -> web.Response:
    if microversion.at_least(request, 1, 7):
        return await _ensure_resource_class(request)
    return await _rename_resource_class(request)


async def _ensure_resource_class(request: web.Request) -> web.Response:
    """PUT from 1.7: create the custom class if missing (201), else 204."""
    name = request.match_info["name"]
    authorize(request, "placement:resource_classes:update")
    validate({"name": name}, schema.PUT_RC_V1_2)
    status = 204
    try:
        async with db(request).write() as conn:
            if await find(conn, name) is None:
                await _create(conn, name)
                status = 201
    except IntegrityError:
        status = 204                    # someone created it just now
    return empty(status, {"Location": location(request, _path(name))})


async def _rename_resource_class(request: web.Request) -> web.Response:
    """PUT 1.2 - 1.6: rename a custom class."""
    require_json(request)
    name = request.match_info["name"]
    authorize(request, "placement:resource_classes:update")
    data = await read_body(request, schema.PUT_RC_V1_2)
    new = data["name"]
    async with db(request).write() as conn:
        row = await get_class(conn, name)
        if row.standard:
            raise error(400, f"Cannot update standard resource class {name}")
        if new != name:
            if await find(conn, new) is not None:
                raise error(409, f"Resource class already exists: {new}")
            try:
                await _rename(conn, row, new)
            except IntegrityError:
                raise error(409, f"Resource class already exists: {new}") from None
    return util.json_response(request, _view(request, new))


async def _rename(conn, row, new: str) -> None:
    """Move a class to a new name, taking its inventories and allocations along.

    The name is the key other tables refer to, so: add the new row, repoint
    the referring rows, then drop the old one (all in the caller's transaction).
    """
    await conn.execute(RC.insert().values(name=new, standard=False,
                                          created_at=row.created_at,
                                          updated_at=util.utcnow()))
    for table in (t.inventory, t.allocation):
        await conn.execute(update(table).where(table.c.resource_class == row.name)
                           .values(resource_class=new))
    await conn.execute(delete(RC).where(RC.c.name == row.name))


async def delete_resource_class(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    authorize(request, "placement:resource_classes:delete")
    async with db(request).write() as conn:
        row = await get_class(conn, name)
        if row.standard:
            raise error(400, "Error in delete resource class: "
                             f"Cannot delete standard resource class {name}.")
        in_use = False
        for table in (t.inventory, t.allocation):
            in_use = in_use or bool(await conn.scalar(
                select(exists().where(table.c.resource_class == name))))
        if in_use:
            raise error(409, "Error in delete resource class: Cannot delete "
                             f"resource class {name}. Class is in use in inventory.")
        await conn.execute(delete(RC).where(RC.c.name == name))
    return empty(204)
