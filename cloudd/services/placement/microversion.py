"""Placement microversions 1.0 to 1.39: negotiation and comparisons."""

from __future__ import annotations

import re
from functools import wraps

from aiohttp import web

from cloudd.services.placement.errors import error
from cloudd.web.errors import ApiError

SERVICE = "placement"
MIN = (1, 0)
MAX = (1, 39)
HEADER = "OpenStack-API-Version"
_VERSION = re.compile(r"^([1-9]\d*)\.(0|[1-9]\d*)$")


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse_header(request: web.Request) -> tuple[int, int]:
    """The microversion a request asks for (1.0 when it names none)."""
    wanted = None
    for value in request.headers.getall(HEADER, []):
        for part in value.split(","):
            service, _, ver = part.strip().partition(" ")
            if service.lower() == SERVICE:
                wanted = ver.strip()
    if wanted is None:
        return MIN
    if wanted == "latest":
        return MAX
    m = _VERSION.match(wanted)
    if not m:
        raise error(400, f"invalid version string: {wanted}")
    version = (int(m.group(1)), int(m.group(2)))
    if not MIN <= version <= MAX:
        raise error(406, f"Unacceptable version header: {wanted}")
    return version


def headers(version: tuple[int, int]) -> dict[str, str]:
    return {HEADER.lower(): f"{SERVICE} {fmt(version)}", "vary": HEADER.lower()}


def of(request: web.Request) -> tuple[int, int]:
    """The negotiated microversion of this request."""
    return request["placement_mv"]


def at_least(request: web.Request, major: int, minor: int) -> bool:
    return of(request) >= (major, minor)


def versioned(handler, min_version: tuple[int, int] | None = None):
    """Negotiate the microversion around a handler and echo it on every response.

    A route that only exists from ``min_version`` on is a 404 below it, as in
    Placement.
    """

    @wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            version = parse_header(request)
        except ApiError as err:
            err.headers.update(headers(MIN))
            raise
        request["placement_mv"] = version
        try:
            if min_version and version < min_version:
                raise error(404, "The resource could not be found.")
            response = await handler(request)
        except ApiError as err:
            err.headers.update(headers(version))
            raise
        response.headers.update(headers(version))
        return response

    return wrapper
