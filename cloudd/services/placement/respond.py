"""Small request/response helpers shared by the provider-side Placement handlers.

Placement words things in fixed ways (URLs under the mount point, absolute
Location headers, "Invalid query string parameters: ..."); these helpers keep
that in one place.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from cloudd.services.placement import microversion
from cloudd.services.placement.errors import error
from cloudd.services.placement.util import extract_json, utcnow
from cloudd.web.auth import ctx_of
from cloudd.web.formats import LazyFormats

FORMATS = LazyFormats()


@FORMATS.checks("uuid")
def is_uuid_like(value: Any) -> bool:
    """oslo.utils' is_uuid_like: dashes, braces, case and urn: are forgiven."""
    if not isinstance(value, str):
        return True
    try:
        canon = str(uuidlib.UUID(value)).replace("-", "")
    except (TypeError, ValueError, AttributeError):
        return False
    plain = value.replace("urn:", "").replace("uuid:", "").strip("{}")
    return canon == plain.replace("-", "").lower()


def db(request: web.Request):
    return request.config_dict["cloud"].db


def authorize(request: web.Request, rule: str, target: dict | None = None) -> None:
    """Placement's context.can: the default target is the caller's project/user."""
    ctx = ctx_of(request)
    if target is None:
        target = {"project_id": ctx.project_id, "user_id": ctx.user_id}
    ctx.authorize(rule, target)


def href(request: web.Request, path: str) -> str:
    """A link under the mount point (Placement's SCRIPT_NAME prefix)."""
    return f"{request.get('prefix', '')}{path}"


def location(request: web.Request, path: str) -> str:
    """An absolute URL for a Location header (webob makes them absolute)."""
    return f"{request.url.origin()}{href(request, path)}"


# schema id -> (schema, its validator). The schema is kept alive with its
# validator, so an id is never reused while it is a key here.
_VALIDATORS: dict[int, tuple[dict, Any]] = {}
_MAX_VALIDATORS = 512


def validator(schema: dict):
    """One checked validator per schema, made on first use and then reused
    (``jsonschema.validate`` checks the schema itself on every call)."""
    found = _VALIDATORS.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    made = cls(schema, format_checker=FORMATS.get())
    if len(_VALIDATORS) >= _MAX_VALIDATORS:     # schemas built per call: stay bounded
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, made)
    return made


def validate(data: Any, schema: dict, prefix: str = "JSON does not validate") -> None:
    """jsonschema validation worded as Placement words it (the full error text
    of the error ``jsonschema.validate`` would raise: the best match)."""
    from jsonschema.exceptions import best_match

    exc = best_match(validator(schema).iter_errors(data))
    if exc is not None:
        raise error(400, f"{prefix}: {exc}") from None


async def read_body(request: web.Request, schema: dict) -> Any:
    """The JSON body (parsed by ``util.extract_json``), validated against
    ``schema`` with Placement's full error text ("Failed validating ...") and
    its lenient uuid format."""
    data = await extract_json(request)
    validate(data, schema)
    return data


def validate_query(request: web.Request, schema: dict) -> dict[str, str]:
    """The query string as one value per key, checked against ``schema``."""
    params = {k: request.query.getall(k)[-1] for k in request.query}
    validate(params, schema, "Invalid query string parameters")
    return params


def require_json(request: web.Request) -> None:
    """Placement's require_content: a 415 before anything else is looked at."""
    if request.content_type != "application/json":
        shown = request.headers.get("Content-Type") or "None"
        raise error(415, f"The media type {shown} is not supported, use application/json")


def http_date(stamp: dt.datetime | None) -> str:
    stamp = (stamp or utcnow()).replace(tzinfo=dt.UTC, microsecond=0)
    return format_datetime(stamp, usegmt=True)


def cache_headers(request: web.Request, resp: web.StreamResponse,
                  last_modified: dt.datetime | None) -> web.StreamResponse:
    """From 1.15 on: cache-control no-cache and last-modified (now if unknown)."""
    if microversion.at_least(request, 1, 15):
        resp.headers["cache-control"] = "no-cache"
        resp.headers["last-modified"] = http_date(last_modified)
    return resp


def empty(status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A body-less response with no content type (Placement is strict here).

    aiohttp sends no Content-Type for a body-less Response unless one is set
    (setting ``content_type = None`` would send the literal "None").
    """
    return web.Response(status=status, headers=headers)


def newest(stamps) -> dt.datetime | None:
    """The latest of (updated_at or created_at) over some rows."""
    found = [(r.updated_at or r.created_at) for r in stamps]
    found = [s for s in found if s is not None]
    return max(found) if found else None
