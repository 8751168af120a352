"""os-networks (deprecated proxy, 2.1-2.35): the networks the network service has.

As Nova with Neutron: the networks the caller sees (its project's, shared
and external ones; an admin sees all), each with ``id`` and ``label`` (the
name) and every other field of nova-network's view null; an unknown or
invisible id is Nova's 404 "Network not found".
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.compute import common
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN
from cloudd.web.errors import ApiError

ROOT = "os_compute_api:os-networks:%s"
MAX = (2, 35)
FIELDS = ("id", "cidr", "netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6",
          "gateway_v6", "label", "netmask_v6")
ADMIN_FIELDS = ("created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge",
                "vlan", "vpn_public_address", "vpn_public_port", "vpn_private_address",
                "dhcp_start", "project_id", "host", "bridge_interface", "multi_host",
                "priority", "rxtx_base", "mtu", "dhcp_server", "enable_dhcp",
                "share_address")


def network_dict(network: dict, is_admin: bool) -> dict:
    """Nova's networks.network_dict: id and label, the rest null."""
    out = {}
    for name in FIELDS + (ADMIN_FIELDS if is_admin else ()):
        out[name] = network["id"] if name == "id" else \
            network["name"] if name == "label" else None
    return out


async def _networks(request, net_id: str | None = None) -> tuple[list[dict], bool]:
    ctx = common.context(request)
    cloud = common.cloud(request)
    is_admin = ctx.can("context_is_admin", {})
    if getattr(cloud, "network", None) is None:
        return [], is_admin
    import sqlalchemy as sa

    from cloudd.db import tables as t
    from cloudd.services.network import store
    where = store.visible_networks(None if is_admin else ctx.project_id)
    if net_id is not None:
        by_id = t.network.c.id == net_id
        where = by_id if where is None else sa.and_(where, by_id)
    async with cloud.db.read() as conn:
        found = await store.networks(conn, where)
    found.sort(key=lambda n: (n["created_at"], n["id"]))
    return found, is_admin


async def index(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "list", {"project_id": ctx.project_id})
    found, is_admin = await _networks(request)
    return web.json_response({"networks": [network_dict(n, is_admin) for n in found]})


async def show(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "show", {"project_id": ctx.project_id})
    found, is_admin = await _networks(request, request.match_info["network_id"])
    if not found:
        raise ApiError(404, "Network not found")
    return web.json_response({"network": network_dict(found[0], is_admin)})


ROUTES = {
    "/os-networks": {"GET": (index, None, MAX)},
    "/os-networks/{network_id}": {"GET": (show, None, MAX)},
}

POLICIES = {ROOT % "list": PROJECT_READER_OR_ADMIN, ROOT % "show": PROJECT_READER_OR_ADMIN}
