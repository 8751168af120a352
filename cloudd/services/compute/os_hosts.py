"""os-hosts (deprecated, 2.1-2.42; admin only): the hosts of the enabled
services and one compute host's resources.

GET /os-hosts lists every enabled service's host as
{host_name, service (the RPC topic: compute, scheduler, conductor), zone},
``?zone=`` filtering by zone. GET /os-hosts/{host} shows a compute host's
totals, its used-now figures (the hypervisor's usage), the sum of its
instances' flavors and that sum per project (404 for a host with no compute
node). PUT (status / maintenance_mode) and the startup / shutdown / reboot
power actions reach the driver in Nova; neither cloudd driver implements
them (nor does Nova's libvirt driver), so on a known compute host they are
Nova's 501, on an unknown host 404.
"""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common, service_store
from cloudd.services.compute.policies import ADMIN
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ROOT = "os_compute_api:os-hosts:%s"
MAX = (2, 42)
_TOPICS = {"nova-compute": "compute", "nova-scheduler": "scheduler",
           "nova-conductor": "conductor"}
_ENABLE = ("enable", "disable", "Enable", "Disable", "ENABLE", "DISABLE")
NOT_SUPPORTED = "The requested functionality is not supported."


def _topic(binary: str) -> str:
    return _TOPICS.get(binary, binary.removeprefix("nova-"))


async def index(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "list", {})
    zone = request.query.get("zone")
    cloud = common.cloud(request)
    async with cloud.db.read() as conn:
        services = await service_store.with_zones(conn, cloud.config)
    out = [{"host_name": row.host, "service": _topic(row.binary_name), "zone": svc_zone}
           for row, svc_zone in services
           if not row.disabled and (not zone or svc_zone == zone)]
    return web.json_response({"hosts": out})


def _resource(host: str, project: str, cpu: int, memory_mb: int, disk_gb: int) -> dict:
    return {"resource": {"host": host, "project": project, "cpu": cpu,
                         "memory_mb": memory_mb, "disk_gb": disk_gb}}


def _flavor(raw) -> dict:
    try:
        value = json.loads(raw) if isinstance(raw, str) else (raw or {})
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _compute_node(conn, host: str):
    node = t.compute_node
    row = (await conn.execute(select(node).where(node.c.host == host)
                              .order_by(node.c.num).limit(1))).first()
    if row is None:
        raise ApiError(404, f"Compute host {host} could not be found.")
    return row


async def show(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "show", {})
    host = request.match_info["host_name"]
    inst = t.instance
    async with common.cloud(request).db.read() as conn:
        node = await _compute_node(conn, host)
        rows = (await conn.execute(select(inst.c.project_id, inst.c.flavor, inst.c.node)
                                   .where(inst.c.host == host, inst.c.deleted.is_(False))
                                   .order_by(inst.c.created_at, inst.c.uuid))).all()
    per_project: dict[str, list[int]] = {}
    total = [0, 0, 0]
    used_now = [0, 0, 0]
    for r in rows:
        f = _flavor(r.flavor)
        sizes = [int(f.get("vcpus") or 0), int(f.get("memory_mb") or 0),
                 int(f.get("root_gb") or 0) + int(f.get("ephemeral_gb") or 0)]
        acc = per_project.setdefault(r.project_id, [0, 0, 0])
        for i, v in enumerate(sizes):
            acc[i] += v
            total[i] += v
            if r.node == node.hypervisor_hostname:
                used_now[i] += v
    resources = [_resource(host, "(total)", node.vcpus, node.memory_mb, node.local_gb),
                 _resource(host, "(used_now)", *used_now),
                 _resource(host, "(used_max)", *total)]
    resources += [_resource(host, project, *sizes) for project, sizes in per_project.items()]
    return web.json_response({"host": resources})


async def _known_compute_host(request: web.Request, host: str) -> None:
    async with common.cloud(request).db.read() as conn:
        svc = await service_store.compute_service_of_host(conn, host)
    if svc is None:
        raise ApiError(404, f"Host '{host}' is not mapped to any cell")


def _check_update(body) -> None:
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid input for field/attribute body. "
                            f"Value: {body}. {body!r} is not of type 'object'")
    extra = sorted(set(body) - {"status", "maintenance_mode"})
    if extra:
        raise ApiError(400, "Invalid input for field/attribute body. Value: "
                            f"{body}. Additional properties are not allowed "
                            f"('{extra[0]}' was unexpected)")
    for key in ("status", "maintenance_mode"):
        if key in body and body[key] not in _ENABLE:
            raise ApiError(400, f"Invalid input for field/attribute {key}. Value: "
                                f"{body[key]}. {body[key]!r} is not one of "
                                f"{list(_ENABLE)}")
    if not ({"status", "maintenance_mode"} & set(body)):
        raise ApiError(400, f"Invalid input for field/attribute body. Value: {body}. "
                            f"{body} is not valid under any of the given schemas")


async def update(request: web.Request) -> web.Response:
    _check_update(await read_json(request))
    common.context(request).authorize(ROOT % "update", {})
    await _known_compute_host(request, request.match_info["host_name"])
    raise ApiError(501, NOT_SUPPORTED)


def _power_action(rule: str):
    async def handler(request: web.Request) -> web.Response:
        common.context(request).authorize(ROOT % rule, {})
        await _known_compute_host(request, request.match_info["host_name"])
        raise ApiError(501, NOT_SUPPORTED)
    return handler


ROUTES = {
    "/os-hosts": {"GET": (index, None, MAX)},
    "/os-hosts/{host_name}": {"GET": (show, None, MAX), "PUT": (update, None, MAX)},
    "/os-hosts/{host_name}/startup": {"GET": (_power_action("start"), None, MAX)},
    "/os-hosts/{host_name}/shutdown": {"GET": (_power_action("shutdown"), None, MAX)},
    "/os-hosts/{host_name}/reboot": {"GET": (_power_action("reboot"), None, MAX)},
}

POLICIES = {ROOT % name: ADMIN
            for name in ("list", "show", "update", "reboot", "shutdown", "start")}
