"""Flavors: /flavors, /flavors/detail, /flavors/{id} (Nova's flavors API).

Response fields by microversion: description from 2.55, extra_specs from 2.61
(when the caller passes os-flavor-extra-specs:index), swap as 0 instead of ""
from 2.75, query parameters strict from 2.75.
"""

from __future__ import annotations

import copy

from aiohttp import web
from sqlalchemy import delete, update

from cloudd.db import tables as t
from cloudd.services.compute import common, flavor_store, nova_schema
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ES_INDEX = "os_compute_api:os-flavor-extra-specs:index"
MAX_INT = 0x7FFFFFFF

SORT_KEYS = {
    "created_at": "created_at", "description": "description", "disabled": "disabled",
    "ephemeral_gb": "ephemeral_gb", "flavorid": "id", "id": "created_at",
    "is_public": "is_public", "memory_mb": "memory_mb", "name": "name",
    "root_gb": "root_gb", "rxtx_factor": "rxtx_factor", "swap": "swap",
    "updated_at": "updated_at", "vcpu_weight": None, "vcpus": "vcpus"}
LIST_QUERY = {"limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir"}

_POSITIVE = {"type": ["integer", "string"], "pattern": "^[0-9]+$",
             "minimum": 1, "maximum": MAX_INT}
_NON_NEGATIVE = dict(_POSITIVE, minimum=0)
CREATE = {
    "type": "object",
    "properties": {"flavor": {
        "type": "object",
        "properties": {
            "name": nova_schema.NAME,
            "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
                   "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
            "ram": _POSITIVE, "vcpus": _POSITIVE, "disk": _NON_NEGATIVE,
            "OS-FLV-EXT-DATA:ephemeral": _NON_NEGATIVE, "swap": _NON_NEGATIVE,
            "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                            "exclusiveMinimum": 0, "maximum": 3.40282e+38},
            "os-flavor-access:is_public": nova_schema.BOOLEAN,
        },
        "required": ["name", "ram", "vcpus", "disk"],
        "additionalProperties": False}},
    "required": ["flavor"],
    "additionalProperties": False,
}
_DESCRIPTION = {"type": ["string", "null"], "minLength": 0, "maxLength": 65535}
CREATE_V255 = copy.deepcopy(CREATE)
CREATE_V255["properties"]["flavor"]["properties"]["description"] = _DESCRIPTION
UPDATE = {
    "type": "object",
    "properties": {"flavor": {"type": "object",
                              "properties": {"description": _DESCRIPTION},
                              "required": ["description"], "additionalProperties": False}},
    "required": ["flavor"], "additionalProperties": False,
}


def is_admin(request: web.Request) -> bool:
    return common.context(request).can("context_is_admin")


def _include_extra_specs(request: web.Request) -> bool:
    ctx = common.context(request)
    return common.at_least(request, 2, 61) and ctx.can(
        ES_INDEX, {"project_id": ctx.project_id, "user_id": ctx.user_id})


def basic_view(request: web.Request, row) -> dict:
    body = {"id": row.id, "name": row.name, "links": common.links(request, "flavors", row.id)}
    if common.at_least(request, 2, 55):
        body["description"] = row.description
    return body


def show_view(request: web.Request, row, specs: dict | None) -> dict:
    body = {
        "id": row.id, "name": row.name, "ram": row.memory_mb, "disk": row.root_gb,
        "swap": row.swap or "", "OS-FLV-EXT-DATA:ephemeral": row.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": bool(row.disabled), "vcpus": row.vcpus,
        "os-flavor-access:is_public": bool(row.is_public),
        "rxtx_factor": row.rxtx_factor or "",
        "links": common.links(request, "flavors", row.id),
    }
    if common.at_least(request, 2, 55):
        body["description"] = row.description
    if specs is not None:
        body["extra_specs"] = specs
    if common.at_least(request, 2, 75):
        body["swap"] = row.swap or 0
    return body


def _parse_is_public(raw: str | None) -> bool | None:
    if raw is None:
        return True
    word = raw.strip().lower()
    if word == "none":
        return None
    if word in ("1", "t", "true", "on", "y", "yes"):
        return True
    if word in ("0", "f", "false", "off", "n", "no"):
        return False
    raise ApiError(400, f"Invalid is_public filter [{raw}]")


def _int_filter(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid {name} filter [{raw}]") from None


def _check_query(request: web.Request) -> None:
    if common.at_least(request, 2, 75):
        extra = sorted(set(request.query) - LIST_QUERY)
        if extra:
            names = ", ".join(repr(k) for k in extra)
            verb = "were" if len(extra) > 1 else "was"
            raise ApiError(400, f"Additional properties are not allowed ({names} {verb} "
                                "unexpected)")
    key = request.query.get("sort_key")
    if key is not None and key not in SORT_KEYS:
        raise ApiError(400, f"Invalid input for query parameters sort_key. Value: {key}. "
                            f"{key!r} is not one of {sorted(SORT_KEYS)}")
    direction = request.query.get("sort_dir")
    if direction is not None and direction not in ("asc", "desc"):
        raise ApiError(400, f"Invalid input for query parameters sort_dir. Value: "
                            f"{direction}. {direction!r} is not one of ['asc', 'desc']")


async def _flavors(request: web.Request) -> tuple[list, int]:
    """The page of visible flavor rows Nova's _get_flavors returns, and the limit."""
    _check_query(request)
    ctx = common.context(request)
    admin = is_admin(request)
    limit, marker = common.limit_and_marker(request)
    column = SORT_KEYS[request.query.get("sort_key") or "flavorid"]
    reverse = (request.query.get("sort_dir") or "asc") == "desc"
    async with common.cloud(request).db.read() as conn:
        rows = await flavor_store.list_flavors(
            conn, project_id=ctx.project_id, is_admin=admin,
            is_public=_parse_is_public(request.query.get("is_public")) if admin else True,
            min_ram=_int_filter(request, "minRam"), min_disk=_int_filter(request, "minDisk"),
            only_enabled=not admin)
        marker_row = None
        if marker is not None:
            marker_row = await flavor_store.get_visible(conn, marker, ctx.project_id, admin)
            if marker_row is None:
                raise ApiError(400, f"marker [{marker}] not found")

    def key(row):
        value = getattr(row, column) if column else None
        return (value is not None, value if value is not None else 0, row.id)

    if marker_row is not None and all(r.id != marker_row.id for r in rows):
        rows.append(marker_row)
    rows.sort(key=key, reverse=reverse)
    if marker_row is not None:
        at = next(i for i, r in enumerate(rows) if r.id == marker_row.id)
        rows = rows[at + 1:]
    return rows[:limit], limit


def _links(request: web.Request, rows: list, limit: int, collection: str) -> dict:
    if limit and len(rows) == limit:
        return {"flavors_links": [common.next_link(request, collection, rows[-1].id)]}
    return {}


async def index(request: web.Request) -> web.Response:
    rows, limit = await _flavors(request)
    return web.json_response({"flavors": [basic_view(request, r) for r in rows],
                              **_links(request, rows, limit, "flavors")})


async def detail(request: web.Request) -> web.Response:
    rows, limit = await _flavors(request)
    specs: dict = {}
    if _include_extra_specs(request):
        async with common.cloud(request).db.read() as conn:
            specs = await flavor_store.extra_specs_of(conn, [r.id for r in rows])
    return web.json_response({
        "flavors": [show_view(request, r, specs.get(r.id) if specs else None) for r in rows],
        **_links(request, rows, limit, "flavors/detail")})


async def _respond(request: web.Request, conn, row, status: int = 200) -> web.Response:
    specs = await flavor_store.extra_specs(conn, row.id) \
        if _include_extra_specs(request) else None
    return web.json_response({"flavor": show_view(request, row, specs)}, status=status)


async def show(request: web.Request) -> web.Response:
    ctx = common.context(request)
    flavor_id = request.match_info["flavor_id"]
    async with common.cloud(request).db.read() as conn:
        row = await flavor_store.get_visible(conn, flavor_id, ctx.project_id,
                                             is_admin(request))
        if row is None:
            raise flavor_store.not_found(flavor_id)
        return await _respond(request, conn, row)


async def create(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize("os_compute_api:os-flavor-manage:create", {})
    v255 = common.at_least(request, 2, 55)
    body = nova_schema.check(CREATE_V255 if v255 else CREATE, await read_json(request))
    vals = body["flavor"]
    name = vals["name"].strip()
    flavor_id = vals.get("id")
    flavor_id = str(flavor_id) if flavor_id not in (None, "") else None
    try:
        rxtx = float(vals.get("rxtx_factor", 1.0))
    except ValueError:
        raise ApiError(400, "'rxtx_factor' argument must be a float between 0 and "
                            "3.40282e+38") from None
    async with common.cloud(request).db.write() as conn:
        row = await flavor_store.create(
            conn, flavor_id=flavor_id, name=name, memory_mb=int(vals["ram"]),
            vcpus=int(vals["vcpus"]), root_gb=int(vals["disk"]),
            ephemeral_gb=int(vals.get("OS-FLV-EXT-DATA:ephemeral", 0)),
            swap=int(vals.get("swap", 0)), rxtx_factor=rxtx,
            is_public=nova_schema.as_bool(vals.get("os-flavor-access:is_public", True)),
            description=vals.get("description") if v255 else None)
        specs = {} if _include_extra_specs(request) else None
        return web.json_response({"flavor": show_view(request, row, specs)})


async def update_flavor(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize("os_compute_api:os-flavor-manage:update", {})
    body = nova_schema.check(UPDATE, await read_json(request))
    flavor_id = request.match_info["flavor_id"]
    async with common.cloud(request).db.write() as conn:
        res = await conn.execute(update(t.flavor).where(t.flavor.c.id == flavor_id).values(
            description=body["flavor"]["description"], updated_at=utcnow()))
        if res.rowcount == 0:
            raise flavor_store.not_found(flavor_id)
        return await _respond(request, conn, await flavor_store.get(conn, flavor_id))


async def delete_flavor(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize("os_compute_api:os-flavor-manage:delete", {})
    flavor_id = request.match_info["flavor_id"]
    async with common.cloud(request).db.write() as conn:
        for table in (t.flavor_extra_spec, t.flavor_project):
            await conn.execute(delete(table).where(table.c.flavor_id == flavor_id))
        res = await conn.execute(delete(t.flavor).where(t.flavor.c.id == flavor_id))
        if res.rowcount == 0:
            raise flavor_store.not_found(flavor_id)
    return web.Response(status=202)


ROUTES = {
    "/flavors": {"GET": (index, None), "POST": (create, None)},
    "/flavors/detail": {"GET": (detail, None)},
    "/flavors/{flavor_id}": {"GET": (show, None), "PUT": (update_flavor, (2, 55)),
                             "DELETE": (delete_flavor, None)},
}

POLICIES = {
    "os_compute_api:os-flavor-manage:create": ADMIN,
    "os_compute_api:os-flavor-manage:update": ADMIN,
    "os_compute_api:os-flavor-manage:delete": ADMIN,
}
