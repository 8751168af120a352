"""What every Network API handler needs: the caller, Neutron's errors, request
bodies with Neutron's attribute checks, and list queries (filters, fields,
sorting, pagination) done as Neutron's API layer does them."""

from __future__ import annotations

import datetime as dt
import json
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cloudd.web.auth import RequestContext, ctx_of
from cloudd.web.errors import ApiError

MAX_LIMIT = 1000


def cloud(request: web.Request):
    return request.config_dict["cloud"]


def context(request: web.Request) -> RequestContext:
    return ctx_of(request)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def iso(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def new_id() -> str:
    return str(uuidlib.uuid4())


def loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def reply(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


# -- errors ------------------------------------------------------------------------------

def error(status: int, kind: str, message: str) -> ApiError:
    """A Neutron error: ``{"NeutronError": {"type": kind, "message": ...}}``."""
    return ApiError(status, message, kind=kind)


def bad_request(message: str) -> ApiError:
    """The API layer's attribute errors (webob's HTTPBadRequest)."""
    return error(400, "HTTPBadRequest", message)


def invalid_input(message: str) -> ApiError:
    return error(400, "InvalidInput", f"Invalid input for operation: {message}.")


def invalid_attr(attr: str, reason: str) -> ApiError:
    return bad_request(f"Invalid input for {attr}. Reason: {reason}.")


def in_use(kind: str, message: str) -> ApiError:
    return error(409, kind, message)


def over_quota(resource: str) -> ApiError:
    return error(409, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")


def forbidden(rule: str) -> ApiError:
    """oslo.policy's refusal as Neutron words it: ``rule:get_port is disallowed
    by policy``, or ``(rule:create_network and rule:create_network:shared) ...``."""
    return error(403, "PolicyNotAuthorized", f"{rule} is disallowed by policy")


# -- policy ------------------------------------------------------------------------------

def is_admin(ctx: RequestContext) -> bool:
    return ctx.can("context_is_admin", {})


def enforce(ctx: RequestContext, rule: str, target: dict, *, hide: str | None = None,
            hidden: ApiError | None = None) -> None:
    """Neutron's policy check: a refusal is 403, or the item's 404 (``hidden``)
    when the caller may not even see it (``hide`` names the get rule)."""
    if ctx.can(rule, target):
        return
    if hide is not None and hidden is not None and not ctx.can(hide, target):
        raise hidden
    raise forbidden(f"rule:{rule}")


def enforce_attrs(ctx: RequestContext, action: str, resource: str, body: dict,
                  target: dict, guarded: dict[str, Any]) -> None:
    """``create_network:shared`` and the like: checked for each guarded
    attribute the request sets to something other than its default."""
    rules = [f"{action}_{resource}:{attr}" for attr, default in guarded.items()
             if attr in body and body[attr] != default]
    if any(not ctx.can(rule, target) for rule in rules):
        checks = " and ".join(f"rule:{r}" for r in [f"{action}_{resource}", *rules])
        raise forbidden(f"({checks})")


def strip_attrs(ctx: RequestContext, resource: str, item: dict, guarded: tuple) -> dict:
    """Leave out what ``get_<resource>:<attr>`` does not allow the caller to see."""
    for attr in guarded:
        if attr in item and not ctx.can(f"get_{resource}:{attr}", item):
            del item[attr]
    return item


# -- request bodies ----------------------------------------------------------------------

async def body_of(request: web.Request, resource: str) -> dict:
    """The ``{"<resource>": {...}}`` body of a create or update."""
    raw = await request.read()
    if not raw:
        raise bad_request("Resource body required")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Malformed request body") from None
    if not isinstance(body, dict) or resource not in body:
        raise bad_request(f"Unable to find '{resource}' in request body")
    inner = body[resource]
    if not isinstance(inner, dict):
        raise bad_request(f"Invalid input for {resource}. Reason: '{inner}' is not a "
                          "dictionary.")
    return inner


def check_attrs(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"Unrecognized attribute(s) '{', '.join(unknown)}'")


def to_bool(value: Any, attr: str) -> bool:
    """neutron_lib's convert_to_boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes", "on", "t", "y"):
            return True
        if low in ("false", "0", "no", "off", "f", "n"):
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise bad_request(f"Invalid input for operation: '{value}' cannot be converted to "
                      "boolean.")


def to_int(value: Any, attr: str) -> int:
    if isinstance(value, bool):
        raise invalid_attr(attr, f"'{value}' is not an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"Invalid input for operation: '{value}' is not an integer.") \
            from None


def check_string(body: dict, attr: str, max_len: int = 255) -> None:
    if attr in body:
        value = body[attr]
        if value is None and attr != "name":
            raise invalid_attr(attr, f"'{value}' is not a valid string")
        if not isinstance(value, str):
            raise invalid_attr(attr, f"'{value}' is not a valid string")
        if len(value) > max_len:
            raise invalid_attr(attr, f"'{value}' exceeds maximum length of {max_len}")


def is_uuid(value: Any) -> bool:
    try:
        uuidlib.UUID(str(value))
        return True
    except ValueError:
        return False


def check_uuid(value: Any, attr: str) -> str:
    if not isinstance(value, str) or not is_uuid(value):
        raise invalid_attr(attr, f"'{value}' is not a valid UUID")
    return value


def owner_of(ctx: RequestContext, body: dict) -> str:
    """The project a new resource belongs to: ``project_id``/``tenant_id`` (only
    an admin may name another project, as Neutron's policy), else the caller's."""
    project = body.pop("project_id", None)
    tenant = body.pop("tenant_id", None)
    if project and tenant and project != tenant:
        raise bad_request("'project_id' and 'tenant_id' do not match")
    wanted = project or tenant or ctx.project_id
    if wanted != ctx.project_id and not is_admin(ctx):
        raise bad_request("Specifying 'project_id' or 'tenant_id' other than the "
                          "authenticated project in request requires admin privileges")
    return wanted


# -- lists -------------------------------------------------------------------------------

RESERVED = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse"}


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, list):
        return any(_matches(v, wanted) for v in value)
    if isinstance(value, bool):
        return any(w.lower() in (str(value).lower(), "1" if value else "0") for w in wanted)
    if value is None:
        return any(w in ("", "None", "null") for w in wanted)
    return str(value) in wanted


def filtered(request: web.Request, items: list[dict], *,
             special: dict[str, Callable[[dict, list[str]], bool]] | None = None) -> list[dict]:
    """Every query parameter naming an attribute filters (repeated values: any);
    unknown ones are ignored, as Neutron does without filter validation."""
    special = special or {}
    for key in set(request.query) - RESERVED:
        wanted = request.query.getall(key)
        if key in special:
            items = [i for i in items if special[key](i, wanted)]
        elif items and key in items[0]:
            items = [i for i in items if _matches(i.get(key), wanted)]
    return items


def _sort_key(value: Any):
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def page(request: web.Request, items: list[dict], collection: str,
         sortable: set[str]) -> tuple[list[dict], list[dict]]:
    """Sorting (sort_key/sort_dir) and pagination (limit/marker) with Neutron's
    ``<collection>_links``; returns (items, links)."""
    keys = request.query.getall("sort_key", [])
    dirs = request.query.getall("sort_dir", [])
    if dirs and len(dirs) != len(keys):
        raise bad_request("The number of sort_keys and sort_dirs must be same")
    for key in keys:
        if key not in sortable:
            raise bad_request(f"{key} is invalid attribute for sort_keys")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise bad_request(f"{d} is invalid value for sort_dirs, valid values are "
                              "'asc' and 'desc'")
    order = list(zip(keys, dirs or ["asc"] * len(keys)))
    if "id" not in keys:
        order.append(("id", "asc"))
    for key, direction in reversed(order):
        items.sort(key=lambda i, k=key: _sort_key(i.get(k)), reverse=direction == "desc")
    raw = request.query.get("limit")
    marker = request.query.get("marker")
    reverse = request.query.get("page_reverse", "false").lower() == "true"
    if raw is None:
        return items, []
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request(f"Limit must be an integer 0 or greater and not '{raw}'") from None
    if limit < 0:
        raise bad_request(f"Limit must be an integer 0 or greater and not '{raw}'")
    limit = min(limit or MAX_LIMIT, MAX_LIMIT)
    if reverse:
        items = list(reversed(items))
    start = 0
    if marker:
        ids = [i["id"] for i in items]
        if marker not in ids:
            raise error(404, f"{collection.rstrip('s').title()}NotFound",
                        f"Marker {marker} could not be found.")
        start = ids.index(marker) + 1
    chunk = items[start:start + limit]
    more = start + limit < len(items)
    links = []
    query = {k: v for k, v in request.query.items() if k not in ("marker", "page_reverse")}
    if chunk and more:
        q = {**query, "marker": chunk[-1]["id"]}
        if reverse:
            q["page_reverse"] = "True"
        links.append({"rel": "next", "href": str(request.url.with_query(q))})
    if chunk and (marker or reverse):
        q = {**query, "marker": chunk[0]["id"], "page_reverse": "False" if reverse else "True"}
        links.append({"rel": "previous", "href": str(request.url.with_query(q))})
    if reverse:
        chunk = list(reversed(chunk))
    return chunk, links


def fields_of(request: web.Request, item: dict) -> dict:
    fields = [f for f in request.query.getall("fields", []) if f]
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields}


def listing(request: web.Request, collection: str, items: list[dict], sortable: set[str],
            special: dict | None = None) -> web.Response:
    """Filters, sorting, pagination and ``fields`` applied; the response."""
    items = filtered(request, items, special=special)
    items, links = page(request, items, collection, sortable)
    body: dict[str, Any] = {collection: [fields_of(request, i) for i in items]}
    if links:
        body[f"{collection}_links"] = links
    return reply(body)


def one(request: web.Request, resource: str, item: dict, status: int = 200) -> web.Response:
    return reply({resource: fields_of(request, item)}, status)
