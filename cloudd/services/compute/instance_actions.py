"""/servers/{id}/os-instance-actions: what was done to a server, and the
events of one action (Nova's instance_actions.py, per microversion)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common, instance_store, servers
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER
from cloudd.services.compute.server_views import host_id
from cloudd.web.errors import ApiError

RULE = "os_compute_api:os-instance-actions:%s"
ia = t.instance_action
ev = t.instance_action_event


def _action(row, mv) -> dict:
    out = {"action": row.action, "instance_uuid": row.instance_uuid,
           "request_id": row.request_id, "user_id": row.user_id,
           "project_id": row.project_id, "start_time": common.isotime_micro(row.start_time),
           "message": row.message}
    if mv >= (2, 58):
        out["updated_at"] = common.isotime_micro(row.updated_at or row.start_time)
    return out


async def _instance(request, conn, rule: str):
    uuid = request.match_info["server_id"]
    row = await instance_store.get(conn, uuid, servers.scope(request),
                                   read_deleted=common.at_least(request, 2, 21))
    common.context(request).authorize(RULE % rule, {"project_id": row.project_id})
    return row


async def index(request: web.Request) -> web.Response:
    mv = common.mv(request)
    async with common.cloud(request).db.read() as conn:
        inst = await _instance(request, conn, "list")
        rows = (await conn.execute(select(ia).where(ia.c.instance_uuid == inst.uuid)
                                   .order_by(ia.c.start_time.desc(), ia.c.id.desc()))).all()
    if mv < (2, 58):
        return web.json_response({"instanceActions": [_action(r, mv) for r in rows]})
    from cloudd.services.compute.servers import _parse_time
    since = before = None
    if "changes-since" in request.query:
        since = _parse_time(request.query["changes-since"], "changes-since")
    if "changes-before" in request.query:
        before = _parse_time(request.query["changes-before"], "changes-before")
        if since and before < since:
            raise ApiError(400, "The value of changes-since must be less than or equal to "
                                "changes-before.")
    if since:
        rows = [r for r in rows if (r.updated_at or r.start_time) >= since]
    if before:
        rows = [r for r in rows if (r.updated_at or r.start_time) <= before]
    limit, marker = common.limit_and_marker(request)
    if marker is not None:
        ids = [r.request_id for r in rows]
        if marker not in ids:
            raise ApiError(400, f"Marker {marker} could not be found.")
        rows = rows[ids.index(marker) + 1:]
    rows = rows[:limit]
    out = {"instanceActions": [_action(r, mv) for r in rows]}
    if rows and len(rows) == limit:
        out["links"] = [common.next_link(
            request, f"servers/{inst.uuid}/os-instance-actions", rows[-1].request_id)]
    return web.json_response(out)


async def show(request: web.Request) -> web.Response:
    mv = common.mv(request)
    ctx = common.context(request)
    request_id = request.match_info["request_id"]
    async with common.cloud(request).db.read() as conn:
        inst = await _instance(request, conn, "show")
        row = (await conn.execute(select(ia).where(
            ia.c.instance_uuid == inst.uuid, ia.c.request_id == request_id)
            .order_by(ia.c.start_time.desc()))).first()
        if row is None:
            raise ApiError(404, f"Action {request_id} not found")
        events = (await conn.execute(select(ev).where(ev.c.action_id == row.id)
                                     .order_by(ev.c.start_time, ev.c.id))).all()
    action = _action(row, mv)
    target = {"project_id": inst.project_id}
    admin_events = ctx.can(RULE % "events", target)
    if admin_events or mv >= (2, 51):
        details = mv >= (2, 84) and ctx.can(RULE % "events:details", target)
        out = []
        for e in events:
            item = {"event": e.event, "start_time": common.isotime_micro(e.start_time),
                    "finish_time": common.isotime_micro(e.finish_time), "result": e.result}
            if admin_events:
                item["traceback"] = e.traceback
                if mv >= (2, 62):
                    item["host"] = e.host or ""
            if mv >= (2, 62):
                item["hostId"] = host_id(row.project_id or inst.project_id, e.host)
            if details:
                item["details"] = e.details
            out.append(item)
        action["events"] = out
    return web.json_response({"instanceAction": action})


ROUTES = {
    "/servers/{server_id}/os-instance-actions": {"GET": (index, None)},
    "/servers/{server_id}/os-instance-actions/{request_id}": {"GET": (show, None)},
}

POLICIES = {RULE % "list": READER, RULE % "show": READER, RULE % "events": ADMIN,
            RULE % "events:details": ADMIN}
