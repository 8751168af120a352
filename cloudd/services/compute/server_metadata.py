"""/servers/{id}/metadata: list, merge (POST), replace (PUT), and one item
(GET, PUT, DELETE), as Nova's server_metadata.py answers them."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import (
    common,
    instance_store,
    server_create,
    servers,
    tasks,
)
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER
from cloudd.services.compute.server_actions import Guard, check
from cloudd.services.compute.server_schemas import (
    META_ITEM_BODY,
    METADATA_BODY,
    validate,
)
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

RULE = "os_compute_api:server-metadata:%s"
WRITABLE = ("active", "paused", "suspended", "stopped")
md = t.instance_metadata


async def _current(conn, uuid: str) -> dict:
    rows = await conn.execute(select(md.c.meta_key, md.c.meta_value)
                              .where(md.c.instance_uuid == uuid))
    return {k: v for k, v in rows}


async def _instance(request, conn, rule: str):
    uuid = request.match_info["server_id"]
    row = await instance_store.get(conn, uuid, servers.scope(request))
    common.context(request).authorize(RULE % rule, {"project_id": row.project_id})
    return row


async def _write(request, rule: str, new: dict | None, *, replace: bool,
                 delete_key: str | None = None) -> dict:
    """Apply a change under Nova's guards (lock, vm_state, launched) and quota."""
    ctx = common.context(request)
    cloud = common.cloud(request)
    async with cloud.db.write() as conn:
        row = await _instance(request, conn, rule)
        current = await _current(conn, row.uuid)
        if delete_key is not None and delete_key not in current:
            raise ApiError(404, "Metadata item was not found")
        action = "delete metadata" if delete_key is not None else "update metadata"
        check(Guard(action, "", WRITABLE, task_states=None), row,
              ctx.can("context_is_admin", {}))
        if delete_key is not None:
            await conn.execute(md.delete().where(md.c.instance_uuid == row.uuid,
                                                 md.c.meta_key == delete_key))
            result = {k: v for k, v in current.items() if k != delete_key}
        else:
            result = dict(new) if replace else {**current, **new}
            await server_create.check_metadata_quota(conn, cloud.config, row.project_id,
                                                     result)
            await conn.execute(md.delete().where(md.c.instance_uuid == row.uuid))
            for k, v in result.items():
                await conn.execute(md.insert().values(instance_uuid=row.uuid, meta_key=k,
                                                      meta_value=v))
        await conn.execute(t.instance.update().where(t.instance.c.uuid == row.uuid)
                           .values(updated_at=tasks.utcnow()))
    return result


async def index(request: web.Request) -> web.Response:
    async with common.cloud(request).db.read() as conn:
        row = await _instance(request, conn, "index")
        return web.json_response({"metadata": await _current(conn, row.uuid)})


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    validate(body, METADATA_BODY)
    result = await _write(request, "create", body["metadata"], replace=False)
    return web.json_response({"metadata": result})


async def update_all(request: web.Request) -> web.Response:
    body = await read_json(request)
    validate(body, METADATA_BODY)
    result = await _write(request, "update_all", body["metadata"], replace=True)
    return web.json_response({"metadata": result})


async def show(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    async with common.cloud(request).db.read() as conn:
        row = await _instance(request, conn, "show")
        current = await _current(conn, row.uuid)
    if key not in current:
        raise ApiError(404, "Metadata item was not found")
    return web.json_response({"meta": {key: current[key]}})


async def update(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    body = await read_json(request)
    validate(body, META_ITEM_BODY)
    if key not in body["meta"]:
        raise ApiError(400, "Request body and URI mismatch")
    await _write(request, "update", body["meta"], replace=False)
    return web.json_response({"meta": body["meta"]})


async def delete(request: web.Request) -> web.Response:
    await _write(request, "delete", None, replace=False, delete_key=request.match_info["key"])
    return web.Response(status=204)


ROUTES = {
    "/servers/{server_id}/metadata": {"GET": (index, None), "POST": (create, None),
                                      "PUT": (update_all, None)},
    "/servers/{server_id}/metadata/{key}": {"GET": (show, None), "PUT": (update, None),
                                            "DELETE": (delete, None)},
}

POLICIES = {RULE % "index": READER, RULE % "show": READER, RULE % "create": MEMBER,
            RULE % "update": MEMBER, RULE % "update_all": MEMBER, RULE % "delete": MEMBER}
