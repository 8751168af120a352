"""os-simple-tenant-usage: hours and sizes of the instances of a period.

An instance counts when it was launched before the period's end and not
terminated before its start (deleted instances included: their
terminated_at, else deleted_at, ends them). Hours are the overlap of
[launched_at, terminated_at or end] with [start, end]; the end is capped at
now. GET /os-simple-tenant-usage is for admins (all projects; server_usages
with ?detailed=1), GET /os-simple-tenant-usage/{tenant_id} for the project's
readers and admins. From 2.40 both page over instances (sorted by project,
uuid) with limit/marker and give a next link when a page is full.
"""

from __future__ import annotations

import json
from datetime import datetime

from aiohttp import web
from sqlalchemy import and_, or_, select, tuple_

from cloudd.db import tables as t
from cloudd.services.compute import common
from cloudd.services.compute.policies import ADMIN, PROJECT_READER_OR_ADMIN
from cloudd.services.compute.query_checks import reject_unknown
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError

ROOT = "os_compute_api:os-simple-tenant-usage:%s"
INST = t.instance
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _parse(raw: str | None, now: datetime) -> datetime:
    if not raw:
        return now
    for fmt in _FORMATS:
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            continue
    raise ApiError(400, "Invalid datetime string: Datetime is in invalid format")


def _period(request: web.Request) -> tuple[datetime, datetime]:
    now = utcnow()
    start = _parse(request.query.get("start"), now)
    stop = _parse(request.query.get("end"), now)
    # Both defaulted is "now to now": Nova reads the clock twice and lets it pass.
    given = request.query.get("start") or request.query.get("end")
    if given and not start < stop:
        raise ApiError(400, "Invalid start time. The start time cannot occur after the end "
                            "time.")
    return start, min(stop, now)


def _ended(row) -> datetime | None:
    if row.terminated_at is not None:
        return row.terminated_at
    return row.deleted_at if row.deleted else None


def _hours(row, start: datetime, stop: datetime) -> float:
    launched, ended = row.launched_at, _ended(row)
    if launched is None or launched > stop or (ended is not None and ended < start):
        return 0
    end = min(stop, ended) if ended else stop
    return (end - max(launched, start)).total_seconds() / 3600.0


async def _instances(conn, start, stop, project_id, limit, marker) -> list:
    ended = INST.c.terminated_at
    query = (select(INST).where(
        INST.c.launched_at.is_not(None), INST.c.launched_at < stop,
        or_(and_(ended.is_(None), or_(INST.c.deleted.is_(False), INST.c.deleted_at.is_(None),
                                      INST.c.deleted_at > start)),
            ended > start))
        .order_by(INST.c.project_id, INST.c.uuid))
    if project_id is not None:
        query = query.where(INST.c.project_id == project_id)
    if marker is not None:
        found = (await conn.execute(select(INST.c.project_id, INST.c.uuid)
                                    .where(INST.c.uuid == marker))).first()
        if found is None:
            raise ApiError(400, f"Marker {marker} could not be found.")
        query = query.where(tuple_(INST.c.project_id, INST.c.uuid)
                            > tuple_(found.project_id, found.uuid))
    if limit is not None:
        query = query.limit(limit)
    return (await conn.execute(query)).all()


def _server_usage(row, start, stop, now) -> dict:
    flavor = json.loads(row.flavor) if row.flavor else {}
    ended = _ended(row)
    started = row.launched_at
    uptime = (ended or now) - started
    return {
        "hours": _hours(row, start, stop),
        "flavor": flavor.get("name", ""),
        "instance_id": row.uuid,
        "name": row.display_name,
        "tenant_id": row.project_id,
        "memory_mb": int(flavor.get("memory_mb") or 0),
        "local_gb": int(flavor.get("root_gb") or 0) + int(flavor.get("ephemeral_gb") or 0),
        "vcpus": int(flavor.get("vcpus") or 0),
        "started_at": common.isotime_micro(started),
        "ended_at": common.isotime_micro(ended),
        "state": "terminated" if ended else row.vm_state,
        "uptime": max(int(uptime.total_seconds()), 0),
    }


def _summaries(rows, start, stop, detailed: bool) -> tuple[list[dict], list[dict]]:
    now = utcnow()
    tenants: dict[str, dict] = {}
    all_usages = []
    for row in rows:
        info = _server_usage(row, start, stop, now)
        summary = tenants.get(row.project_id)
        if summary is None:
            summary = tenants[row.project_id] = {
                "tenant_id": row.project_id, "total_local_gb_usage": 0,
                "total_vcpus_usage": 0, "total_memory_mb_usage": 0, "total_hours": 0,
                "start": common.isotime_micro(start), "stop": common.isotime_micro(stop)}
            if detailed:
                summary["server_usages"] = []
        summary["total_local_gb_usage"] += info["local_gb"] * info["hours"]
        summary["total_vcpus_usage"] += info["vcpus"] * info["hours"]
        summary["total_memory_mb_usage"] += info["memory_mb"] * info["hours"]
        summary["total_hours"] += info["hours"]
        all_usages.append(info)
        if detailed:
            summary["server_usages"].append(info)
    return list(tenants.values()), all_usages


def _paging(request: web.Request, allowed: set[str]) -> tuple[int | None, str | None, bool]:
    if common.at_least(request, 2, 75):
        reject_unknown(request, allowed | {"limit", "marker"})
    if common.at_least(request, 2, 40):
        limit, marker = common.limit_and_marker(request)
        return limit, marker, True
    return common.MAX_LIMIT, None, False


def _links(request, usages: list[dict], limit: int, collection: str) -> list[dict]:
    if usages and len(usages) == min(limit, common.MAX_LIMIT):
        return [common.next_link(request, collection, usages[-1]["instance_id"])]
    return []


async def index(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "list", {})
    start, stop = _period(request)
    detailed = request.query.get("detailed", "0") == "1"
    limit, marker, paged = _paging(request, {"start", "end", "detailed"})
    async with common.cloud(request).db.read() as conn:
        rows = await _instances(conn, start, stop, None, limit, marker)
    usages, servers = _summaries(rows, start, stop, detailed)
    body: dict = {"tenant_usages": usages}
    if paged and (links := _links(request, servers, limit, "os-simple-tenant-usage")):
        body["tenant_usages_links"] = links
    return web.json_response(body)


async def show(request: web.Request) -> web.Response:
    tenant_id = request.match_info["tenant_id"]
    common.context(request).authorize(ROOT % "show", {"project_id": tenant_id})
    start, stop = _period(request)
    limit, marker, paged = _paging(request, {"start", "end"})
    async with common.cloud(request).db.read() as conn:
        rows = await _instances(conn, start, stop, tenant_id, limit, marker)
    usages, servers = _summaries(rows, start, stop, True)
    body: dict = {"tenant_usage": usages[0] if usages else {}}
    if paged and (links := _links(request, servers, limit,
                                  f"os-simple-tenant-usage/{tenant_id}")):
        body["tenant_usage_links"] = links
    return web.json_response(body)


ROUTES = {
    "/os-simple-tenant-usage": {"GET": (index, None)},
    "/os-simple-tenant-usage/{tenant_id}": {"GET": (show, None)},
}

POLICIES = {
    ROOT % "list": ADMIN,
    ROOT % "show": PROJECT_READER_OR_ADMIN,
}
