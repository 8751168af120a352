"""Nova microversions 2.1 to 2.100: negotiation, the echoed headers, gates.

Both headers are read, as Nova does: ``OpenStack-API-Version: compute 2.x``
wins over the legacy ``X-OpenStack-Nova-API-Version: 2.x``. No header is
2.1, ``latest`` is the maximum, a version out of range is 406 and a
malformed one 400. Every response (errors too) carries both headers and
``Vary`` naming them.
"""

from __future__ import annotations

import re
from functools import wraps

from aiohttp import web

from cloudd.policy import PolicyNotAuthorized
from cloudd.web.errors import ApiError

MIN = (2, 1)
MAX = (2, 100)
NEW_HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _requested(request: web.Request) -> str | None:
    for value in request.headers.getall(NEW_HEADER, []):
        for part in value.split(","):
            service, _, ver = part.strip().partition(" ")
            if service.lower() == "compute":
                return ver.strip()
    legacy = request.headers.get(LEGACY_HEADER)
    return legacy.strip() if legacy is not None else None


def negotiate(request: web.Request) -> tuple[int, int]:
    wanted = _requested(request)
    if wanted is None:
        return MIN
    if wanted.lower() == "latest":
        return MAX
    m = _VERSION.match(wanted)
    if not m:
        raise ApiError(400, f"API Version String {wanted} is of invalid format. "
                            "Must be of format MajorNum.MinorNum.")
    version = (int(m.group(1)), int(m.group(2)))
    if not MIN <= version <= MAX:
        raise ApiError(406, f"Version {wanted} is not supported by the API. "
                            f"Minimum is {fmt(MIN)} and maximum is {fmt(MAX)}.")
    return version


def headers(version: tuple[int, int]) -> dict[str, str]:
    return {NEW_HEADER: f"compute {fmt(version)}", LEGACY_HEADER: fmt(version),
            "Vary": f"{NEW_HEADER}, {LEGACY_HEADER}"}


def of(request: web.Request) -> tuple[int, int]:
    """The negotiated microversion of this request."""
    return request.get("compute_mv", MIN)


def at_least(request: web.Request, major: int, minor: int) -> bool:
    return of(request) >= (major, minor)


def _is_versioned(request: web.Request) -> bool:
    """Version documents (/, /v2.1) answer without negotiation headers."""
    rest = request.path[len(request["prefix"]):].strip("/")
    return "/" in rest


async def middleware(request: web.Request, handler) -> web.StreamResponse:
    """Negotiate, run, and echo the version on every response of the API."""
    versioned = _is_versioned(request)
    try:
        version = negotiate(request) if versioned else MIN
    except ApiError as err:
        err.headers.update(headers(MIN))
        raise
    request["compute_mv"] = version
    echo = headers(version) if versioned else {}
    if request.get("request_id"):
        # Nova's compute_req_id middleware: the request id under its old name too.
        echo["x-compute-request-id"] = request["request_id"]
    try:
        response = await handler(request)
    except ApiError as err:
        err.headers.update(echo)
        raise
    except PolicyNotAuthorized as exc:
        message = request["spec"].forbidden_message.format(rule=exc.rule)
        raise ApiError(403, message, headers=echo) from None
    except web.HTTPMethodNotAllowed:
        raise ApiError(405, "The method specified is not allowed for this resource.",
                       headers=echo) from None
    except web.HTTPNotFound:
        raise ApiError(404, "The resource could not be found.", headers=echo) from None
    response.headers.update(echo)
    return response


def versioned(handler, min_version: tuple[int, int] | None = None,
              max_version: tuple[int, int] | None = None):
    """A handler that exists only from ``min_version`` (up to ``max_version``):
    outside that range the API answers 404 as Nova does."""
    if min_version is None and max_version is None:
        return handler

    @wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        version = of(request)
        if (min_version and version < min_version) or (max_version and version > max_version):
            raise ApiError(404, "The resource could not be found.")
        return await handler(request)

    return wrapper
