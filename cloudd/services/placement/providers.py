"""Placement handlers: /resource_providers."""

from __future__ import annotations

import uuid as uuidlib

from aiohttp import web
from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.placement import microversion, provider_store, query, util
from cloudd.services.placement.errors import (
    DUPLICATE_NAME,
    PROVIDER_CANNOT_DELETE_PARENT,
    PROVIDER_IN_USE,
    error,
)
from cloudd.services.placement.respond import (
    authorize,
    db,
    empty,
    href,
    location,
    newest,
    read_body,
    require_json,
    validate_query,
)
from cloudd.services.placement.schemas import resource_provider as schema

RP = t.resource_provider


def _links(request: web.Request, uuid: str) -> list[dict]:
    url = href(request, f"/resource_providers/{uuid}")
    rels = ["inventories", "usages"]
    if microversion.at_least(request, 1, 1):
        rels.append("aggregates")
    if microversion.at_least(request, 1, 6):
        rels.append("traits")
    if microversion.at_least(request, 1, 11):
        rels.append("allocations")
    return [{"rel": "self", "href": url}] + [
        {"rel": rel, "href": f"{url}/{rel}"} for rel in rels]


def provider_view(request: web.Request, row) -> dict:
    """A provider as Placement shows it at the request's microversion."""
    body = {"uuid": row.uuid, "name": row.name, "generation": row.generation,
            "links": _links(request, row.uuid)}
    if microversion.at_least(request, 1, 14):
        body["parent_provider_uuid"] = row.parent_provider_uuid
        body["root_provider_uuid"] = row.root_provider_uuid
    return body


async def list_resource_providers(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:list")
    util.check_accept(request)
    params = validate_query(request, schema.list_query_schema(microversion.of(request)))
    q = select(RP).order_by(RP.c.created_at, RP.c.uuid)
    if params.get("name"):
        q = q.where(RP.c.name == params["name"])
    if params.get("uuid"):
        q = q.where(RP.c.uuid == params["uuid"])
    async with db(request).read() as conn:
        # resources / required / member_of / in_tree: None when none is given.
        matching = await query.provider_filter(conn, request)
        if matching is not None:
            q = q.where(RP.c.uuid.in_(sorted(matching)))
        rows = (await conn.execute(q)).all()
    return util.json_response(
        request, {"resource_providers": [provider_view(request, r) for r in rows]},
        last_modified=newest(rows))


async def get_resource_provider(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:show")
    util.check_accept(request)
    async with db(request).read() as conn:
        row = await provider_store.get_provider(conn, request.match_info["uuid"])
    return util.json_response(request, provider_view(request, row),
                              last_modified=row.updated_at or row.created_at)


def _action_error(action: str, reason: str) -> str:
    return f"Object action {action} failed because: {reason}"


async def _duplicates(conn, uuid: str | None, name: str) -> list[str]:
    found = []
    if uuid and await provider_store.find_provider(conn, uuid) is not None:
        found.append(f"uuid: {uuid}")
    other = (await conn.execute(select(RP.c.uuid).where(RP.c.name == name))).first()
    if other is not None and other.uuid != uuid:
        found.append(f"name: {name}")
    return found


async def create_resource_provider(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_providers:create")
    data = await read_body(request, schema.post_schema(microversion.of(request)))
    uuid = str(uuidlib.UUID(data["uuid"])) if data.get("uuid") else str(uuidlib.uuid4())
    name = data["name"]
    parent = data.get("parent_provider_uuid")
    prefix = f'Unable to create resource provider "{name}", {uuid}: '
    try:
        async with db(request).write() as conn:
            root = uuid
            if parent is not None:
                if parent == uuid:
                    raise error(400, prefix + _action_error(
                        "create", "parent provider UUID cannot be same as UUID. "
                        "Please set parent provider UUID to None if there is no "
                        "parent."))
                prow = await provider_store.find_provider(conn, parent)
                if prow is None:
                    raise error(400, prefix + _action_error(
                        "create", "parent provider UUID does not exist."))
                root = prow.root_provider_uuid
            dups = await _duplicates(conn, uuid, name)
            if dups:
                raise _conflict(dups)
            now = util.utcnow()
            await conn.execute(RP.insert().values(
                uuid=uuid, name=name, generation=0, root_provider_uuid=root,
                parent_provider_uuid=parent, created_at=now))
            row = await provider_store.get_provider(conn, uuid)
    except IntegrityError:
        # Lost a race between the checks and the insert: another creator took
        # the uuid or name, or the parent was deleted.
        async with db(request).read() as conn:
            dups = await _duplicates(conn, uuid, name)
        if dups:
            raise _conflict(dups) from None
        raise error(400, prefix + _action_error(
            "create", "parent provider UUID does not exist.")) from None
    headers = {"Location": location(request, f"/resource_providers/{uuid}")}
    if not microversion.at_least(request, 1, 20):
        return empty(201, headers)
    resp = util.json_response(request, provider_view(request, row),
                              last_modified=row.created_at, headers=headers)
    return resp


def _conflict(duplicates: list[str]):
    return error(409, f"Conflicting resource provider {', '.join(duplicates)} "
                      "already exists.", DUPLICATE_NAME)


async def update_resource_provider(request: web.Request) -> web.Response:
    require_json(request)
    authorize(request, "placement:resource_providers:update")
    uuid = request.match_info["uuid"]
    async with db(request).read() as conn:
        await provider_store.get_provider(conn, uuid)
    data = await read_body(request, schema.put_schema(microversion.of(request)))
    try:
        async with db(request).write() as conn:
            row = await provider_store.get_provider(conn, uuid)
            changes = {"name": data["name"], "updated_at": util.utcnow()}
            if "parent_provider_uuid" in data:
                row = await _lock_trees_for(conn, uuid, data["parent_provider_uuid"])
                await _reparent(request, conn, row, data["parent_provider_uuid"],
                                changes)
            other = (await conn.execute(
                select(RP.c.uuid).where(RP.c.name == data["name"], RP.c.uuid != uuid))
            ).first()
            if other is not None:
                raise error(409, f"Conflicting resource provider {data['name']} "
                                 "already exists.", DUPLICATE_NAME)
            await conn.execute(update(RP).where(RP.c.uuid == uuid).values(**changes))
            row = await provider_store.get_provider(conn, uuid)
    except IntegrityError:
        raise error(409, f"Conflicting resource provider {data['name']} already "
                         "exists.", DUPLICATE_NAME) from None
    return util.json_response(request, provider_view(request, row),
                              last_modified=row.updated_at)


async def _lock_trees_for(conn, uuid: str, parent: str | None):
    """Row-lock the provider's tree and the new parent's tree, then re-read.

    Two concurrent re-parentings touching the same trees then run one after
    the other, so neither can build a loop the other's check did not see.
    Returns the provider row as of the locks.
    """
    locked: set[str] = set()
    while True:
        row = await provider_store.get_provider(conn, uuid)
        roots = {row.root_provider_uuid}
        prow = await provider_store.find_provider(conn, parent) if parent else None
        if prow is not None:
            roots.add(prow.root_provider_uuid)
        if roots <= locked:
            return row
        locked |= roots
        await provider_store.lock_trees(conn, locked)


async def _reparent(request: web.Request, conn, row, parent: str | None,
                    changes: dict) -> None:
    """Validate a parent change and move the subtree's root along with it."""
    allow = microversion.at_least(request, 1, 37)
    prefix = f"Unable to save resource provider {row.uuid}: "
    if parent is not None:
        prow = await provider_store.find_provider(conn, parent)
        if prow is None:
            raise error(400, prefix + _action_error(
                "create", "parent provider UUID does not exist."))
        if (row.parent_provider_uuid is not None
                and row.parent_provider_uuid != parent and not allow):
            raise error(400, prefix + _action_error(
                "update", "re-parenting a provider is not currently allowed."))
        subtree = await provider_store.descendants(conn, row.uuid) | {row.uuid}
        if parent in subtree:
            raise error(400, prefix + _action_error(
                "update", "creating loop in the provider tree is not allowed."))
        new_root = prow.root_provider_uuid
    elif row.parent_provider_uuid is not None:
        if not allow:
            raise error(400, prefix + _action_error(
                "update", "un-parenting a provider is not currently allowed."))
        subtree = await provider_store.descendants(conn, row.uuid) | {row.uuid}
        new_root = row.uuid
    else:
        return  # a root stays a root
    changes["parent_provider_uuid"] = parent
    if new_root != row.root_provider_uuid:
        await conn.execute(update(RP).where(RP.c.uuid.in_(sorted(subtree)))
                           .values(root_provider_uuid=new_root))


async def delete_resource_provider(request: web.Request) -> web.Response:
    authorize(request, "placement:resource_providers:delete")
    uuid = request.match_info["uuid"]
    try:
        async with db(request).write() as conn:
            await provider_store.lock_provider(
                conn, uuid, f"No resource provider with uuid {uuid} found for delete")
            if await conn.scalar(select(exists().where(RP.c.parent_provider_uuid == uuid))):
                raise _parent_conflict(uuid)
            if await conn.scalar(select(exists().where(
                    t.allocation.c.resource_provider_uuid == uuid))):
                raise error(409, f"Unable to delete resource provider {uuid}: "
                                 "Resource provider has allocations.", PROVIDER_IN_USE)
            for table in (t.inventory, t.resource_provider_aggregate,
                          t.resource_provider_trait):
                await conn.execute(delete(table).where(
                    table.c.resource_provider_uuid == uuid))
            await conn.execute(delete(RP).where(RP.c.uuid == uuid))
    except IntegrityError:
        # A child appeared between the check and the delete.
        raise _parent_conflict(uuid) from None
    return empty(204)


def _parent_conflict(uuid: str):
    return error(409, f"Unable to delete parent resource provider {uuid}: It has "
                      "child resource providers.", PROVIDER_CANNOT_DELETE_PARENT)
