"""Shared handler helpers: bodies checked by JSON schema, Placement's headers."""

from __future__ import annotations

import datetime as dt
import json
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from cloudd.services.placement import microversion
from cloudd.services.placement.errors import ILLEGAL_DUPLICATE_QUERYPARAM, error


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def extract_json(request: web.Request) -> Any:
    """The body, parsed, or Placement's 400/415 words (respond.validate checks
    it against a schema)."""
    ctype = request.content_type
    if request.method in ("POST", "PUT", "PATCH") and ctype != "application/json":
        shown = request.headers.get("Content-Type", "None")
        raise error(415, f"The media type {shown} is not supported, use application/json")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(400, f"Malformed JSON: {exc}") from None
    return data


def _accept_ranges(accept: str) -> list[tuple[str, str, float]] | None:
    """An Accept header as (type, subtype, q) ranges; None when malformed
    (WebOb then accepts anything)."""
    ranges = []
    for part in accept.split(","):
        part = part.strip()
        if not part:
            continue
        mtype, *params = [p.strip() for p in part.split(";")]
        major, sep, minor = mtype.lower().partition("/")
        if not sep or not major or not minor:
            return None
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    return None
        ranges.append((major, minor, q))
    return ranges or None


def accept_quality(accept: str | None, offer: str) -> float:
    """How much an Accept header wants ``offer``: the q of its most specific
    matching range (0 for none), as WebOb's acceptable_offers reads it."""
    if not accept:
        return 1.0
    ranges = _accept_ranges(accept)
    if ranges is None:
        return 1.0
    major, _, minor = offer.partition("/")
    best, q = -1, 0.0
    for rmajor, rminor, rq in ranges:
        if (rmajor, rminor) == (major, minor):
            spec = 2
        elif rmajor == major and rminor == "*":
            spec = 1
        elif (rmajor, rminor) == ("*", "*"):
            spec = 0
        else:
            continue
        if spec > best:
            best, q = spec, rq
    return q


def check_accept(request: web.Request) -> None:
    """Placement speaks JSON only: an Accept header that refuses it is a 406."""
    accept = request.headers.get("Accept")
    if accept and accept_quality(accept, "application/json") <= 0:
        raise error(406, "Only application/json is provided")


def error_media(request: web.Request) -> str:
    """The media type of an error body, as WebOb (with Placement's request log
    turning a missing or */* Accept into JSON) picks it."""
    accept = (request.headers.get("Accept") or "").strip()
    if not accept or accept == "*/*":
        return "application/json"
    best, best_q = "text/plain", 0.0
    for offer in ("text/html", "application/json"):
        q = accept_quality(accept, offer)
        if q > best_q:
            best, best_q = offer, q
    return best


def json_response(request: web.Request, body: Any, status: int = 200,
                  last_modified: dt.datetime | None = None,
                  headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with cache-control and last-modified from 1.15 on
    (``body`` bytes: JSON already rendered)."""
    # A body of bytes: the content type is exactly application/json, as
    # Placement's (no charset parameter).
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    resp = web.Response(body=body, status=status,
                        content_type="application/json", headers=headers)
    if microversion.at_least(request, 1, 15):
        resp.headers["cache-control"] = "no-cache"
        stamp = (last_modified or utcnow()).replace(tzinfo=dt.UTC, microsecond=0)
        resp.headers["last-modified"] = format_datetime(stamp, usegmt=True)
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
