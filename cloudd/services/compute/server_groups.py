"""/os-server-groups: list, create, show, delete (Nova's server_groups.py;
policies as a list before 2.64, one policy with rules from 2.64)."""

from __future__ import annotations

import functools
import json
import uuid as uuidlib

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common, quota_store, tasks
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER
from cloudd.services.compute.server_schemas import NAME, validate
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

RULE = "os_compute_api:os-server-groups:%s"
sg = t.server_group
sgm = t.server_group_member


@functools.lru_cache(maxsize=128)
def _schema(mv) -> dict:
    if mv >= (2, 64):
        props = {"name": NAME,
                 "policy": {"type": "string", "enum": ["anti-affinity", "affinity",
                                                       "soft-anti-affinity",
                                                       "soft-affinity"]},
                 "rules": {"type": "object",
                           "properties": {"max_server_per_host": {
                               "type": ["integer", "string"], "pattern": "^[0-9]*$",
                               "minimum": 1, "minLength": 1}},
                           "additionalProperties": False}}
        required = ["name", "policy"]
    else:
        names = ["anti-affinity", "affinity"]
        if mv >= (2, 15):
            names += ["soft-anti-affinity", "soft-affinity"]
        props = {"name": NAME,
                 "policies": {"type": "array", "items": [{"type": "string", "enum": names}],
                              "uniqueItems": True, "minItems": 1, "maxItems": 1,
                              "additionalItems": False}}
        required = ["name", "policies"]
    return {"type": "object",
            "properties": {"server_group": {"type": "object", "properties": props,
                                            "required": required,
                                            "additionalProperties": False}},
            "required": ["server_group"], "additionalProperties": False}


async def _live_members(conn, group_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {g: [] for g in group_ids}
    if not group_ids:
        return out
    rows = await conn.execute(
        select(sgm.c.group_id, sgm.c.instance_uuid)
        .join(t.instance, t.instance.c.uuid == sgm.c.instance_uuid)
        .where(sgm.c.group_id.in_(group_ids), t.instance.c.deleted.is_(False))
        .order_by(sgm.c.instance_uuid))
    for gid, uuid in rows:
        out[gid].append(uuid)
    return out


def _view(request, row, members: list[str]) -> dict:
    out = {"id": row.id, "name": row.name}
    if common.at_least(request, 2, 64):
        rules = json.loads(row.rules or "{}")
        out["policy"] = row.policy
        out["rules"] = {k: int(v) for k, v in rules.items()}
    else:
        out["policies"] = [row.policy]
        out["metadata"] = {}
    out["members"] = members
    if common.at_least(request, 2, 13):
        out["project_id"] = row.project_id
        out["user_id"] = row.user_id
    return out


async def _get(conn, group_id: str):
    row = (await conn.execute(select(sg).where(sg.c.id == group_id))).first()
    if row is None:
        raise ApiError(404, f"Instance group {group_id} could not be found.")
    return row


async def index(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(RULE % "index", {"project_id": ctx.project_id})
    query = select(sg).order_by(sg.c.created_at, sg.c.id)
    if "all_projects" in request.query and ctx.can("context_is_admin", {}):
        ctx.authorize(RULE % "index:all_projects", {"project_id": ctx.project_id})
    else:
        query = query.where(sg.c.project_id == ctx.project_id)
    limit, _ = common.limit_and_marker(request)
    try:
        offset = int(request.query.get("offset", 0))
    except ValueError:
        raise ApiError(400, "offset param must be an integer") from None
    if offset < 0:
        raise ApiError(400, "offset param must be positive")
    async with common.cloud(request).db.read() as conn:
        rows = (await conn.execute(query)).all()[offset:offset + limit]
        members = await _live_members(conn, [r.id for r in rows])
    return web.json_response({"server_groups": [_view(request, r, members[r.id])
                                                for r in rows]})


async def show(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row = await _get(conn, request.match_info["group_id"])
        ctx.authorize(RULE % "show", {"project_id": row.project_id})
        members = await _live_members(conn, [row.id])
    return web.json_response({"server_group": _view(request, row, members[row.id])})


async def create(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    ctx.authorize(RULE % "create", {"project_id": ctx.project_id})
    body = await read_json(request)
    mv = common.mv(request)
    validate(body, _schema(mv))
    vals = body["server_group"]
    if mv >= (2, 64):
        policy, rules = vals["policy"], vals.get("rules") or {}
        if policy != "anti-affinity" and rules:
            raise ApiError(400, "Only anti-affinity policy supports rules.")
        rules = {k: int(v) for k, v in rules.items()}
    else:
        policy, rules = vals["policies"][0], {}
    async with cloud.db.write() as conn:
        await quota_store.enforce(conn, cloud.config, ctx.project_id, ctx.user_id,
                                  {"server_groups": 1},
                                  message="Quota exceeded, too many server groups.")
        gid = str(uuidlib.uuid4())
        await conn.execute(sg.insert().values(
            id=gid, name=vals["name"], project_id=ctx.project_id, user_id=ctx.user_id,
            policy=policy, rules=json.dumps(rules), created_at=tasks.utcnow()))
        row = await _get(conn, gid)
    return web.json_response({"server_group": _view(request, row, [])})


async def delete(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.write() as conn:
        row = await _get(conn, request.match_info["group_id"])
        ctx.authorize(RULE % "delete", {"project_id": row.project_id})
        await conn.execute(sg.delete().where(sg.c.id == row.id))
    return web.Response(status=204)


ROUTES = {
    "/os-server-groups": {"GET": (index, None), "POST": (create, None)},
    "/os-server-groups/{group_id}": {"GET": (show, None), "DELETE": (delete, None)},
}

POLICIES = {RULE % "index": READER, RULE % "index:all_projects": ADMIN,
            RULE % "show": READER, RULE % "create": MEMBER, RULE % "delete": MEMBER}
