"""os-services: list, enable/disable, force down and delete services (admin only).

Ids are the integer ``num`` before 2.53 and the uuid from 2.53; forced_down
shows from 2.11. Before 2.53 updates are the legacy actions
PUT /os-services/{enable,disable,disable-log-reason,force-down} naming the
service by host and binary; from 2.53 PUT /os-services/{uuid} takes
{"status", "disabled_reason", "forced_down"}. Only nova-compute services can
be updated. Deleting a nova-compute service with instances (or in-progress
migrations) is 409; otherwise its host leaves its aggregates, and its compute
nodes and their placement providers go with it.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, select, update

from cloudd.db import tables as t
from cloudd.services.compute import aggregate_store, common, hosts, service_store
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.query_checks import (
    as_bool,
    as_int,
    is_uuid,
    reject_unknown,
)
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ROOT = "os_compute_api:os-services:%s"
SVC = t.compute_service
FINISHED_MIGRATION = ("confirmed", "reverted", "error", "failed", "completed", "cancelled",
                      "done")


def _view(request: web.Request, row, zone: str, cfg, now) -> dict:
    body = {
        "binary": row.binary_name,
        "host": row.host,
        "id": row.id if common.at_least(request, 2, 53) else row.num,
        "zone": zone,
        "status": "disabled" if row.disabled else "enabled",
        "state": "up" if service_store.is_up(row, cfg, now) else "down",
        "updated_at": common.isotime_micro(service_store.updated_at(row)),
        "disabled_reason": row.disabled_reason,
    }
    if common.at_least(request, 2, 11):
        body["forced_down"] = bool(row.forced_down)
    return body


async def index(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "list", {})
    if common.at_least(request, 2, 75):
        reject_unknown(request, {"host", "binary"})
    cloud = common.cloud(request)
    async with cloud.db.read() as conn:
        services = await service_store.with_zones(
            conn, cloud.config, host=request.query.get("host") or None,
            binary=request.query.get("binary") or None)
    now = utcnow()
    return web.json_response({"services": [
        _view(request, row, zone, cloud.config, now) for row, zone in services]})


def _not_compute(binary: str) -> ApiError:
    return ApiError(400, f"Updating a {binary} service is not supported. Only nova-compute "
                         "services can be updated.")


def _check_body(body: dict, allowed: set[str], required: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise ApiError(400, f"Additional properties are not allowed ('{extra[0]}' was "
                            "unexpected)")
    missing = sorted(required - set(body))
    if missing:
        raise ApiError(400, f"'{missing[0]}' is a required property")
    for key in ("host", "binary", "disabled_reason"):
        if key in body and (not isinstance(body[key], str) or not 1 <= len(body[key]) <= 255):
            raise ApiError(400, f"Invalid input for field/attribute {key}. Value: "
                                f"{body[key]}. It must be a string of 1 to 255 characters.")
    if "status" in body and body["status"] not in ("enabled", "disabled"):
        raise ApiError(400, f"Invalid input for field/attribute status. Value: "
                            f"{body['status']}. {body['status']!r} is not one of "
                            "['enabled', 'disabled']")


async def _no_done_evacuations(conn, host: str) -> None:
    mig = t.migration
    found = (await conn.execute(select(mig.c.id).where(
        mig.c.source_compute == host, mig.c.status == "done",
        mig.c.migration_type == "evacuation"))).first()
    if found:
        raise ApiError(400, f"Unable to force up host {host} as `done` evacuation migration "
                            "records remain associated with the host. Ensure the compute "
                            "service has been restarted, allowing these records to move to "
                            "`completed` before retrying this request.")


async def update_service(request: web.Request) -> web.Response:
    if common.at_least(request, 2, 53):
        return await _update_v253(request)
    return await _update_legacy(request)


async def _update_v253(request: web.Request) -> web.Response:
    service_id = request.match_info["service_id"]
    if not is_uuid(service_id):
        raise ApiError(400, f"Invalid uuid {service_id}")
    common.context(request).authorize(ROOT % "update", {})
    body = await read_json(request)
    _check_body(body, {"status", "disabled_reason", "forced_down"}, set())
    forced = as_bool(body["forced_down"], "forced_down") if "forced_down" in body else None
    cloud = common.cloud(request)
    async with cloud.db.write() as conn:
        row = (await conn.execute(select(SVC).where(SVC.c.id == service_id))).first()
        if row is None:
            raise ApiError(404, f"Service {service_id} could not be found.")
        if row.binary_name != hosts.COMPUTE_BINARY:
            raise _not_compute(row.binary_name)
        values: dict = {}
        if body.get("status") == "enabled":
            if body.get("disabled_reason"):
                raise ApiError(400, "Specifying 'disabled_reason' with status 'enabled' "
                                    "is invalid.")
            values.update(disabled=False, disabled_reason=None)
        elif body.get("status") == "disabled":
            values.update(disabled=True, disabled_reason=body.get("disabled_reason"))
        if forced is not None:
            values["forced_down"] = forced
            if not forced:
                await _no_done_evacuations(conn, row.host)
        if not values:
            raise ApiError(400, "No updates were requested. Fields 'status' or "
                                "'forced_down' should be specified.")
        await conn.execute(update(SVC).where(SVC.c.id == row.id)
                           .values(updated_at=utcnow(), **values))
        row = (await conn.execute(select(SVC).where(SVC.c.id == service_id))).first()
        zone_map = await aggregate_store.host_zone_map(conn)
    zone = service_store.zone_of(row, zone_map, cloud.config)
    view = _view(request, row, zone, cloud.config, utcnow())
    view["forced_down"] = bool(row.forced_down)
    return web.json_response({"service": view})


async def _update_legacy(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "update", {})
    action = request.match_info["service_id"]
    actions = {"enable", "disable", "disable-log-reason"}
    if common.at_least(request, 2, 11):
        actions.add("force-down")
    body = await read_json(request)
    allowed = {"host", "binary", "disabled_reason"}
    if common.at_least(request, 2, 11):
        allowed.add("forced_down")
    _check_body(body, allowed, {"host", "binary"})
    if action not in actions:
        raise ApiError(404, "Unknown action")
    host, binary = body["host"], body["binary"]
    if action == "force-down":
        if "forced_down" not in body:
            raise ApiError(400, "Missing forced_down field")
        forced = as_bool(body["forced_down"], "forced_down")
        values: dict = {"forced_down": forced}
        reply: dict = {"host": host, "binary": binary, "forced_down": forced}
    elif action == "enable":
        values = {"disabled": False, "disabled_reason": None}
        reply = {"host": host, "binary": binary, "status": "enabled"}
    else:
        reason = None
        if action == "disable-log-reason":
            if "disabled_reason" not in body:
                raise ApiError(400, "Missing disabled reason field")
            reason = body["disabled_reason"]
        values = {"disabled": True, "disabled_reason": reason}
        reply = {"host": host, "binary": binary, "status": "disabled"}
        if reason:
            reply["disabled_reason"] = reason
    if binary != hosts.COMPUTE_BINARY:
        raise _not_compute(binary)
    async with common.cloud(request).db.write() as conn:
        if action == "force-down" and not values["forced_down"]:
            await _no_done_evacuations(conn, host)
        result = await conn.execute(update(SVC).where(
            SVC.c.host == host, SVC.c.binary_name == binary)
            .values(updated_at=utcnow(), **values))
        if result.rowcount == 0:
            raise ApiError(404, f"Could not find binary {binary} on host {host}.")
    return web.json_response({"service": reply})


async def delete_service(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "delete", {})
    raw = request.match_info["service_id"]
    if common.at_least(request, 2, 53):
        if not is_uuid(raw):
            raise ApiError(400, f"Invalid uuid {raw}")
        where = SVC.c.id == raw
    else:
        num = as_int(raw)
        if num is None:
            raise ApiError(400, f"Invalid input received: id must be an integer. Value: {raw}")
        where = SVC.c.num == num
    async with common.cloud(request).db.write() as conn:
        row = (await conn.execute(select(SVC).where(where))).first()
        if row is None:
            raise ApiError(404, f"Service {raw} not found.")
        if row.binary_name == hosts.COMPUTE_BINARY:
            await _delete_compute_host(conn, row)
        await conn.execute(delete(SVC).where(SVC.c.id == row.id))
    return web.Response(status=204)


async def _delete_compute_host(conn, row) -> None:
    if await aggregate_store.count_instances_on_hosts(conn, [row.host]):
        raise ApiError(409, "Unable to delete compute service that is hosting instances. "
                            "Migrate or delete the instances first.")
    node = t.compute_node
    nodes = (await conn.execute(select(node).where(node.c.host == row.host))).all()
    mig = t.migration
    for cn in nodes:
        busy = (await conn.execute(select(mig.c.id).where(
            mig.c.status.not_in(FINISHED_MIGRATION),
            ((mig.c.source_compute == cn.host) & (mig.c.source_node == cn.hypervisor_hostname))
            | ((mig.c.dest_compute == cn.host) & (mig.c.dest_node == cn.hypervisor_hostname))
        ))).first()
        if busy:
            raise ApiError(409, "Unable to delete compute service that has in-progress "
                                "migrations. Complete the migrations or delete the "
                                "instances first.")
    for agg in await aggregate_store.host_aggregates(conn, row.host):
        full = await aggregate_store.get(conn, agg["id"])
        await aggregate_store.remove_host(conn, full, row.host)
    for cn in nodes:
        await _delete_provider(conn, cn.id)
    await conn.execute(delete(node).where(node.c.service_id == row.id))


async def _delete_provider(conn, rp_uuid: str) -> None:
    """Drop the node's resource provider, as Nova's delete_resource_provider
    (cascade) does; one still holding allocations or children is left."""
    rp = t.resource_provider
    if (await conn.execute(select(rp.c.uuid).where(rp.c.uuid == rp_uuid))).first() is None:
        return
    if (await conn.execute(select(t.allocation.c.resource_provider_uuid).where(
            t.allocation.c.resource_provider_uuid == rp_uuid).limit(1))).first():
        return
    if (await conn.execute(select(rp.c.uuid).where(
            rp.c.parent_provider_uuid == rp_uuid).limit(1))).first():
        return
    for table in (t.inventory, t.resource_provider_aggregate, t.resource_provider_trait):
        await conn.execute(delete(table).where(table.c.resource_provider_uuid == rp_uuid))
    await conn.execute(delete(rp).where(rp.c.uuid == rp_uuid))


ROUTES = {
    "/os-services": {"GET": (index, None)},
    "/os-services/{service_id}": {"PUT": (update_service, None),
                                  "DELETE": (delete_service, None)},
}

POLICIES = {ROOT % name: ADMIN for name in ("list", "update", "delete")}
