"""/servers: list (plain and detail), show, create, update and delete.

Create lives in server_create.py, rendering in server_views.py, the SQL in
instance_store.py, actions in server_actions.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select, update

from cloudd.db import tables as t
from cloudd.services.compute import (
    common,
    instance_store,
    server_create,
    server_schemas,
    states,
    tasks,
)
from cloudd.services.compute.instance_store import ListQuery
from cloudd.services.compute.policies import ADMIN
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER
from cloudd.services.compute.server_schemas import (
    bool_from_string,
    update_schema,
    validate,
)
from cloudd.services.compute.server_views import Viewer
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

SERVERS = "os_compute_api:servers:%s"

PAGING = ("sort_key", "sort_dir", "limit", "marker")
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
JOINED = ("block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
          "security_groups", "pci_devices")
# Every query parameter Nova's index_query schema knows (2.75 refuses others).
KNOWN = {
    "user_id", "project_id", "tenant_id", "launch_index", "image_ref", "image",
    "kernel_id", "ramdisk_id", "hostname", "key_name", "power_state", "vm_state",
    "task_state", "host", "node", "flavor", "reservation_id", "launched_at",
    "terminated_at", "availability_zone", "name", "display_name", "description",
    "display_description", "locked_by", "uuid", "root_device_name", "config_drive",
    "access_ip_v4", "access_ip_v6", "auto_disk_config", "progress", "sort_key",
    "sort_dir", "all_tenants", "soft_deleted", "deleted", "status", "changes-since",
    "ip", "ip6", "created_at", "limit", "marker", *TAG_FILTERS, "changes-before", "locked",
    *JOINED,
}
# Filters by column: exact matches, and regular expressions (Nova's db API).
EXACT = {"project_id": "project_id", "tenant_id": "project_id", "user_id": "user_id",
         "uuid": "uuid", "host": "host", "launch_index": "launch_index"}
REGEX = {"name": "display_name", "display_name": "display_name",
         "description": "description", "display_description": "description",
         "hostname": "hostname", "key_name": "key_name", "node": "node",
         "reservation_id": "reservation_id", "availability_zone": "availability_zone",
         "config_drive": "config_drive", "access_ip_v4": "access_ip_v4",
         "access_ip_v6": "access_ip_v6", "locked_by": "locked_by", "progress": "progress",
         "power_state": "power_state"}


def _allowed_options(mv) -> set[str]:
    opts = {"reservation_id", "name", "status", "image", "flavor", "ip", "changes-since",
            "all_tenants"}
    if mv >= (2, 5):
        opts.add("ip6")
    if mv >= (2, 26):
        opts.update(TAG_FILTERS)
    if mv >= (2, 66):
        opts.add("changes-before")
    if mv >= (2, 73):
        opts.add("locked")
    if mv >= (2, 83):
        opts.update({"availability_zone", "config_drive", "key_name", "created_at",
                     "launched_at", "terminated_at", "power_state", "task_state",
                     "vm_state", "progress", "user_id"})
    if mv >= (2, 90):
        opts.add("hostname")
    return opts


def _parse_time(value: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"Invalid filter field: {name}.") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def _status_states(values: list[str]) -> tuple[list, list]:
    wanted = {v.lower() for v in values}
    vms, tks = set(), set()
    for vm, by_task in states._STATUS.items():
        for task, status in by_task.items():
            if status.lower() in wanted:
                vms.add(vm)
                tks.add(task)
    return sorted(vms), list(tks)


def _sort_params(request, mv, is_admin: bool) -> tuple[list, list]:
    keys = [k.strip() for k in request.query.getall("sort_key", [])] or ["created_at"]
    dirs = [d.strip() for d in request.query.getall("sort_dir", [])] or ["desc"]
    ignored = set(instance_store.IGNORED_SORT_KEYS) | instance_store.UNSORTABLE_KEYS
    if mv >= (2, 73):
        ignored.discard("locked")
    valid = (set(instance_store.SORT_COLUMNS) - {"locked"}) | ignored
    if mv >= (2, 73):
        valid.add("locked")
    if mv >= (2, 75):
        valid -= instance_store.IGNORED_SORT_KEYS - {"locked"}
    out_keys, out_dirs = [], []
    for i, key in enumerate(keys):
        if key not in valid:
            raise ApiError(400, f"Invalid input for query parameters sort_key. Value: {key}."
                                f" '{key}' is not one of {sorted(valid)}")
        if key in ignored:
            continue
        if key in ("host", "node") and not is_admin:
            raise ApiError(403, f"Only administrators can sort servers by {key}")
        out_keys.append(key)
        if i < len(dirs):
            out_dirs.append(dirs[i])
    for d in dirs:
        if d not in ("asc", "desc"):
            raise ApiError(400, "Unknown sort direction, must be 'desc' or 'asc'")
    if not out_keys:
        out_keys, out_dirs = ["created_at"], out_dirs or ["desc"]
    return out_keys, out_dirs or ["desc"]


def _list_query(request, detail: bool) -> ListQuery | None:
    """GET /servers query -> ListQuery, as Nova's _get_servers reads it; None
    when the answer is an empty list without a lookup (pre-2.38 bad status)."""
    ctx = common.context(request)
    mv = common.mv(request)
    is_admin = ctx.can("context_is_admin", {})
    raw = request.query
    if mv >= (2, 75):
        for key in raw:
            if key not in KNOWN and not key.startswith("_"):
                raise ApiError(400, f"Invalid input for query parameters {key}. Value: "
                                    f"{raw[key]}. Additional properties are not allowed "
                                    f"('{key}' was unexpected)")
    opts = {k: raw.getall(k)[-1] for k in raw if k not in PAGING}
    if not ctx.can(SERVERS % "allow_all_filters", {"project_id": ctx.project_id}):
        allowed = _allowed_options(mv)
        opts = {k: v for k, v in opts.items() if k in allowed}
    for key in opts:
        if key in JOINED or key.startswith("_"):
            raise ApiError(400, f"Invalid filter field: {key}.")
    q = ListQuery()
    if "status" in opts:
        opts.pop("status")
        vms, tks = _status_states(raw.getall("status"))
        if not vms:
            if mv >= (2, 38):
                raise ApiError(400, "Invalid status value")
            return None
        q.vm_states = vms
        if "default" not in tks:
            q.task_states = tks
    if "changes-since" in opts:
        q.changes_since = _parse_time(opts.pop("changes-since"), "changes-since")
    if "changes-before" in opts:
        if mv < (2, 66):
            opts.pop("changes-before")
        else:
            q.changes_before = _parse_time(opts.pop("changes-before"), "changes-before")
            if q.changes_since and q.changes_before < q.changes_since:
                raise ApiError(400, "The value of changes-since must be less than or equal "
                                    "to changes-before.")
    if "deleted" in opts:
        q.deleted = bool_from_string(opts.pop("deleted"), default=False)
    elif q.changes_since or q.changes_before:
        q.deleted = None
    if q.vm_states == [states.DELETED]:
        if not is_admin:
            raise ApiError(403, "Only administrators may list deleted instances")
        q.deleted, q.vm_states = True, None
    for name in TAG_FILTERS:
        if name in opts:
            value = [v for v in opts.pop(name).split(",")]
            if mv >= (2, 26):
                setattr(q, name.replace("-", "_"), value)
    all_tenants = False
    if "all_tenants" in opts:
        value = opts.pop("all_tenants")
        all_tenants = True if value == "" else bool_from_string(value, strict=True)
    if "locked" in opts:
        q.locked = bool_from_string(opts.pop("locked"), strict=True)
    if all_tenants:
        ctx.authorize(SERVERS % ("detail:get_all_tenants" if detail
                                 else "index:get_all_tenants"), {})
        q.project_id = None
    else:
        opts.pop("tenant_id", None)
        opts.pop("project_id", None)
        q.project_id = ctx.project_id
        if not ctx.project_id:
            q.user_id = ctx.user_id
    opts.pop("soft_deleted", None)
    image = opts.pop("image", None) or opts.pop("image_ref", None)
    if image is not None:
        q.image = image
    if "flavor" in opts:
        q.flavor = server_create.id_from_href(opts.pop("flavor"))
    if "ip" in opts or "ip6" in opts:
        q.ip = opts.pop("ip", None) or opts.pop("ip6", None)
    for key in ("vm_state", "task_state"):
        if key in opts:
            value = raw.getall(key)
            if key == "vm_state":
                q.vm_states = value
            else:
                q.task_states = value
            opts.pop(key)
    for key, value in opts.items():
        if key in EXACT:
            q.exact[EXACT[key]] = int(value) if key == "launch_index" and \
                value.isdigit() else value
        elif key in REGEX:
            q.regex[REGEX[key]] = instance_store.compile_regex(value)
    q.sort_keys, q.sort_dirs = _sort_params(request, mv, is_admin)
    q.limit, q.marker = common.limit_and_marker(request)
    return q


async def _list(request: web.Request, detail: bool) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(SERVERS % ("detail" if detail else "index"),
                  {"project_id": ctx.project_id})
    q = _list_query(request, detail)
    viewer = Viewer(request)
    if q is None:
        return web.json_response({"servers": []})
    cloud = common.cloud(request)
    async with cloud.db.read() as conn:
        rows = await instance_store.list_instances(conn, q, network=cloud.compute.network)
        if not detail:
            return web.json_response(viewer.index(rows))
        extras = await instance_store.load_extras(
            conn, rows, groups=False, host_status=viewer.host_status is not None,
            service_down_time=cloud.config.compute.service_down_time,
            network=cloud.compute.network)
    return web.json_response(viewer.detail(rows, extras))


async def index(request: web.Request) -> web.Response:
    return await _list(request, False)


async def detail(request: web.Request) -> web.Response:
    return await _list(request, True)


def scope(request) -> str | None:
    """The project a caller's instance lookups are confined to (None: admin)."""
    ctx = common.context(request)
    return None if ctx.can("context_is_admin", {}) else ctx.project_id


async def render(request, conn, row, mode: str = "show") -> dict:
    viewer = Viewer(request, row.project_id)
    cloud = common.cloud(request)
    extras = await instance_store.load_extras(
        conn, [row], host_status=viewer.host_status is not None,
        service_down_time=cloud.config.compute.service_down_time,
        network=cloud.compute.network)
    return viewer.show(row, extras, mode=mode)


async def show(request: web.Request) -> web.Response:
    ctx = common.context(request)
    uuid = request.match_info["server_id"]
    async with common.cloud(request).db.read() as conn:
        row = await instance_store.get(conn, uuid, scope(request))
        ctx.authorize(SERVERS % "show", {"project_id": row.project_id})
        body = await render(request, conn, row)
    return web.json_response({"server": body})


async def create(request: web.Request) -> web.Response:
    return await server_create.create(request)


async def update_server(request: web.Request) -> web.Response:
    ctx = common.context(request)
    uuid = request.match_info["server_id"]
    body = await read_json(request)
    async with common.cloud(request).db.write() as conn:
        row = await instance_store.get(conn, uuid, scope(request))
        ctx.authorize(SERVERS % "update", {"user_id": row.user_id,
                                           "project_id": row.project_id})
        validate(body, update_schema(common.mv(request)))
        server = body["server"]
        values: dict = {}
        if "name" in server:
            values["display_name"] = server["name"].strip()
        if "description" in server:
            values["description"] = server["description"]
        if "hostname" in server:
            values["hostname"] = server["hostname"]
        if "accessIPv4" in server:
            values["access_ip_v4"] = server_schemas.access_ip(server["accessIPv4"])
        if "accessIPv6" in server:
            values["access_ip_v6"] = server_schemas.access_ip(server["accessIPv6"])
        if "OS-DCF:diskConfig" in server:
            spec = instance_store.spec_of(row)
            spec["disk_config"] = server["OS-DCF:diskConfig"]
            values["request_spec"] = json.dumps(spec)
        values["updated_at"] = tasks.utcnow()
        await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid)
                           .values(**values))
        row = await instance_store.get(conn, uuid)
        out = await render(request, conn, row, mode="update")
    return web.json_response({"server": out})


async def start_delete(request: web.Request, uuid: str, rule: str,
                       action: str = "delete") -> None:
    """Delete (or forceDelete): cancel what is open, mark deleting, open the
    delete task — one transaction — then wake the conductor."""
    ctx = common.context(request)
    task_id = None
    async with common.cloud(request).db.write() as conn:
        try:
            row = await instance_store.get(conn, uuid, scope(request))
        except ApiError:
            raise ApiError(404, "Instance could not be found") from None
        ctx.authorize(rule, {"user_id": row.user_id, "project_id": row.project_id})
        if row.locked and not ctx.can("context_is_admin", {}):
            raise ApiError(409, f"Instance {uuid} is locked")
        open_delete = (await conn.execute(select(t.task.c.id).where(
            t.task.c.instance_uuid == uuid, t.task.c.kind == "delete",
            t.task.c.state.in_(tasks.OPEN_STATES)))).first()
        if open_delete is None:
            await tasks.cancel_open(conn, uuid)
            await conn.execute(update(t.instance).where(t.instance.c.uuid == uuid).values(
                task_state=states.DELETING, progress=0, updated_at=tasks.utcnow()))
            task_id = await tasks.open_task(
                conn, instance_uuid=uuid, kind="delete", action=action,
                request_id=ctx.request_id, project_id=ctx.project_id, user_id=ctx.user_id)
    if task_id:
        common.compute(request).wake(task_id)


async def delete(request: web.Request) -> web.Response:
    await start_delete(request, request.match_info["server_id"], SERVERS % "delete")
    return web.Response(status=204)


ROUTES = {
    "/servers": {"GET": (index, None), "POST": (create, None)},
    "/servers/detail": {"GET": (detail, None)},
    "/servers/{server_id}": {"GET": (show, None), "PUT": (update_server, None),
                             "DELETE": (delete, None)},
}

POLICIES = {
    SERVERS % "index": READER,
    SERVERS % "detail": READER,
    SERVERS % "index:get_all_tenants": ADMIN,
    SERVERS % "detail:get_all_tenants": ADMIN,
    SERVERS % "allow_all_filters": ADMIN,
    SERVERS % "show": READER,
    SERVERS % "show:flavor-extra-specs": READER,
    SERVERS % "show:host_status": ADMIN,
    SERVERS % "show:host_status:unknown-only": ADMIN,
    SERVERS % "create": MEMBER,
    SERVERS % "create:forced_host": ADMIN,
    SERVERS % "create:requested_destination": ADMIN,
    SERVERS % "create:attach_volume": MEMBER,
    SERVERS % "create:attach_network": MEMBER,
    SERVERS % "create:trusted_certs": MEMBER,
    SERVERS % "create:zero_disk_flavor": ADMIN,
    SERVERS % "update": MEMBER,
    SERVERS % "delete": MEMBER,
    "os_compute_api:os-extended-server-attributes": ADMIN,
}
