"""GET /os-migrations: every migration (resize, cold/live migration, evacuation).

Fields as Nova's MigrationsController shows them per microversion: the
integer ``id`` (the row's ``num``), ``migration_type`` and (for live
migrations in progress) ``links`` from 2.23, ``uuid`` with paging from 2.59
(newest first, ``limit``/``marker`` by uuid, ``changes-since``), also
``changes-before`` from 2.66, ``user_id``/``project_id`` (filters too) from
2.80. ``old/new_instance_type_id`` are Nova's internal integer flavor ids;
cloudd's flavors have only their string id, so a numeric one is shown as
that number and any other as null. ``dest_host`` is the destination node's
host IP. A migration's user and project are those of its instance.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import or_, select

from cloudd.db import tables as t
from cloudd.services.compute import common
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.query_checks import as_bool, reject_unknown, single
from cloudd.web.errors import ApiError

ROOT = "os_compute_api:os-migrations:%s"
MIG = t.migration
INST = t.instance
NODE = t.compute_node
_LIVE_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")
_V20_FILTERS = {"hidden", "host", "instance_uuid", "source_compute", "status",
                "migration_type"}


def _allowed(request: web.Request) -> set[str] | None:
    if not common.at_least(request, 2, 59):
        return None                      # additionalProperties: True
    allowed = _V20_FILTERS | {"limit", "marker", "changes-since"}
    if common.at_least(request, 2, 66):
        allowed.add("changes-before")
    if common.at_least(request, 2, 80):
        allowed |= {"user_id", "project_id"}
    return allowed


def _time(request: web.Request, name: str) -> datetime | None:
    raw = single(request, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"Invalid input for query parameters {name}. Value: {raw}. "
                            f"'{raw}' is not a 'date-time'") from None
    if value.tzinfo is not None:                  # stored times are naive UTC
        value = (value - value.utcoffset()).replace(tzinfo=None)
    return value


def _type_id(flavor_id: str | None) -> int | None:
    try:
        return int(flavor_id) if flavor_id else None
    except ValueError:
        return None


def _view(request: web.Request, r, show_host: bool) -> dict:
    body = {
        "id": r.num, "status": r.status, "instance_uuid": r.instance_uuid,
        "source_node": r.source_node, "source_compute": r.source_compute,
        "dest_node": r.dest_node, "dest_compute": r.dest_compute, "dest_host": r.dest_ip,
        "old_instance_type_id": _type_id(r.old_flavor_id),
        "new_instance_type_id": _type_id(r.new_flavor_id),
        "created_at": common.isotime_micro(r.created_at),
        "updated_at": common.isotime_micro(r.updated_at),
    }
    if not show_host:
        body.update(dest_compute=None, dest_host=None, dest_node=None,
                    source_compute=None, source_node=None)
    if common.at_least(request, 2, 23):
        body["migration_type"] = r.migration_type
        if r.migration_type == "live-migration" and r.status in _LIVE_IN_PROGRESS:
            body["links"] = common.links(request, f"servers/{r.instance_uuid}/migrations",
                                         str(r.num))
    if common.at_least(request, 2, 59):
        body["uuid"] = r.id
    if common.at_least(request, 2, 80):
        body["user_id"] = r.user_id
        body["project_id"] = r.project_id
    return body


async def index(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "index", {"project_id": ctx.project_id})
    allowed = _allowed(request)
    if allowed is not None:
        reject_unknown(request, allowed)
    q = request.query
    project = q.get("project_id") if common.at_least(request, 2, 80) else None
    if not project or project != ctx.project_id:
        ctx.authorize(ROOT % "index:all_projects", {})
    show_host = ctx.can(ROOT % "index:host", {})
    paged = common.at_least(request, 2, 59)
    query = (select(MIG, INST.c.user_id, INST.c.project_id, NODE.c.host_ip.label("dest_ip"))
             .join(INST, INST.c.uuid == MIG.c.instance_uuid)
             .outerjoin(NODE, NODE.c.hypervisor_hostname == MIG.c.dest_node))
    if q.get("host"):
        query = query.where(or_(MIG.c.source_compute == q["host"],
                                MIG.c.dest_compute == q["host"]))
    for name, column in (("status", MIG.c.status), ("instance_uuid", MIG.c.instance_uuid),
                         ("source_compute", MIG.c.source_compute),
                         ("migration_type", MIG.c.migration_type)):
        if q.get(name):
            query = query.where(column == q[name])
    if "hidden" in q and as_bool(q["hidden"], "hidden"):
        query = query.where(MIG.c.id.is_(None))        # cloudd hides none
    if common.at_least(request, 2, 80):
        if q.get("user_id"):
            query = query.where(INST.c.user_id == q["user_id"])
        if project:
            query = query.where(INST.c.project_id == project)
    limit = marker = None
    if paged:
        since = _time(request, "changes-since")
        before = _time(request, "changes-before") if common.at_least(request, 2, 66) else None
        if since and before and before < since:
            raise ApiError(400, "The value of changes-since must be less than or equal "
                                "to changes-before.")
        if since:
            query = query.where(MIG.c.updated_at >= since)
        if before:
            query = query.where(MIG.c.updated_at <= before)
        limit, marker = common.limit_and_marker(request)
        query = query.order_by(MIG.c.created_at.desc(), MIG.c.num.desc())
    else:
        query = query.order_by(MIG.c.num)
    async with common.cloud(request).db.read() as conn:
        rows = (await conn.execute(query)).all()
    if marker is not None:
        at = next((i for i, r in enumerate(rows) if r.id == marker), None)
        if at is None:
            raise ApiError(400, f"Marker {marker} could not be found.")
        rows = rows[at + 1:]
    if limit is not None:
        rows = rows[:limit]
    body: dict = {"migrations": [_view(request, r, show_host) for r in rows]}
    if paged and limit and len(rows) == limit:
        body["migrations_links"] = [common.next_link(request, "os-migrations", rows[-1].id)]
    return web.json_response(body)


ROUTES = {"/os-migrations": {"GET": (index, None)}}

POLICIES = {
    ROOT % "index": "rule:project_manager_or_admin",
    ROOT % "index:all_projects": ADMIN,
    ROOT % "index:host": ADMIN,
}
