"""POST /os-server-external-events: events from other services (Neutron's
network-vif-plugged, Cinder's volume-extended, ...) about servers.

Validated and answered per event as Nova does: an unknown server is code 404,
a server without a host 422, an event that needs a tag and has none 400 (any
of these makes the whole answer 207), otherwise 200 "completed". cloudd has
no service that waits on these events, so accepted events change nothing.
"""

from __future__ import annotations

import copy

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import common
from cloudd.services.compute.query_checks import is_uuid
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

RULE = "os_compute_api:os-server-external-events:create"
_NAMES = [((2, 1), "network-changed"), ((2, 1), "network-vif-plugged"),
          ((2, 1), "network-vif-unplugged"), ((2, 1), "network-vif-deleted"),
          ((2, 51), "volume-extended"), ((2, 76), "power-update"),
          ((2, 82), "accelerator-request-bound"), ((2, 93), "volume-reimaged")]
_STATUSES = ["failed", "completed", "in-progress"]
TAG_REQUIRED = ("volume-extended", "power-update", "accelerator-request-bound")


def _bad(field: str, value, why: str) -> ApiError:
    return ApiError(400, f"Invalid input for field/attribute {field}. Value: {value}. {why}")


def _validate(body, names: list[str]) -> list[dict]:
    if not isinstance(body, dict) or "events" not in body:
        raise ApiError(400, "Invalid input for field/attribute body. "
                            "'events' is a required property")
    extra = sorted(set(body) - {"events"})
    if extra:
        raise _bad("body", body, f"Additional properties are not allowed ('{extra[0]}' "
                                 "was unexpected)")
    events = body["events"]
    if not isinstance(events, list) or not events:
        raise _bad("events", events, "[] should be non-empty" if events == []
                   else f"{events!r} is not of type 'array'")
    for ev in events:
        if not isinstance(ev, dict):
            raise _bad("events", ev, f"{ev!r} is not of type 'object'")
        extra = sorted(set(ev) - {"name", "server_uuid", "status", "tag"})
        if extra:
            raise _bad("events", ev, f"Additional properties are not allowed "
                                     f"('{extra[0]}' was unexpected)")
        for key in ("name", "server_uuid"):
            if key not in ev:
                raise _bad("events", ev, f"'{key}' is a required property")
        if ev["name"] not in names:
            raise _bad("name", ev["name"], f"{ev['name']!r} is not one of {names}")
        if not isinstance(ev["server_uuid"], str) or not is_uuid(ev["server_uuid"]):
            raise _bad("server_uuid", ev["server_uuid"],
                       f"{ev['server_uuid']!r} is not a 'uuid'")
        if "status" in ev and ev["status"] not in _STATUSES:
            raise _bad("status", ev["status"], f"{ev['status']!r} is not one of "
                                               f"{_STATUSES}")
        if "tag" in ev and (not isinstance(ev["tag"], str) or len(ev["tag"]) > 255):
            raise _bad("tag", ev["tag"], "It must be a string of at most 255 characters")
    return events


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    names = [name for since, name in _NAMES if common.at_least(request, *since)]
    events = [copy.deepcopy(ev) for ev in _validate(body, names)]
    common.context(request).authorize(RULE, {})
    inst = t.instance
    uuids = sorted({ev["server_uuid"] for ev in events})
    async with common.cloud(request).db.read() as conn:
        hosts = {r.uuid: r.host for r in await conn.execute(
            select(inst.c.uuid, inst.c.host).where(inst.c.uuid.in_(uuids),
                                                   inst.c.deleted.is_(False)))}
    status = 200
    for ev in events:
        ev.setdefault("status", "completed")
        if ev["server_uuid"] not in hosts:
            ev.update(status="failed", code=404)
        elif ev["name"] in TAG_REQUIRED and "tag" not in ev:
            ev.update(status="failed", code=400)
        elif hosts[ev["server_uuid"]]:
            ev.update(status="completed", code=200)
        else:
            ev.update(status="failed", code=422)
        if ev["code"] != 200:
            status = 207
    return web.json_response({"events": events}, status=status)


ROUTES = {"/os-server-external-events": {"POST": (create, None)}}

POLICIES = {RULE: "rule:service_api"}
