"""The Network API (Neutron v2.0 subset): version documents, the route table,
start-up (the default network, the in-process NetworkService)."""

from __future__ import annotations

from aiohttp import web

from cloudd.services.network import (
    bootstrap,
    extensions,
    networks,
    ports,
    quotas,
    secgroups,
    sg_rules,
    subnets,
    tags,
)
from cloudd.services.network.common import reply
from cloudd.services.network.policies import POLICIES, SCOPE_TYPES
from cloudd.services.network.service import NetworkService
from cloudd.web.app import ServiceSpec
from cloudd.web.auth import public
from cloudd.web.errors import network_style

RESOURCES = [("network", "networks"), ("subnet", "subnets"), ("port", "ports"),
             ("security_group", "security-groups"),
             ("security_group_rule", "security-group-rules"), ("quota", "quotas")]


def _base(request: web.Request) -> str:
    public_url = request.app["cloud"].config.server.public_url
    origin = public_url.rstrip("/") if public_url else str(request.url.origin())
    return f"{origin}{request['prefix']}"


@public
async def versions(request: web.Request) -> web.Response:
    return reply({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"rel": "self", "href": f"{_base(request)}/v2.0/"}]}]})


@public
async def version_root(request: web.Request) -> web.Response:
    base = f"{_base(request)}/v2.0"
    return reply({"resources": [
        {"name": name, "collection": coll,
         "links": [{"rel": "self", "href": f"{base}/{coll}"}]} for name, coll in RESOURCES]})


def routes() -> list[tuple[str, str, object]]:
    return [("GET", "/", versions), ("GET", "/v2.0", version_root),
            ("GET", "/v2.0/", version_root),
            *extensions.ROUTES, *networks.ROUTES, *subnets.ROUTES, *ports.ROUTES,
            *secgroups.ROUTES, *sg_rules.ROUTES, *quotas.ROUTES, *tags.ROUTES]


async def on_start(cloud) -> None:
    cloud.network = NetworkService(cloud)
    await bootstrap.ensure_default_network(cloud)


SPEC = ServiceSpec(
    name="network",
    error_style=network_style,
    forbidden_message="rule:{rule} is disallowed by policy",
    routes=routes,
    policies=POLICIES,
    on_start=on_start,
    scope_types=SCOPE_TYPES,
)
