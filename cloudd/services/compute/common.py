"""Helpers every compute handler uses: the caller, links, pagination, times."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from cloudd.services.compute import microversion
from cloudd.web.auth import ctx_of
from cloudd.web.errors import ApiError

MAX_LIMIT = 1000          # Nova's [api] max_limit


def compute(request: web.Request):
    """The ComputeService of this cloud."""
    return request.config_dict["cloud"].compute


def cloud(request: web.Request):
    return request.config_dict["cloud"]


def api_version(request: web.Request) -> str:
    """The API version in the path: "v2.1" or the legacy "v2" ("v2.1" for the
    versions document at the root)."""
    first = request.path[len(request["prefix"]):].lstrip("/").partition("/")[0]
    return first or "v2.1"


def version_root(request: web.Request) -> str:
    """The URL of the API version this request came in on, e.g.
    http://host:8800/compute/v2.1 (with the project id when the request had one)."""
    base = f"{request.scheme}://{request.host}{request['prefix']}"
    version = api_version(request)
    project = request.match_info.get("project_id")
    return f"{base}/{version}/{project}" if project else f"{base}/{version}"


def links(request: web.Request, collection: str, item_id: str) -> list[dict]:
    """Nova's self and bookmark links of one resource."""
    base = f"{request.scheme}://{request.host}{request['prefix']}"
    project = request.match_info.get("project_id")
    tail = f"/{project}/{collection}/{item_id}" if project else f"/{collection}/{item_id}"
    return [{"rel": "self", "href": f"{version_root(request)}/{collection}/{item_id}"},
            {"rel": "bookmark", "href": f"{base}{tail}"}]


def mv(request: web.Request) -> tuple[int, int]:
    return microversion.of(request)


def at_least(request: web.Request, major: int, minor: int) -> bool:
    return microversion.at_least(request, major, minor)


def context(request: web.Request):
    return ctx_of(request)


def limit_and_marker(request: web.Request) -> tuple[int, str | None]:
    """``limit`` (capped at MAX_LIMIT) and ``marker`` as Nova reads them."""
    raw = request.query.get("limit")
    limit = MAX_LIMIT
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise ApiError(400, "limit param must be an integer") from None
        if limit < 0:
            raise ApiError(400, "limit param must be positive")
        limit = min(limit, MAX_LIMIT)
    return limit, request.query.get("marker")


def next_link(request: web.Request, collection: str, marker: str) -> dict:
    """The ``*_links`` entry pointing at the next page."""
    query = {k: v for k, v in request.query.items() if k != "marker"}
    query["marker"] = marker
    url = request.url.with_query(query)
    return {"rel": "next", "href": f"{version_root(request)}/{collection}?{url.query_string}"}


def isotime(value: datetime | None) -> str | None:
    """Nova's timestamps in API bodies: 2024-01-02T03:04:05Z."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def isotime_micro(value: datetime | None) -> str | None:
    """Timestamps with microseconds, as Nova shows some (e.g. services' updated_at)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None
