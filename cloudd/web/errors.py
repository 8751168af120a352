"""API errors and the error body each OpenStack service uses."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web


class ApiError(Exception):
    """An error a handler wants the client to see, in its service's format.

    ``code`` is Placement's stable error code; other services ignore it.
    ``kind`` is Neutron's error type (for example ``NetworkNotFound``).
    """

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 kind: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.kind = kind
        self.headers = headers or {}


def bad_request(message: str, **kw) -> ApiError:
    return ApiError(400, message, **kw)


def unauthorized(message: str = "The request you have made requires authentication.",
                 **kw) -> ApiError:
    return ApiError(401, message, **kw)


def forbidden(message: str, **kw) -> ApiError:
    return ApiError(403, message, **kw)


def not_found(message: str, **kw) -> ApiError:
    return ApiError(404, message, **kw)


def conflict(message: str, **kw) -> ApiError:
    return ApiError(409, message, **kw)


def title_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# An ErrorStyle turns (status, message, error, request_id) into a JSON body.
ErrorStyle = Callable[[int, str, ApiError | None, str], dict]


def identity_style(status: int, message: str, err: ApiError | None, rid: str) -> dict:
    return {"error": {"code": status, "title": title_for(status), "message": message}}


_NOVA_FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
    405: "badMethod", 406: "notAcceptable", 409: "conflictingRequest",
    413: "overLimit", 415: "badMediaType", 429: "overLimit", 501: "notImplemented",
    503: "serviceUnavailable",
}


def compute_style(status: int, message: str, err: ApiError | None, rid: str) -> dict:
    """Nova's (and Cinder's) fault body."""
    return {_NOVA_FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}


def placement_style(status: int, message: str, err: ApiError | None, rid: str) -> dict:
    code = (err.code if err and err.code else None) or "placement.undefined_code"
    return {"errors": [{"status": status, "title": title_for(status), "detail": message,
                        "code": code, "request_id": rid}]}


def network_style(status: int, message: str, err: ApiError | None, rid: str) -> dict:
    kind = (err.kind if err and err.kind else None) or title_for(status).replace(" ", "")
    return {"NeutronError": {"type": kind, "message": message, "detail": ""}}


def error_response(style: ErrorStyle, status: int, message: str, request: web.Request,
                   err: ApiError | None = None,
                   headers: dict[str, str] | None = None,
                   media: str = "application/json") -> web.Response:
    """The error in the API's format: JSON, or (for an API that negotiates error
    bodies, as Placement's WebOb does) text/html or text/plain."""
    rid = request.get("request_id", "")
    if media == "text/html":
        text = (f"<html>\n <head>\n  <title>{status} {title_for(status)}</title>\n </head>\n"
                f" <body>\n  <h1>{status} {title_for(status)}</h1>\n"
                f"  {html.escape(message)}<br /><br />\n\n\n\n </body>\n</html>")
        body = text.encode()
    elif media == "text/plain":
        body = f"{status} {title_for(status)}\n\n{message}\n\n   ".encode()
    else:
        media = "application/json"
        body = json.dumps(style(status, message, err, rid)).encode()
    # A body of bytes: the content type stays exactly what it says (no charset).
    return web.Response(body=body, status=status, headers=headers, content_type=media)


def image_style(status: int, message: str, err: ApiError | None, rid: str) -> dict:
    """Glance's error body for a JSON client: WebOb's HTTPException as JSON
    (the explanation followed by WebOb's body template's line breaks)."""
    return {"message": f"{message}<br /><br />\n\n\n", "code": f"{status} {title_for(status)}",
            "title": title_for(status)}
