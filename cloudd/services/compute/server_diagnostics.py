"""GET /servers/{id}/diagnostics (admin only).

Before 2.48 the body is driver-specific; from 2.48 it is Nova's common
Diagnostics model. Neither cloudd driver exposes live counters through the
agent protocol, so the figures are what the controller knows of the guest:
its last reported power state, the flavor's vCPUs, memory and disks, the
uptime since it was launched, and null counters. ``driver`` is "libvirt":
both cloudd drivers model a libvirt domain (as Nova's fake driver also
reports). A server without a host is Nova's 409 "not ready".
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common, instance_store, servers
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError

RULE = "os_compute_api:os-server-diagnostics"
_STATES = {0: "pending", 1: "running", 3: "paused", 4: "shutdown", 6: "crashed",
           7: "suspended"}


def _disks(flavor: dict) -> int:
    return 1 + (1 if int(flavor.get("ephemeral_gb") or 0) else 0) + \
        (1 if int(flavor.get("swap") or 0) else 0)


def _v248(row, flavor: dict, hypervisor: str | None) -> dict:
    running = row.power_state == 1
    uptime = int((utcnow() - row.launched_at).total_seconds()) \
        if running and row.launched_at else None
    vcpus = int(flavor.get("vcpus") or 0)
    disks = _disks(flavor)
    return {
        "state": _STATES.get(row.power_state, "pending"), "driver": "libvirt",
        "hypervisor": hypervisor, "hypervisor_os": None, "uptime": uptime,
        "config_drive": bool(row.config_drive), "num_cpus": vcpus, "num_nics": 0,
        "num_disks": disks,
        "memory_details": {"maximum": int(flavor.get("memory_mb") or 0), "used": None},
        "cpu_details": [{"id": i, "time": None, "utilisation": None} for i in range(vcpus)],
        "nic_details": [],
        "disk_details": [{"read_bytes": None, "read_requests": None, "write_bytes": None,
                          "write_requests": None, "errors_count": None}
                         for _ in range(disks)],
    }


def _legacy(row, flavor: dict) -> dict:
    """The libvirt driver's pre-2.48 keys (memory in KiB)."""
    body = {f"cpu{i}_time": 0 for i in range(int(flavor.get("vcpus") or 0))}
    body["memory"] = int(flavor.get("memory_mb") or 0) * 1024
    for disk in ("vda", "vdb", "vdc")[:_disks(flavor)]:
        body.update({f"{disk}_read": 0, f"{disk}_read_req": 0, f"{disk}_write": 0,
                     f"{disk}_write_req": 0, f"{disk}_errors": -1})
    return body


async def index(request: web.Request) -> web.Response:
    uuid = request.match_info["server_id"]
    node = t.compute_node
    async with common.cloud(request).db.read() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        common.context(request).authorize(RULE, {"project_id": row.project_id})
        if not row.host:
            raise ApiError(409, f"Instance {uuid} is not ready")
        hv = (await conn.execute(select(node.c.hypervisor_type)
                                 .where(node.c.hypervisor_hostname == row.node))).first()
    flavor = instance_store.flavor_of(row)
    if common.at_least(request, 2, 48):
        body = _v248(row, flavor, hv.hypervisor_type.lower() if hv else None)
    else:
        body = _legacy(row, flavor)
    return web.json_response(body)


ROUTES = {"/servers/{server_id}/diagnostics": {"GET": (index, None)}}

POLICIES = {RULE: ADMIN}
