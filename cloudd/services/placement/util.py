"""Shared handler helpers: bodies checked by JSON schema, Placement's headers."""

from __future__ import annotations

import datetime as dt
import json
from email.utils import format_datetime
from typing import Any

import jsonschema
from aiohttp import web

from cloudd.services.placement import microversion
from cloudd.services.placement.errors import ILLEGAL_DUPLICATE_QUERYPARAM, error


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


_FORMATS = jsonschema.FormatChecker()


async def extract_json(request: web.Request, schema: dict) -> Any:
    """The body, parsed and validated, or Placement's 400/415 words."""
    ctype = request.content_type
    if request.method in ("POST", "PUT", "PATCH") and ctype != "application/json":
        shown = request.headers.get("Content-Type", "None")
        raise error(415, f"The media type {shown} is not supported, use application/json")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(400, f"Malformed JSON: {exc}") from None
    try:
        jsonschema.validate(data, schema, format_checker=_FORMATS)
    except jsonschema.ValidationError as exc:
        raise error(400, f"JSON does not validate: {exc.message}") from None
    return data


def check_accept(request: web.Request) -> None:
    """Placement speaks JSON only: an Accept header that refuses it is a 406."""
    accept = request.headers.get("Accept")
    if not accept:
        return
    for part in accept.split(","):
        mtype = part.split(";")[0].strip().lower()
        if mtype in ("application/json", "application/*", "*/*", "*"):
            return
    raise error(406, "Only application/json is provided")


def json_response(request: web.Request, body: Any, status: int = 200,
                  last_modified: dt.datetime | None = None,
                  headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with cache-control and last-modified from 1.15 on."""
    resp = web.Response(text=json.dumps(body), status=status,
                        content_type="application/json", headers=headers)
    if microversion.at_least(request, 1, 15):
        resp.headers["cache-control"] = "no-cache"
        stamp = (last_modified or utcnow()).replace(tzinfo=dt.timezone.utc, microsecond=0)
        resp.headers["last-modified"] = format_datetime(stamp, usegmt=True)
    return resp


def no_content(headers: dict[str, str] | None = None) -> web.Response:
    resp = web.Response(status=204, headers=headers)
    # A 204 has no body, so no content type either (Placement is strict here).
    resp.content_type = None  # type: ignore[assignment]
    return resp


def newest(*stamps: dt.datetime | None) -> dt.datetime | None:
    """The latest of some created_at/updated_at values (for last-modified)."""
    found = [s for s in stamps if s is not None]
    return max(found) if found else None


def query_once(request: web.Request, name: str) -> str | None:
    """A query parameter that may appear once at most."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise error(400, f"Query parameter {name!r} may only be specified once.",
                    ILLEGAL_DUPLICATE_QUERYPARAM)
    return values[0] if values else None
