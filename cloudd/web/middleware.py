"""Middlewares: request ids and access log (root), error bodies (per API)."""

from __future__ import annotations

import json
import logging
import time
import uuid

from aiohttp import web

from cloudd.policy import PolicyNotAuthorized
from cloudd.web.errors import ApiError, error_response

access_log = logging.getLogger("cloudd.access")
log = logging.getLogger("cloudd.web")

REQUEST_ID_HEADER = "x-openstack-request-id"


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    """Give every request an id, echo it on the response, log one line."""
    rid = new_request_id()
    request["request_id"] = rid
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    finally:
        if request.app["access_log"]:
            access_log.info(
                "request", extra={"fields": {
                    "request_id": rid, "remote": request.remote, "method": request.method,
                    "path": request.path, "status": status,
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                    "user_id": (request.get("ctx").user_id if request.get("ctx") else None),
                }})
    response.headers[REQUEST_ID_HEADER] = rid
    return response


def error_middleware(spec_for):
    """Render every failure in the API's own error format; never a traceback.

    ``spec_for(request)`` gives the ServiceSpec whose format applies.
    """

    @web.middleware
    async def middleware(request: web.Request, handler):
        spec = spec_for(request)
        style = spec.error_style
        media = spec.error_media(request) if spec.error_media else "application/json"
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(style, err.status, err.message, request, err, err.headers,
                                  media=media)
        except PolicyNotAuthorized as exc:
            return error_response(style, 403, spec.forbidden_message.format(rule=exc.rule),
                                  request, media=media)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {}
            if exc.status == 405 and "Allow" in exc.headers:
                headers["Allow"] = exc.headers["Allow"]
            return error_response(style, exc.status, _http_message(exc), request, None,
                                  headers, media=media)
        except Exception:
            log.exception("unexpected error serving %s %s (request %s)",
                          request.method, request.path, request.get("request_id"))
            return error_response(
                style, 500, "An unexpected error prevented the server from fulfilling "
                "your request.", request, media=media)

    return middleware


def _http_message(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "The resource could not be found."
    if exc.status == 405:
        return "The method is not allowed for the requested URL."
    if exc.status == 413:
        return "Request body too large."
    return exc.reason


async def read_json(request: web.Request, *, empty_ok: bool = False) -> dict:
    """The request body as a JSON object, or a 400 in the API's own format;
    ``empty_ok``: no body at all reads as {}."""
    raw = await request.read()
    if not raw and empty_ok:
        return {}                       # whatever Content-Type a bodiless request names
    ctype = request.content_type
    if ctype not in ("application/json", "") \
            and not ctype.endswith("+json"):
        raise ApiError(400, f"Content-Type {ctype} is not supported; send application/json.")
    if not raw:
        raise ApiError(400, "The request body is empty; a JSON object is expected.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body
