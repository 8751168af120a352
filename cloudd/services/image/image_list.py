"""GET /v2/images: Glance's filters, sorting and marker/limit paging."""

from __future__ import annotations

import csv
import datetime as dt
from urllib.parse import urlencode

import sqlalchemy as sa
from aiohttp import web
from multidict import MultiDict

from cloudd.db import tables as t
from cloudd.services.image import image_store
from cloudd.services.image.common import cloud, context, is_admin, visible
from cloudd.services.image.views import image_view, json_response
from cloudd.web.errors import ApiError

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")
LIMIT_DEFAULT = 25       # Glance's limit_param_default
LIMIT_MAX = 1000         # api_limit_max
_OPS = ("in", "eq", "gt", "gte", "lt", "lte", "neq")
_COLUMNS = {"owner", "checksum", "os_hash_value", "os_hash_algo", "min_disk", "min_ram",
            "virtual_size", "size"}


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _parse_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def split_filter_op(expression: str) -> tuple[str, str]:
    """As glance.common.utils.split_filter_op ("in:a,b", "gte:2024-...")."""
    left, sep, right = expression.partition(":")
    if sep:
        if _parse_time(expression) is not None:
            return "eq", expression
        return left, right
    return "eq", left


def split_values(value: str) -> list[str]:
    """Comma separated values, double quotes protecting commas."""
    return next(csv.reader([value], skipinitialspace=True)) if value else [""]


def _sorting(params: MultiDict) -> list[tuple[str, str]]:
    keys: list[str] = []
    dirs: list[str] = []

    def key_ok(key: str) -> str:
        if key not in SORT_KEYS:
            raise _bad(f"Invalid sort key: {key}. It must be one of the following: "
                       f"{', '.join(SORT_KEYS)}.")
        return key

    def dir_ok(d: str) -> str:
        if d not in ("asc", "desc"):
            raise _bad(f"Invalid sort direction: {d}")
        return d

    if "sort" in params:
        if "sort_key" in params or "sort_dir" in params:
            raise _bad("Old and new sorting syntax cannot be combined")
        for part in params.pop("sort").strip().split(","):
            key, _, d = part.partition(":")
            keys.append(key_ok(key.strip()))
            dirs.append(dir_ok(d.strip() or "desc"))
    else:
        keys = [key_ok(k.strip()) for k in params.popall("sort_key", [])]
        dirs = [dir_ok(d.strip()) for d in params.popall("sort_dir", [])]
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise _bad("Number of sort dirs does not match the number of sort keys")
    keys = keys or ["created_at"]
    dirs = dirs or ["desc"]
    if len(dirs) == 1:
        dirs = dirs * len(keys)
    sort = list(zip(keys, dirs))
    # Stable paging: ties broken by created_at and id, as Glance's paginate_query.
    for extra in ("created_at", "id"):
        if extra not in keys:
            sort.append((extra, dirs[0]))
    return sort


def _bool(params: MultiDict, name: str, default: str | None) -> bool | None:
    raw = params.pop(name, default)
    if raw is None:
        return None
    value = raw.lower() if name == "os_hidden" else raw
    if value not in ("true", "false"):
        raise _bad(f"Invalid value '{raw}' for '{name}' filter. Valid values are 'true' or "
                   "'false'.")
    return value == "true"


def _conditions(params: MultiDict) -> list:
    conds = []
    for name in ("os_hidden", "protected"):
        value = _bool(params, name, "false" if name == "os_hidden" else None)
        if value is not None:
            conds.append(t.image.c[name] == value)
    conds.append(t.image.c.status.notin_(("killed", "deleted")))
    for tag in params.popall("tag", []):
        conds.append(image_store.tag_clause(tag.strip()))
    if "changes-since" in params:
        raise _bad('The "changes-since" filter is no longer available on v2.')
    for key in list(params.keys()):
        for raw in params.popall(key):
            conds.append(_condition(key, raw))
    return conds


def _condition(key: str, raw: str):
    if key.endswith(("_min", "_max")):
        column = key[:-4]
        if column not in ("size", "virtual_size", "min_disk", "min_ram"):
            return image_store.property_clause(key, raw)
        try:
            value = int(raw)
        except ValueError:
            raise _bad("Unable to filter on a range with a non-numeric value.") from None
        col = t.image.c[column]
        return col >= value if key.endswith("_min") else col <= value
    if key in ("created_at", "updated_at"):
        op, value = split_filter_op(raw)
        when = _parse_time(value)
        if when is None:
            raise _bad(f'Bad "{key}" query filter format. Use ISO 8601 DateTime notation.')
        col = t.image.c[key]
        ops = {"eq": col == when, "neq": col != when, "gt": col > when, "gte": col >= when,
               "lt": col < when, "lte": col <= when}
        if op not in ops:
            raise _bad(f"Unable to filter by unknown operator '{op}'.")
        return ops[op]
    if key in ("name", "id", "status", "container_format", "disk_format"):
        op, value = split_filter_op(raw)
        col = t.image.c[key]
        if op == "in":
            return col.in_(split_values(value))
        if op == "eq":
            return col == value
        raise _bad(f"Unable to filter by unknown operator '{op}'.")
    if key in _COLUMNS:
        col = t.image.c[key]
        if key in ("min_disk", "min_ram", "size", "virtual_size"):
            try:
                return col == int(raw)
            except ValueError:
                return sa.false()
        return col == raw
    return image_store.property_clause(key, raw)


async def list_images(request: web.Request) -> web.Response:
    ctx = context(request)
    ctx.authorize("get_images", {"project_id": ctx.project_id})
    params = MultiDict(request.query)
    limit_raw = params.pop("limit", None)
    marker_id = params.pop("marker", None)
    member_status = params.pop("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise _bad(f"Invalid status: {member_status}")
    limit = LIMIT_DEFAULT
    if limit_raw is not None:
        try:
            limit = int(limit_raw)
        except ValueError:
            raise _bad("limit param must be an integer") from None
        if limit < 0:
            raise _bad("limit param must be positive")
    limit = min(limit, LIMIT_MAX)
    sort = _sorting(params)
    visibility = params.pop("visibility", None)
    if visibility and visibility not in ("community", "public", "private", "shared", "all"):
        raise _bad(f"Invalid visibility value: {visibility}")
    conds = _conditions(params)
    admin = is_admin(ctx)
    if not admin:
        conds.append(image_store.visible_clause(ctx.project_id, member_status))
    if visibility and visibility != "all":
        conds.append(t.image.c.visibility == visibility)
    elif not visibility:
        if ctx.project_id is None:
            conds.append(t.image.c.visibility != "community")
        else:
            conds.append(sa.or_(t.image.c.owner == ctx.project_id,
                                t.image.c.visibility != "community"))
    async with cloud(request).db.read() as conn:
        marker = None
        if marker_id is not None:
            marker = await image_store.get(conn, marker_id)
            member = marker and await image_store.member(conn, marker_id, ctx.project_id)
            if marker is None or not visible(ctx, marker, member):
                raise _bad(f"No image found with ID {marker_id}")
        images = await image_store.list_images(conn, conds, sort, marker, limit) \
            if limit else []
    query = [(k, v) for k, v in request.query.items() if k != "marker"]
    body = {"images": [image_view(i) for i in images], "first": "/v2/images",
            "schema": "/v2/schemas/images"}
    if query:
        body["first"] = f"/v2/images?{urlencode(query)}"
    if images and len(images) == limit:
        body["next"] = "/v2/images?" + urlencode(query + [("marker", images[-1]["id"])])
    return json_response(body)
