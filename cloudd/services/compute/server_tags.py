"""/servers/{id}/tags (2.26+): list, replace, delete all, and one tag (check,
add, delete), as Nova's server_tags.py answers them."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common, instance_store, servers, tasks
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER
from cloudd.services.compute.server_actions import invalid_state
from cloudd.services.compute.server_schemas import MAX_TAGS, TAG, TAGS_BODY, validate
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

RULE = "os_compute_api:os-server-tags:%s"
WRITABLE = ("active", "paused", "suspended", "stopped")
V = (2, 26)
tg = t.instance_tag


async def _tags(conn, uuid: str) -> list[str]:
    rows = await conn.execute(select(tg.c.tag).where(tg.c.instance_uuid == uuid)
                              .order_by(tg.c.tag))
    return [r for (r,) in rows]


async def _instance(request, conn, rule: str, action: str | None = None):
    uuid = request.match_info["server_id"]
    row = await instance_store.get(conn, uuid, servers.scope(request))
    common.context(request).authorize(RULE % rule, {"project_id": row.project_id})
    if action is not None and row.vm_state not in WRITABLE:
        raise invalid_state(action, uuid, "vm_state", row.vm_state)
    return row


async def _touch(conn, uuid: str) -> None:
    await conn.execute(t.instance.update().where(t.instance.c.uuid == uuid)
                       .values(updated_at=tasks.utcnow()))


def _location(request, uuid: str, tag: str) -> str:
    return f"{common.version_root(request)}/servers/{uuid}/tags/{tag}"


async def index(request: web.Request) -> web.Response:
    async with common.cloud(request).db.read() as conn:
        row = await _instance(request, conn, "index")
        return web.json_response({"tags": await _tags(conn, row.uuid)})


async def show(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    async with common.cloud(request).db.read() as conn:
        row = await _instance(request, conn, "show")
        tags = await _tags(conn, row.uuid)
    if tag not in tags:
        raise ApiError(404, f"Server {row.uuid} has no tag '{tag}'")
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    async with common.cloud(request).db.write() as conn:
        row = await _instance(request, conn, "update", "update tag")
        import jsonschema

        try:
            jsonschema.validate(tag, TAG)
        except jsonschema.ValidationError as e:
            raise ApiError(400, f"Tag '{tag}' is invalid. It must be a non empty string "
                                "without characters '/' and ','. Validation error message: "
                                f"{e.message}") from None
        tags = await _tags(conn, row.uuid)
        if len(tags) >= MAX_TAGS:
            raise ApiError(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        if tag in tags:
            return web.Response(status=204)
        await conn.execute(tg.insert().values(instance_uuid=row.uuid, tag=tag))
        await _touch(conn, row.uuid)
    return web.Response(status=201, headers={"Location": _location(request, row.uuid, tag)})


async def update_all(request: web.Request) -> web.Response:
    body = await read_json(request)
    async with common.cloud(request).db.write() as conn:
        row = await _instance(request, conn, "update_all", "update tags")
        validate(body, TAGS_BODY)
        tags = sorted(set(body["tags"]))
        await conn.execute(tg.delete().where(tg.c.instance_uuid == row.uuid))
        for tag in tags:
            await conn.execute(tg.insert().values(instance_uuid=row.uuid, tag=tag))
        await _touch(conn, row.uuid)
    return web.json_response({"tags": tags})


async def delete(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    async with common.cloud(request).db.write() as conn:
        row = await _instance(request, conn, "delete", "delete tag")
        res = await conn.execute(tg.delete().where(tg.c.instance_uuid == row.uuid,
                                                   tg.c.tag == tag))
        if res.rowcount == 0:
            raise ApiError(404, f"Instance {row.uuid} has no tag '{tag}'")
        await _touch(conn, row.uuid)
    return web.Response(status=204)


async def delete_all(request: web.Request) -> web.Response:
    async with common.cloud(request).db.write() as conn:
        row = await _instance(request, conn, "delete_all", "delete tags")
        await conn.execute(tg.delete().where(tg.c.instance_uuid == row.uuid))
        await _touch(conn, row.uuid)
    return web.Response(status=204)


ROUTES = {
    "/servers/{server_id}/tags": {"GET": (index, V), "PUT": (update_all, V),
                                  "DELETE": (delete_all, V)},
    "/servers/{server_id}/tags/{tag}": {"GET": (show, V), "PUT": (update, V),
                                        "DELETE": (delete, V)},
}

POLICIES = {RULE % "index": READER, RULE % "show": READER, RULE % "update": MEMBER,
            RULE % "update_all": MEMBER, RULE % "delete": MEMBER,
            RULE % "delete_all": MEMBER}
