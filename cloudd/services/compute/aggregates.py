"""os-aggregates: host aggregates and their availability zones (admin only).

Bodies as Nova's: id (the integer num), uuid (2.41+), name,
availability_zone (mirrored in metadata), hosts, metadata, created_at,
updated_at, deleted, deleted_at. Create answers 200 without hosts and
metadata. A host belongs to at most one zone: adding it to an aggregate
whose zone differs from its other aggregates' is 409, and so is a move that
would change the zone of a host that has instances. Membership is mirrored
into placement (the host's compute node providers join the aggregate uuid).
"""

from __future__ import annotations

import re

from aiohttp import web

from cloudd.services.compute import aggregate_store as store
from cloudd.services.compute import common, service_store
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.query_checks import as_int, printable
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ROOT = "os_compute_api:os-aggregates:%s"
_HOST = re.compile(r"^[a-zA-Z0-9-._]{1,255}$")
_META_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")


def _view(request: web.Request, agg: store.Aggregate, *, full: bool = True) -> dict:
    body = {
        "availability_zone": agg.zone,
        "created_at": common.isotime_micro(agg.created_at),
        "deleted": False,
        "deleted_at": None,
        "id": agg.num,
        "name": agg.name,
        "updated_at": common.isotime_micro(agg.updated_at),
    }
    if full:
        body["hosts"] = list(agg.hosts)
        body["metadata"] = dict(agg.metadata)
    if common.at_least(request, 2, 41):
        body["uuid"] = agg.id
    return body


def _respond(request: web.Request, agg: store.Aggregate, *, full: bool = True):
    return web.json_response({"aggregate": _view(request, agg, full=full)})


def _num(request: web.Request) -> int:
    raw = request.match_info["aggregate_id"]
    num = as_int(raw)
    if num is None:
        raise ApiError(400, f"Invalid input received: id must be an integer. Value: {raw}")
    return num


def _check_name(value, field: str = "name") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise ApiError(400, f"Invalid input for field/attribute {field}. Value: {value}. "
                            "It must be a string of 1 to 255 characters.")
    if not printable(value):
        raise ApiError(400, f"Invalid input for field/attribute {field}. Value: {value}. "
                            "printable characters. Can not start or end with whitespace.")
    return value


def _check_zone(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 255 \
            or not printable(value, allow_colon=False):
        raise ApiError(400, f"Invalid input for field/attribute availability_zone. Value: "
                            f"{value}. printable characters except :. Can not start or end "
                            "with whitespace.")
    return value


def _section(body: dict, key: str, allowed: set[str], required: set[str]) -> dict:
    if set(body) != {key} or not isinstance(body[key], dict):
        raise ApiError(400, f"Invalid input for field/attribute {key}: a JSON object "
                            f"{{\"{key}\": {{...}}}} is expected.")
    inner = body[key]
    extra = sorted(set(inner) - allowed)
    if extra:
        raise ApiError(400, f"Additional properties are not allowed ('{extra[0]}' was "
                            "unexpected)")
    missing = sorted(required - set(inner))
    if missing:
        raise ApiError(400, f"'{missing[0]}' is a required property")
    return inner


async def _zone_change_checks(conn, agg: store.Aggregate, zone, action: str,
                              host_list: list[str] | None = None,
                              check_instances: bool = False) -> None:
    """Nova's is_safe_to_update_az: no empty zone, no host in two zones, and
    (for updates) no zone change under instances."""
    if not zone:
        raise ApiError(400, f"Cannot {action} aggregate {agg.num}. Reason: Aggregate "
                            f"{agg.name} does not support empty named availability zone.")
    members = host_list if host_list is not None else agg.hosts
    conflicts = [z for z in await store.zones_of_other_aggregates(conn, agg, members)
                 if z != zone]
    status = 409 if action == "add host to" else 400
    if conflicts:
        raise ApiError(status, f"Cannot {action} aggregate {agg.num}. Reason: One or more "
                               f"hosts already in availability zone(s) {conflicts}.")
    if check_instances and agg.zone != zone \
            and await store.count_instances_on_hosts(conn, members):
        raise ApiError(status, f"Cannot {action} aggregate {agg.num}. Reason: One or more "
                               "hosts contain instances in this zone.")


async def index(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "index", {})
    async with common.cloud(request).db.read() as conn:
        aggs = await store.all_aggregates(conn)
    return web.json_response({"aggregates": [_view(request, a) for a in aggs]})


async def create(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "create", {})
    body = _section(await read_json(request), "aggregate",
                    {"name", "availability_zone"}, {"name"})
    name = _check_name(body["name"])
    zone = _check_zone(body.get("availability_zone"))
    async with common.cloud(request).db.write() as conn:
        agg = await store.create(conn, name, zone)
    return _respond(request, agg, full=False)


async def show(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "show", {})
    num = _num(request)
    async with common.cloud(request).db.read() as conn:
        agg = await store.get(conn, num)
    return _respond(request, agg)


async def update(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "update", {})
    body = _section(await read_json(request), "aggregate", {"name", "availability_zone"},
                    set())
    if not body:
        raise ApiError(400, "Invalid input for field/attribute aggregate. Value: {}. "
                            "{} should be non-empty")
    name = _check_name(body["name"].strip() if isinstance(body.get("name"), str)
                       else body.get("name")) if "name" in body else None
    num = _num(request)
    async with common.cloud(request).db.write() as conn:
        agg = await store.get(conn, num)
        if name is not None:
            await store.rename(conn, agg, name)
        if "availability_zone" in body:
            zone = _check_zone(body["availability_zone"])
            await _zone_change_checks(conn, agg, zone, "update", check_instances=True)
            await store.set_metadata(conn, agg, {store.AZ_KEY: zone})
        agg = await store.get(conn, num)
    return _respond(request, agg)


async def delete(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "delete", {})
    num = _num(request)
    async with common.cloud(request).db.write() as conn:
        agg = await store.get(conn, num)
        if agg.hosts:
            raise ApiError(400, f"Cannot remove host from aggregate {num}. Reason: Host "
                                "aggregate is not empty.")
        await store.destroy(conn, agg)
    return web.Response(status=200)


async def action(request: web.Request) -> web.Response:
    body = await read_json(request)
    handlers = {"add_host": _add_host, "remove_host": _remove_host,
                "set_metadata": _set_metadata}
    names = [k for k in body if k in handlers]
    if len(names) != 1:
        raise ApiError(400, "There is no such action: " + ", ".join(sorted(body)))
    return await handlers[names[0]](request, body)


def _host_of(request, body: dict, key: str) -> str:
    common.context(request).authorize(ROOT % key, {})
    host = _section(body, key, {"host"}, {"host"})["host"]
    if not isinstance(host, str) or not _HOST.match(host):
        raise ApiError(400, f"Invalid input for field/attribute host. Value: {host}. "
                            "Does not match pattern '^[a-zA-Z0-9-._]*$'")
    return host


async def _add_host(request: web.Request, body: dict) -> web.Response:
    host = _host_of(request, body, "add_host")
    num = _num(request)
    async with common.cloud(request).db.write() as conn:
        if await service_store.compute_service_of_host(conn, host) is None:
            raise ApiError(404, f"Compute host {host} could not be found.")
        agg = await store.get(conn, num)
        if agg.zone:
            await _zone_change_checks(conn, agg, agg.zone, "add host to", host_list=[host])
            await _no_instances_move(conn, agg, host, adding=True)
        await store.add_host(conn, agg, host)
        agg = await store.get(conn, num)
    return _respond(request, agg)


async def _remove_host(request: web.Request, body: dict) -> web.Response:
    host = _host_of(request, body, "remove_host")
    num = _num(request)
    async with common.cloud(request).db.write() as conn:
        missing = ApiError(404, f"Cannot remove host {host} in aggregate {num}")
        if await service_store.compute_service_of_host(conn, host) is None:
            raise missing
        try:
            agg = await store.get(conn, num)
        except ApiError:
            raise missing from None
        if host not in agg.hosts:
            raise missing
        await _no_instances_move(conn, agg, host, adding=False)
        await store.remove_host(conn, agg, host)
        agg = await store.get(conn, num)
    return _respond(request, agg)


async def _no_instances_move(conn, agg: store.Aggregate, host: str, *, adding: bool) -> None:
    """Nova refuses a membership change that would move a host's instances to
    another zone."""
    if not agg.zone:
        return
    count = await store.count_instances_on_hosts(conn, [host])
    if not count:
        return
    zones = {a["metadata"][store.AZ_KEY] for a in await store.host_aggregates(conn, host)
             if store.AZ_KEY in a["metadata"] and (adding or a["id"] != agg.num)}
    before, after = (next(iter(zones), None), agg.zone) if adding \
        else (agg.zone, next(iter(zones), None))
    if before != after:
        verb = "added to" if adding else "removed from"
        raise ApiError(409, f"Cannot {'add host to' if adding else 'remove host from'} "
                            f"aggregate {agg.num}. Reason: The host cannot be {verb} the "
                            f"aggregate as the availability zone of the host would change "
                            f"from '{before}' to '{after}' but the host already has {count} "
                            "instance(s). Changing the AZ of an existing instance is not "
                            "supported by this action. Move the instances away from this "
                            "host then try again. If you need to move the instances between "
                            "AZs then you can use shelve_offload and unshelve to achieve "
                            "this.")


async def _set_metadata(request: web.Request, body: dict) -> web.Response:
    common.context(request).authorize(ROOT % "set_metadata", {})
    metadata = _section(body, "set_metadata", {"metadata"}, {"metadata"})["metadata"]
    if not isinstance(metadata, dict):
        raise ApiError(400, "Invalid input for field/attribute metadata. "
                            f"Value: {metadata}. {metadata!r} is not of type 'object'")
    for key, value in metadata.items():
        if not _META_KEY.match(key):
            raise ApiError(400, "Invalid input for field/attribute metadata. Value: "
                                f"{metadata}. Additional properties are not allowed "
                                f"('{key}' was unexpected)")
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {value}. "
                                "It must be a string of at most 255 characters or null.")
    num = _num(request)
    async with common.cloud(request).db.write() as conn:
        agg = await store.get(conn, num)
        if store.AZ_KEY in metadata:
            zone = metadata[store.AZ_KEY]
            if zone is not None:
                _check_zone(zone)
            await _zone_change_checks(conn, agg, zone, "update metadata of",
                                      check_instances=True)
        await store.set_metadata(conn, agg, metadata)
        agg = await store.get(conn, num)
    return _respond(request, agg)


ROUTES = {
    "/os-aggregates": {"GET": (index, None), "POST": (create, None)},
    "/os-aggregates/{aggregate_id}": {"GET": (show, None), "PUT": (update, None),
                                      "DELETE": (delete, None)},
    "/os-aggregates/{aggregate_id}/action": {"POST": (action, None)},
}

POLICIES = {ROOT % name: ADMIN for name in (
    "index", "create", "show", "update", "delete", "add_host", "remove_host",
    "set_metadata")}
