"""/servers/{id}/os-server-password (Nova's server password API).

Nova keeps the password a guest posts to the metadata service (encrypted
with its key pair) in system metadata; cloudd's guests post none, so the
password is always "" and clearing it succeeds with nothing to clear.
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.compute import common, instance_store, servers
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER

ROOT = "os_compute_api:os-server-password:%s"


async def _checked(request, rule: str) -> None:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row = await instance_store.get(conn, request.match_info["server_id"],
                                       servers.scope(request))
    ctx.authorize(ROOT % rule, {"project_id": row.project_id})


async def show(request: web.Request) -> web.Response:
    await _checked(request, "show")
    return web.json_response({"password": ""})


async def clear(request: web.Request) -> web.Response:
    await _checked(request, "clear")
    return web.Response(status=204)


ROUTES = {"/servers/{server_id}/os-server-password": {"GET": (show, None),
                                                       "DELETE": (clear, None)}}

POLICIES = {ROOT % "show": READER, ROOT % "clear": MEMBER}
