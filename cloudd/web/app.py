"""The aiohttp applications: one root serving every API, and per-API listeners."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from cloudd.db import write_queue
from cloudd.runtime import api_first
from cloudd.web.auth import auth_middleware
from cloudd.web.errors import ErrorStyle, identity_style
from cloudd.web.middleware import error_middleware, request_id_middleware


@dataclass(frozen=True)
class ServiceSpec:
    """How one API is mounted: its path, its error format, its routes."""

    name: str                                   # also the DevStack path: /identity
    error_style: ErrorStyle
    forbidden_message: str                      # with {rule}
    routes: Callable[[], list[tuple[str, str, Callable]]]
    policies: dict[str, str] = field(default_factory=dict)
    # Legacy rules still accepted unless [policy] enforce_new_defaults is set.
    deprecated_policies: dict[str, str] = field(default_factory=dict)
    # Run once when the cloud starts (after the database is ready).
    on_start: Callable[[object], Awaitable[None]] | None = None
    # oslo.policy's scope_types: rule name -> the token scopes it accepts
    # ("project", "domain", "system"); checked when [policy] enforce_scope is set.
    scope_types: dict[str, list[str]] = field(default_factory=dict)
    # An aiohttp-style middleware (request, handler) run for this API's
    # requests after authentication, around routing: unmatched routes (404,
    # 405) pass through it too (Placement's microversion negotiation).
    middleware: Callable | None = None
    # The media type of an error body for this request (default JSON).
    error_media: Callable[[web.Request], str] | None = None


# Each API package exposes SPEC in its api module; later APIs add a line here.
SERVICE_MODULES = ["cloudd.services.identity.api", "cloudd.services.placement.api",
                   "cloudd.services.compute.api", "cloudd.services.image.api",
                   "cloudd.services.network.api"]

_ROOT_SPEC = ServiceSpec("", identity_style,
                         "You are not authorized to perform the requested action: {rule}.",
                         list)


def service_specs() -> list[ServiceSpec]:
    return [importlib.import_module(m).SPEC for m in SERVICE_MODULES]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


healthz.public = True  # type: ignore[attr-defined]


def _prefix_middleware(spec_for: Callable[[web.Request], tuple[ServiceSpec, str]]):
    """Tell handlers and the error renderer which API (and path prefix) this is."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        request["spec"], request["prefix"] = spec_for(request)
        return await handler(request)

    return middleware


@web.middleware
async def _service_middleware(request: web.Request, handler):
    """The API's own middleware (ServiceSpec.middleware), if it has one. A
    service API's request is foreground work: its SQLite writes queue ahead of
    the conductor's (cloudd/db/write_queue.py), and while it is in flight the
    conductor starts fewer steps (cloudd/runtime/api_first.py)."""
    if request["spec"] is _ROOT_SPEC:
        return await handler(request)
    token = write_queue.foreground()
    try:
        with api_first.request():
            own = request["spec"].middleware
            if own is None:
                return await handler(request)
            return await own(request, handler)
    finally:
        write_queue.background(token)


def _application(cloud, spec_for) -> web.Application:
    app = web.Application(
        middlewares=[_prefix_middleware(spec_for), request_id_middleware,
                     error_middleware(lambda r: r["spec"]), auth_middleware,
                     _service_middleware],
        client_max_size=cloud.config.server.max_body_bytes)
    app["cloud"] = cloud
    app["access_log"] = cloud.config.server.access_log
    return app


def build_root(cloud) -> web.Application:
    """Every API under its DevStack path on one port, plus /healthz."""
    specs = {s.name: s for s in service_specs()}

    def spec_for(request: web.Request) -> tuple[ServiceSpec, str]:
        first = request.path.lstrip("/").split("/", 1)[0]
        spec = specs.get(first)
        return (spec, f"/{first}") if spec else (_ROOT_SPEC, "")

    app = _application(cloud, spec_for)
    app.router.add_get("/healthz", healthz)
    from cloudd.services.compute import agent_hub
    agent_hub.mount(app)                        # the compute agents' websocket
    from cloudd.services.console import proxy as console_proxy
    console_proxy.mount(app)                    # noVNC and the console websockets
    for spec in specs.values():
        for method, path, handler in spec.routes():
            app.router.add_route(method, f"/{spec.name}{path}", handler)
            if path == "/":
                app.router.add_route(method, f"/{spec.name}", handler)
    return app


def build_listener(cloud, name: str) -> web.Application:
    """One API at the root of its own port (for example Placement on :8778)."""
    for spec in service_specs():
        if spec.name == name:
            app = _application(cloud, lambda r, spec=spec: (spec, ""))
            for method, path, handler in spec.routes():
                app.router.add_route(method, path, handler)
            return app
    raise ValueError(f"no API named {name!r}")
