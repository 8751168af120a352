"""Placement microversions 1.0 to 1.39: negotiation and comparisons."""

from __future__ import annotations

import re
from functools import wraps

from aiohttp import web

from cloudd.policy import PolicyNotAuthorized
from cloudd.services.placement.errors import error
from cloudd.web.errors import ApiError

SERVICE = "placement"
MIN = (1, 0)
MAX = (1, 39)
HEADER = "OpenStack-API-Version"
# As microversion_parse: two integers around the first dot (so "0.5" is a
# version, out of range: 406; "1.2.3" is not one: 400).
_VERSION = re.compile(r"^\s*(\d+)\s*\.\s*(\d+)\s*$")


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


def _check_content_type(request: web.Request) -> None:
    """A body needs a content type (Placement checks before routing). A
    Content-Length that is not a number never gets here: aiohttp's parser
    answers 400 itself."""
    if (request.content_length or 0) > 0 and not request.headers.get("Content-Type"):
        raise error(400, "content-type header required when content-length > 0")


async def middleware(request: web.Request, handler) -> web.StreamResponse:
    """Placement's microversion middleware, for every request to the API.

    Negotiates the version (400 for a malformed one, 406 for one out of range)
    before routing, and echoes it on every response, errors included (404 and
    405 for paths and methods that do not exist, in Placement's words).
    """
    try:
        version = parse_header(request)
    except ApiError as err:
        err.headers.update(headers(MIN))
        raise
    request["placement_mv"] = version
    try:
        _check_content_type(request)
        response = await handler(request)
    except ApiError as err:
        err.headers.update(headers(version))
        raise
    except PolicyNotAuthorized as exc:
        message = request["spec"].forbidden_message.format(rule=exc.rule)
        raise ApiError(403, message, headers=headers(version)) from None
    except web.HTTPMethodNotAllowed as exc:
        allow = ", ".join(sorted(exc.allowed_methods))
        raise ApiError(405, f"The method {request.method} is not allowed for this resource.",
                       headers={**headers(version), "Allow": allow}) from None
    except web.HTTPNotFound:
        err = error(404, "The resource could not be found.")
        err.headers.update(headers(version))
        raise err from None
    response.headers.update(headers(version))
    return response


def versioned(handler, min_version: tuple[int, int] | None = None, status: int = 404):
    """A handler that exists only from ``min_version`` on: below it a 404 (or
    ``status``: 405 for some), as Placement's version_handler. Negotiation and
    the echoed headers are the API middleware's (``middleware`` above).
    """
    if min_version is None:
        return handler

    @wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if request["placement_mv"] < min_version:
            if status == 405:
                raise error(405, f"The method {request.method} is not allowed "
                                 "for this resource.")
            raise error(status, "The resource could not be found.")
        return await handler(request)

    return wrapper
