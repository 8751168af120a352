"""os-hypervisors: compute nodes, their service state and usage (admin only).

A hypervisor is a ``compute_node`` row; its service is the nova-compute row
it belongs to (state up/down, status enabled/disabled). Ids are the integer
``num`` before 2.53 and the uuid (== its placement provider) from 2.53.
Usage (vcpus_used, memory_mb_used, local_gb_used, running_vms) is counted
from the live instances whose ``node`` is the hypervisor_hostname, plus the
MEMORY_MB / DISK_GB ``reserved`` of its placement inventory, as Nova's
resource tracker reports it. 2.88 drops the usage fields and adds uptime;
/statistics and /{id}/uptime end at 2.87; /{pattern}/search and /servers end
at 2.52, replaced by ?hypervisor_hostname_pattern= and ?with_servers=.
"""

from __future__ import annotations

import json
import os
import time

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common, protocol, service_store
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.query_checks import (
    as_bool,
    as_int,
    is_uuid,
    reject_unknown,
    single,
)
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError

ROOT = "os_compute_api:os-hypervisors:%s"
NODE = t.compute_node
SVC = t.compute_service
INST = t.instance
# Nova's current_workload: instances being built or in these tasks.
_WORKLOAD_TASKS = {"resize_migrating", "rebuilding", "resize_prep", "image_snapshot",
                   "image_backup", "rescuing", "unshelving", "shelving"}


def _uuid_ids(request: web.Request) -> bool:
    return common.at_least(request, 2, 53)


async def _nodes(conn, *, pattern: str | None = None, node_id: str | None = None,
                 limit: int | None = None, marker=None, uuid_ids: bool = False) -> list:
    """(node, service) rows in id order."""
    query = (select(NODE, SVC.c.id.label("svc_id"), SVC.c.num.label("svc_num"),
                    SVC.c.disabled, SVC.c.disabled_reason, SVC.c.forced_down,
                    SVC.c.last_seen_at, SVC.c.updated_at.label("svc_updated_at"),
                    SVC.c.created_at.label("svc_created_at"), SVC.c.binary_name)
             .join(SVC, SVC.c.id == NODE.c.service_id).order_by(NODE.c.num))
    if pattern is not None:
        escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # Case-insensitive, as on Nova's MySQL.
        query = query.where(NODE.c.hypervisor_hostname.ilike(f"%{escaped}%", escape="\\"))
    if node_id is not None:
        query = query.where(NODE.c.id == node_id if uuid_ids else NODE.c.num == int(node_id))
    if marker is not None:
        column = NODE.c.id if uuid_ids else NODE.c.num
        found = (await conn.execute(select(NODE.c.num).where(column == marker))).first()
        if found is None:
            raise ApiError(400, f"marker [{marker}] not found")
        query = query.where(NODE.c.num > found.num)
    if limit is not None:
        query = query.limit(limit)
    return (await conn.execute(query)).all()


class _SvcView:
    """The service columns of a joined row, as service_store reads a service."""

    def __init__(self, row) -> None:
        self.binary_name = row.binary_name
        self.forced_down = row.forced_down
        self.last_seen_at = row.last_seen_at
        self.updated_at = row.svc_updated_at
        self.created_at = row.svc_created_at


async def _usage(conn, nodes: list) -> dict[str, dict]:
    """{hypervisor_hostname: {vcpus, memory_mb, local_gb, running, workload}}."""
    names = [n.hypervisor_hostname for n in nodes]
    usage = {n: {"vcpus": 0, "memory_mb": 0, "local_gb": 0, "running": 0, "workload": 0}
             for n in names}
    if not names:
        return usage
    rows = await conn.execute(select(INST.c.node, INST.c.flavor, INST.c.vm_state,
                                     INST.c.task_state)
                              .where(INST.c.node.in_(names), INST.c.deleted.is_(False)))
    for r in rows:
        flavor = _flavor(r.flavor)
        u = usage[r.node]
        u["vcpus"] += int(flavor.get("vcpus") or 0)
        u["memory_mb"] += int(flavor.get("memory_mb") or 0)
        u["local_gb"] += int(flavor.get("root_gb") or 0) + int(flavor.get("ephemeral_gb") or 0)
        u["running"] += 1
        if r.vm_state == "building" or r.task_state in _WORKLOAD_TASKS:
            u["workload"] += 1
    inv = t.inventory
    for r in await conn.execute(select(inv.c.resource_provider_uuid, inv.c.resource_class,
                                       inv.c.reserved).where(
            inv.c.resource_provider_uuid.in_([n.id for n in nodes]),
            inv.c.resource_class.in_(["MEMORY_MB", "DISK_GB"]))):
        name = next(n.hypervisor_hostname for n in nodes if n.id == r.resource_provider_uuid)
        key = "memory_mb" if r.resource_class == "MEMORY_MB" else "local_gb"
        usage[name][key] += int(r.reserved or 0)
    return usage


def _flavor(raw) -> dict:
    try:
        value = json.loads(raw) if isinstance(raw, str) else (raw or {})
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _servers(conn, nodes: list) -> dict[str, list[dict]]:
    """{host: [{"name", "uuid"}]} of the live instances on the nodes' hosts."""
    host_list = sorted({n.host for n in nodes})
    out: dict[str, list[dict]] = {h: [] for h in host_list}
    if host_list:
        rows = await conn.execute(select(INST.c.host, INST.c.display_name, INST.c.uuid)
                                  .where(INST.c.host.in_(host_list), INST.c.deleted.is_(False))
                                  .order_by(INST.c.created_at, INST.c.uuid))
        for r in rows:
            out[r.host].append({"name": r.display_name, "uuid": r.uuid})
    return out


def _view(request: web.Request, node, *, detail: bool, cfg, now, usage=None,
          servers=None, with_servers: bool = False, uptime=None) -> dict:
    uuid_ids = _uuid_ids(request)
    body: dict = {
        "id": node.id if uuid_ids else node.num,
        "hypervisor_hostname": node.hypervisor_hostname,
        "state": "up" if service_store.is_up(_SvcView(node), cfg, now) else "down",
        "status": "disabled" if node.disabled else "enabled",
    }
    if detail:
        body["hypervisor_type"] = node.hypervisor_type
        body["hypervisor_version"] = node.hypervisor_version
        body["host_ip"] = node.host_ip
        body["service"] = {"id": node.svc_id if uuid_ids else node.svc_num,
                           "host": node.host, "disabled_reason": node.disabled_reason}
    if detail and not common.at_least(request, 2, 88):
        u = usage[node.hypervisor_hostname]
        body.update({
            "vcpus": node.vcpus, "memory_mb": node.memory_mb, "local_gb": node.local_gb,
            "vcpus_used": u["vcpus"], "memory_mb_used": u["memory_mb"],
            "local_gb_used": u["local_gb"],
            "free_ram_mb": node.memory_mb - u["memory_mb"],
            "free_disk_gb": node.local_gb - u["local_gb"],
            "current_workload": u["workload"], "running_vms": u["running"],
            "disk_available_least": node.local_gb - u["local_gb"],
        })
        cpu_info = node.cpu_info or ""
        if common.at_least(request, 2, 28):
            parsed = _flavor(cpu_info) if cpu_info else {}
            body["cpu_info"] = parsed
        else:
            body["cpu_info"] = cpu_info
    if detail and common.at_least(request, 2, 88):
        body["uptime"] = uptime.get(node.host) if uptime else None
    if servers:
        body["servers"] = servers
    elif with_servers and common.at_least(request, 2, 75):
        body["servers"] = []
    return body


def _local_uptime() -> str | None:
    """The ``uptime`` line of this machine (where a local agent runs)."""
    try:
        with open("/proc/uptime") as f:
            seconds = int(float(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return None
    days, rest = divmod(seconds, 86400)
    hours, minutes = divmod(rest // 60, 60)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    span = f"{days} day{'s' if days != 1 else ''}, {hours:2d}:{minutes:02d}" if days \
        else f"{hours:2d}:{minutes:02d}"
    return f" {time.strftime('%H:%M:%S')} up {span},  load average: {load}"


async def _uptime(request: web.Request, node, cfg) -> str | None:
    """The host's uptime: asked of its agent when the protocol has the call,
    else this machine's for an up host (the single-node case); None when down."""
    if not service_store.is_up(_SvcView(node), cfg, utcnow()):
        return None
    if "uptime" in protocol.CALLS:
        try:
            data = await common.compute(request).hub.call(node.host, "uptime", {}, 10)
            return (data or {}).get("uptime")
        except Exception:  # noqa: BLE001 - an unreachable agent just has no uptime
            return None
    return _local_uptime()


async def _list(request: web.Request, detail: bool) -> web.Response:
    common.context(request).authorize(ROOT % ("list-detail" if detail else "list"), {})
    cfg = common.cloud(request).config
    pattern, with_servers = None, False
    if common.at_least(request, 2, 53):
        reject_unknown(request, {"limit", "marker", "hypervisor_hostname_pattern",
                                 "with_servers"})
        pattern = single(request, "hypervisor_hostname_pattern")
        raw = single(request, "with_servers")
        with_servers = as_bool(raw, "with_servers") if raw is not None else False
    limit, marker, links = None, None, False
    if common.at_least(request, 2, 33):
        limit, marker = common.limit_and_marker(request)
        links = True
    if pattern is not None:
        if "limit" in request.query or marker:
            raise ApiError(400, "Paging over hypervisors with the "
                                "hypervisor_hostname_pattern query parameter is not "
                                "supported.")
        links, limit = False, None
    uuid_ids = _uuid_ids(request)
    if marker is not None and not uuid_ids and as_int(marker) is None:
        raise ApiError(400, f"marker [{marker}] not found")
    async with common.cloud(request).db.read() as conn:
        nodes = await _nodes(conn, pattern=pattern, limit=limit, marker=marker,
                             uuid_ids=uuid_ids)
        if pattern is not None and not nodes:
            raise ApiError(404, f"No hypervisor matching '{pattern}' could be found.")
        usage = await _usage(conn, nodes) if detail else None
        servers = await _servers(conn, nodes) if with_servers else {}
    uptime = {}
    if detail and common.at_least(request, 2, 88):
        for n in nodes:
            if n.host not in uptime:
                uptime[n.host] = await _uptime(request, n, cfg)
    now = utcnow()
    items = [_view(request, n, detail=detail, cfg=cfg, now=now, usage=usage,
                   servers=servers.get(n.host), with_servers=with_servers, uptime=uptime)
             for n in nodes]
    body: dict = {"hypervisors": items}
    if links and items and len(items) == min(limit or common.MAX_LIMIT, common.MAX_LIMIT):
        collection = "os-hypervisors/detail" if detail else "os-hypervisors"
        body["hypervisors_links"] = [common.next_link(request, collection,
                                                      str(items[-1]["id"]))]
    return web.json_response(body)


async def index(request: web.Request) -> web.Response:
    return await _list(request, detail=False)


async def detail(request: web.Request) -> web.Response:
    return await _list(request, detail=True)


async def _one(request: web.Request, conn, raw: str):
    not_found = ApiError(404, f"Hypervisor with ID '{raw}' could not be found.")
    if _uuid_ids(request):
        if not is_uuid(raw):
            raise ApiError(400, f"Invalid uuid {raw}")
    elif as_int(raw) is None:
        raise not_found
    nodes = await _nodes(conn, node_id=raw, uuid_ids=_uuid_ids(request))
    if not nodes:
        raise not_found
    return nodes[0]


async def show(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "show", {})
    with_servers = False
    if common.at_least(request, 2, 53):
        reject_unknown(request, {"with_servers"})
        raw = single(request, "with_servers")
        with_servers = as_bool(raw, "with_servers") if raw is not None else False
    cfg = common.cloud(request).config
    async with common.cloud(request).db.read() as conn:
        node = await _one(request, conn, request.match_info["hypervisor_id"])
        usage = await _usage(conn, [node])
        servers = await _servers(conn, [node]) if with_servers else {}
    uptime = {}
    if common.at_least(request, 2, 88):
        uptime[node.host] = await _uptime(request, node, cfg)
    view = _view(request, node, detail=True, cfg=cfg, now=utcnow(), usage=usage,
                 servers=servers.get(node.host), with_servers=with_servers, uptime=uptime)
    return web.json_response({"hypervisor": view})


async def uptime(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "uptime", {})
    cfg = common.cloud(request).config
    async with common.cloud(request).db.read() as conn:
        node = await _one(request, conn, request.match_info["hypervisor_id"])
    value = await _uptime(request, node, cfg)
    if value is None:
        raise ApiError(400, f"Compute service of {node.host} is unavailable at this time.")
    view = _view(request, node, detail=False, cfg=cfg, now=utcnow())
    view["uptime"] = value
    return web.json_response({"hypervisor": view})


async def _by_pattern(request: web.Request, with_servers: bool) -> web.Response:
    common.context(request).authorize(ROOT % ("servers" if with_servers else "search"), {})
    pattern = request.match_info["pattern"]
    cfg = common.cloud(request).config
    async with common.cloud(request).db.read() as conn:
        nodes = await _nodes(conn, pattern=pattern)
        if not nodes:
            raise ApiError(404, f"No hypervisor matching '{pattern}' could be found.")
        servers = await _servers(conn, nodes) if with_servers else {}
    now = utcnow()
    return web.json_response({"hypervisors": [
        _view(request, n, detail=False, cfg=cfg, now=now, servers=servers.get(n.host))
        for n in nodes]})


async def search(request: web.Request) -> web.Response:
    return await _by_pattern(request, with_servers=False)


async def servers(request: web.Request) -> web.Response:
    return await _by_pattern(request, with_servers=True)


async def statistics(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "statistics", {})
    async with common.cloud(request).db.read() as conn:
        nodes = await _nodes(conn)
        usage = await _usage(conn, nodes)
    stats = dict.fromkeys(("count", "vcpus", "memory_mb", "local_gb", "vcpus_used",
                           "memory_mb_used", "local_gb_used", "free_ram_mb",
                           "free_disk_gb", "current_workload", "running_vms",
                           "disk_available_least"), 0)
    for n in nodes:
        u = usage[n.hypervisor_hostname]
        stats["count"] += 1
        stats["vcpus"] += n.vcpus
        stats["memory_mb"] += n.memory_mb
        stats["local_gb"] += n.local_gb
        stats["vcpus_used"] += u["vcpus"]
        stats["memory_mb_used"] += u["memory_mb"]
        stats["local_gb_used"] += u["local_gb"]
        stats["free_ram_mb"] += n.memory_mb - u["memory_mb"]
        stats["free_disk_gb"] += n.local_gb - u["local_gb"]
        stats["disk_available_least"] += n.local_gb - u["local_gb"]
        stats["current_workload"] += u["workload"]
        stats["running_vms"] += u["running"]
    return web.json_response({"hypervisor_statistics": stats})


# Fixed paths before /{hypervisor_id}: aiohttp matches in registration order.
ROUTES = {
    "/os-hypervisors": {"GET": (index, None)},
    "/os-hypervisors/detail": {"GET": (detail, None)},
    "/os-hypervisors/statistics": {"GET": (statistics, None, (2, 87))},
    "/os-hypervisors/{hypervisor_id}": {"GET": (show, None)},
    "/os-hypervisors/{hypervisor_id}/uptime": {"GET": (uptime, None, (2, 87))},
    "/os-hypervisors/{pattern}/search": {"GET": (search, None, (2, 52))},
    "/os-hypervisors/{pattern}/servers": {"GET": (servers, None, (2, 52))},
}

POLICIES = {ROOT % name: ADMIN for name in (
    "list", "list-detail", "statistics", "show", "uptime", "search", "servers")}
