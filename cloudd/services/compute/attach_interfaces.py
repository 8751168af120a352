"""POST /servers/{id}/os-interface (attach) and DELETE
/servers/{id}/os-interface/{port_id} (detach): Nova's attach_interfaces API.

Attach checks Nova's guards (lock, vm_state active/paused/stopped, no
task), then in one transaction allocates the port on the instance's host
(``network.allocate_port_for_instance``: Nova's 400/403/404/409 answers,
nothing written when it refuses), opens the ``attach_interface`` task and
records the instance action; the conductor hot-plugs it
(interface_flow.py). As Nova's attach is an RPC call, the request waits
for the task (up to ``ATTACH_WAIT`` seconds) and answers the attachment
(200) or, when the agent failed, 500 "Failed to attach network adapter
device to UUID" (the port given back). Detach is Nova's cast: 202 once the
task is written; a port the instance does not have is 404 "Port PORT is not
attached".

The attach ``tag`` (2.49+) is kept in the instance's request_spec
(``port_tags``) and shown from 2.70.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common, instance_store, servers, states, tasks
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.server_actions import cas, invalid_state
from cloudd.services.compute.server_ips import INTERFACES, attachment, with_tag
from cloudd.services.compute.server_schemas import IP_ADDRESS, TAG, validate
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ATTACH_WAIT = 300.0         # seconds the attach request waits for the agent
ALLOWED = (states.ACTIVE, states.PAUSED, states.STOPPED)
_UUID = {"type": "string", "format": "uuid"}

CREATE = {
    "type": "object",
    "properties": {"interfaceAttachment": {
        "type": "object",
        "properties": {
            "net_id": _UUID, "port_id": _UUID,
            "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                "type": "object", "properties": {"ip_address": IP_ADDRESS},
                "required": ["ip_address"], "additionalProperties": False}},
        },
        "additionalProperties": False}},
    "additionalProperties": False,
}
CREATE_249 = json.loads(json.dumps(CREATE))
CREATE_249["properties"]["interfaceAttachment"]["properties"]["tag"] = TAG


def _guard(row, action: str, is_admin: bool) -> None:
    if row.locked and not is_admin:
        raise ApiError(409, f"Instance {row.uuid} is locked")
    if row.vm_state not in ALLOWED:
        raise invalid_state(action, row.uuid, "vm_state", row.vm_state)
    if row.task_state is not None:
        raise invalid_state(action, row.uuid, "task_state", row.task_state)
    if not row.host:
        raise ApiError(409, f"Instance {row.uuid} is not ready")


def _network(request):
    network = common.compute(request).network
    if network is None or not hasattr(network, "allocate_port_for_instance"):
        raise ApiError(501, "Network driver does not support this function.")
    return network


async def create(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    uuid = request.match_info["server_id"]
    body = await read_json(request, empty_ok=True)
    validate(body, CREATE_249 if common.mv(request) >= (2, 49) else CREATE)
    att = body.get("interfaceAttachment") or {}
    net_id, port_id, tag = att.get("net_id"), att.get("port_id"), att.get("tag")
    req_ip = (att.get("fixed_ips") or [{}])[0].get("ip_address")
    if net_id and port_id:
        raise ApiError(400, "Must not input both network_id and port_id")
    if req_ip and not net_id:
        raise ApiError(400, "Must input network_id when request IP address")
    network = _network(request)
    async with cloud.db.write() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        ctx.authorize(INTERFACES % "create", {"project_id": row.project_id})
        _guard(row, "attach_interface", ctx.can("context_is_admin", {}))
        spec = instance_store.spec_of(row)
        vif = await network.allocate_port_for_instance(
            conn, instance_uuid=uuid, project_id=row.project_id, host=row.host,
            zone=row.availability_zone or cloud.config.compute.default_availability_zone,
            network_id=net_id, port_id=port_id, fixed_ip=req_ip,
            security_groups=list(spec.get("security_groups") or ["default"]))
        values = {}
        if tag:
            spec.setdefault("port_tags", {})[vif["port_id"]] = tag
            values["request_spec"] = json.dumps(spec)
        await cas(conn, row, values, "attach_interface")
        task_id = await tasks.open_task(
            conn, instance_uuid=uuid, kind="attach_interface",
            payload={"port_id": vif["port_id"], "vif": vif}, action="attach_interface",
            request_id=ctx.request_id, project_id=ctx.project_id, user_id=ctx.user_id,
            conflict_message=f"Cannot 'attach_interface' instance {uuid} while it is in "
                             f"task_state {row.task_state}")
    common.compute(request).wake(task_id)
    state = await wait_for_task(cloud, task_id, ATTACH_WAIT)
    if state in ("failed", "cancelled"):
        raise ApiError(500, f"Failed to attach network adapter device to {uuid}")
    async with cloud.db.read() as conn:
        vifs = (await network.vifs_for_instances(conn, [uuid])).get(uuid) or []
        row = await instance_store.get(conn, uuid)
    found = next((v for v in vifs if v.get("port_id") == vif["port_id"]), vif)
    return web.json_response({"interfaceAttachment": attachment(
        with_tag(found, row), common.mv(request) >= (2, 70))})


async def wait_for_task(cloud, task_id: str, timeout: float) -> str | None:
    """The task's state once it is over (done, failed, cancelled), or its
    state when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        async with cloud.db.read() as conn:
            state = (await conn.execute(select(t.task.c.state).where(
                t.task.c.id == task_id))).scalar()
        if state not in tasks.OPEN_STATES or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.5)


async def delete(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    uuid = request.match_info["server_id"]
    port_id = request.match_info["port_id"]
    network = _network(request)
    async with cloud.db.write() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        ctx.authorize(INTERFACES % "delete", {"project_id": row.project_id})
        _guard(row, "detach_interface", ctx.can("context_is_admin", {}))
        vifs = (await network.vifs_for_instances(conn, [uuid])).get(uuid) or []
        vif = next((v for v in vifs if v.get("port_id") == port_id), None)
        if vif is None:
            raise ApiError(404, f"Port {port_id} is not attached")
        await cas(conn, row, {}, "detach_interface")
        task_id = await tasks.open_task(
            conn, instance_uuid=uuid, kind="detach_interface",
            payload={"port_id": port_id, "vif": vif}, action="detach_interface",
            request_id=ctx.request_id, project_id=ctx.project_id, user_id=ctx.user_id,
            conflict_message=f"Cannot 'detach_interface' instance {uuid} while it is in "
                             f"task_state {row.task_state}")
    common.compute(request).wake(task_id)
    return web.Response(status=202)


ROUTES = {
    "/servers/{server_id}/os-interface": {"POST": (create, None)},
    "/servers/{server_id}/os-interface/{port_id}": {"DELETE": (delete, None)},
}

POLICIES = {INTERFACES % "create": MEMBER, INTERFACES % "delete": MEMBER}
