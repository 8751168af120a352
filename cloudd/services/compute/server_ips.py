"""/servers/{id}/ips (Nova's ips API) and /servers/{id}/os-interface (the
interface attachments: list and show; attach and detach are in
attach_interfaces.py).

Both answer from the network service's vifs of the instance
(``cloud.network.vifs_for_instances``); a cloud without networking has none.
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.compute import common, instance_store, servers
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER
from cloudd.services.compute.server_views import addresses_of
from cloudd.web.errors import ApiError

IPS = "os_compute_api:ips:%s"
INTERFACES = "os_compute_api:os-attach-interfaces:%s"


async def _instance_vifs(request, rule: str):
    ctx = common.context(request)
    cloud = common.cloud(request)
    uuid = request.match_info["server_id"]
    async with cloud.db.read() as conn:
        row = await instance_store.get(conn, uuid, servers.scope(request))
        ctx.authorize(rule, {"project_id": row.project_id})
        network = cloud.compute.network
        vifs = [] if network is None else \
            (await network.vifs_for_instances(conn, [row.uuid])).get(row.uuid) or []
    return row, vifs


async def ips_index(request: web.Request) -> web.Response:
    _, vifs = await _instance_vifs(request, IPS % "index")
    return web.json_response({"addresses": addresses_of(vifs, extend=False)})


async def ips_show(request: web.Request) -> web.Response:
    _, vifs = await _instance_vifs(request, IPS % "show")
    label = request.match_info["network"]
    networks = addresses_of(vifs, extend=False)
    if label not in networks:
        raise ApiError(404, "Instance is not a member of specified network")
    return web.json_response({label: networks[label]})


def with_tag(vif: dict, row) -> dict:
    """The vif with the tag its attach gave (kept in request_spec ``port_tags``)."""
    tags = instance_store.spec_of(row).get("port_tags") or {}
    return {**vif, "tag": tags.get(vif.get("port_id"))}


def attachment(vif: dict, show_tag: bool) -> dict:
    """Nova's interface attachment view of one port."""
    out = {"net_id": vif.get("network_id"), "port_id": vif.get("port_id"),
           "mac_addr": vif.get("mac"), "port_state": vif.get("status") or "ACTIVE",
           "fixed_ips": [{"subnet_id": sub.get("id"), "ip_address": ip}
                         for sub in vif.get("subnets") or [] for ip in sub.get("ips") or []]}
    if show_tag:
        out["tag"] = vif.get("tag")
    return out


async def interfaces_index(request: web.Request) -> web.Response:
    row, vifs = await _instance_vifs(request, INTERFACES % "list")
    show_tag = common.mv(request) >= (2, 70)
    return web.json_response({"interfaceAttachments": [
        attachment(with_tag(v, row), show_tag) for v in vifs]})


async def interfaces_show(request: web.Request) -> web.Response:
    row, vifs = await _instance_vifs(request, INTERFACES % "show")
    port_id = request.match_info["port_id"]
    for vif in vifs:
        if vif.get("port_id") == port_id:
            return web.json_response({"interfaceAttachment": attachment(
                with_tag(vif, row), common.mv(request) >= (2, 70))})
    if not await _port_exists(request, port_id):
        raise ApiError(404, f"Port id {port_id} could not be found.")
    raise ApiError(404, f"Instance {row.uuid} does not have a port with id {port_id}")


async def _port_exists(request, port_id: str) -> bool:
    cloud = common.cloud(request)
    if cloud.compute.network is None:
        return False
    from cloudd.services.network import store
    async with cloud.db.read() as conn:
        return await store.port(conn, port_id) is not None


ROUTES = {
    "/servers/{server_id}/ips": {"GET": (ips_index, None)},
    "/servers/{server_id}/ips/{network}": {"GET": (ips_show, None)},
    "/servers/{server_id}/os-interface": {"GET": (interfaces_index, None)},
    "/servers/{server_id}/os-interface/{port_id}": {"GET": (interfaces_show, None)},
}

POLICIES = {
    IPS % "index": READER, IPS % "show": READER,
    INTERFACES % "list": READER, INTERFACES % "show": READER,
}
