"""os-networks (deprecated proxy, 2.1-2.35): the networks the network service has.

Nova answers from Neutron. cloudd has no network service, so the list is
empty and any network id is Nova's 404 "Network not found".
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.compute import common
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN
from cloudd.web.errors import ApiError

ROOT = "os_compute_api:os-networks:%s"
MAX = (2, 35)


async def index(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "list", {"project_id": ctx.project_id})
    return web.json_response({"networks": []})


async def show(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "show", {"project_id": ctx.project_id})
    raise ApiError(404, "Network not found")


ROUTES = {
    "/os-networks": {"GET": (index, None, MAX)},
    "/os-networks/{network_id}": {"GET": (show, None, MAX)},
}

POLICIES = {ROOT % "list": PROJECT_READER_OR_ADMIN, ROOT % "show": PROJECT_READER_OR_ADMIN}
