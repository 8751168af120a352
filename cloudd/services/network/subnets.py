"""Subnets: IPv4 and IPv6 ranges of a network with their gateway, allocation
pools, DNS name servers and host routes (checks in ipam.py)."""

from __future__ import annotations

import ipaddress
import json

import sqlalchemy as sa
from aiohttp import web

from cloudd.db import tables as t
from cloudd.services.network import common, ipam, networks, quotas, secgroups, store, tags
from cloudd.services.network.common import (
    bad_request,
    enforce,
    error,
    invalid_attr,
    invalid_input,
    new_id,
    utcnow,
)

N, P, S, A = t.network, t.port, t.subnet, t.ip_allocation
CREATE_ATTRS = {"name", "description", "network_id", "ip_version", "cidr", "gateway_ip",
                "enable_dhcp", "allocation_pools", "dns_nameservers", "host_routes",
                "ipv6_ra_mode", "ipv6_address_mode", "project_id", "tenant_id",
                "subnetpool_id", "service_types"}
UPDATE_ATTRS = {"name", "description", "gateway_ip", "enable_dhcp", "allocation_pools",
                "dns_nameservers", "host_routes"}
READ_ONLY = {"network_id", "ip_version", "cidr", "ipv6_ra_mode", "ipv6_address_mode",
             "project_id", "tenant_id", "id", "subnetpool_id"}
SORTABLE = {"id", "name", "description", "project_id", "tenant_id", "network_id",
            "ip_version", "cidr", "gateway_ip", "enable_dhcp", "created_at", "updated_at",
            "revision_number", "ipv6_ra_mode", "ipv6_address_mode"}


def _version(value) -> int:
    try:
        version = int(value)
    except (TypeError, ValueError):
        version = None
    if isinstance(value, bool) or version not in (4, 6):
        raise invalid_attr("ip_version", f"{value} is not in [4, 6]")
    return version


async def insert(conn, net: dict, project_id: str, body: dict) -> dict:
    """A new subnet row on ``net`` with Neutron's checks and defaults."""
    if body.get("subnetpool_id") is not None:
        raise bad_request("Subnet pools are not supported")
    if "cidr" not in body or body["cidr"] is None:
        raise bad_request("A cidr must be specified in the absence of a subnet pool")
    version = _version(body.get("ip_version", 4))
    cidr = ipam.parse_cidr(body["cidr"])
    if cidr.version != version:
        raise invalid_input(f"cidr '{cidr}' does not match the ip_version '{version}'")
    if version == 4 and cidr.prefixlen == 0 or version == 6 and cidr.prefixlen == 0:
        raise invalid_input(f"{cidr} is not a valid subnet CIDR")
    enable_dhcp = common.to_bool(body.get("enable_dhcp", True), "enable_dhcp")
    ipam.check_v6_modes(body, version, enable_dhcp, cidr)
    for other in await store.subnets(conn, S.c.network_id == net["id"]):
        if cidr.overlaps(ipaddress.ip_network(other["cidr"])):
            raise invalid_input(f"Requested subnet with cidr: {cidr} for network: "
                                f"{net['id']} overlaps with another subnet")
    if "gateway_ip" in body:
        gateway = ipam.check_gateway(body["gateway_ip"], cidr)
    else:
        gateway = ipam.default_gateway(cidr)
    if body.get("allocation_pools") is not None:
        pools = ipam.check_pools(body["allocation_pools"], cidr, gateway)
    else:
        pools = ipam.default_pools(cidr, gateway)
    now = utcnow()
    row = {"id": new_id(), "project_id": project_id, "network_id": net["id"],
           "name": body.get("name") or "", "description": body.get("description") or "",
           "ip_version": version, "cidr": str(cidr),
           "gateway_ip": str(gateway) if gateway is not None else None,
           "enable_dhcp": enable_dhcp, "ipv6_ra_mode": body.get("ipv6_ra_mode"),
           "ipv6_address_mode": body.get("ipv6_address_mode"),
           "allocation_pools": json.dumps(pools),
           "dns_nameservers": json.dumps(ipam.check_dns(body.get("dns_nameservers") or [],
                                                        version)),
           "host_routes": json.dumps(ipam.check_routes(body.get("host_routes") or [],
                                                       version)),
           "tags": "[]", "revision_number": 0, "created_at": now, "updated_at": now}
    await conn.execute(S.insert().values(**row))
    return row


def _target(row: dict, net: dict | None) -> dict:
    out = store.subnet_view(row)
    if net is not None:
        out["network:project_id"] = net["project_id"]
        out["network:tenant_id"] = net["project_id"]
        out["shared"] = net["shared"]
    return out


async def _visible(conn, ctx, subnet_id: str) -> tuple[dict, dict]:
    row = await store.subnet(conn, subnet_id)
    net = await store.network(conn, row["network_id"]) if row else None
    if row is None or not ctx.can("get_subnet", _target(row, net)):
        raise store.subnet_not_found(subnet_id)
    return row, net


# -- handlers ----------------------------------------------------------------------------

async def list_subnets(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        where = None
        if not common.is_admin(ctx):
            shared = sa.select(N.c.id).where(sa.or_(N.c.shared == sa.true(),
                                                    N.c.project_id == ctx.project_id))
            where = sa.or_(S.c.project_id == ctx.project_id, S.c.network_id.in_(shared))
        rows = await store.subnets(conn, where)
        nets = {n["id"]: n for n in await store.networks(
            conn, N.c.id.in_({r["network_id"] for r in rows}))} if rows else {}
    items = [store.subnet_view(r) for r in rows
             if ctx.can("get_subnet", _target(r, nets.get(r["network_id"])))]
    return common.listing(request, "subnets", items, SORTABLE,
                          special=tags.special_filters())


async def show_subnet(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row, _ = await _visible(conn, ctx, request.match_info["id"])
    return common.one(request, "subnet", store.subnet_view(row))


async def create_subnet(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    body = await common.body_of(request, "subnet")
    common.check_attrs(body, CREATE_ATTRS)
    for attr in ("name", "description"):
        common.check_string(body, attr)
    if "network_id" not in body:
        raise bad_request("Failed to parse request. Required attribute 'network_id' not "
                          "specified")
    net_id = common.check_uuid(body["network_id"], "network_id")
    project = common.owner_of(ctx, body)
    async with cloud.db.write() as conn:
        net = await networks.visible(conn, ctx, net_id, lock=True)
        enforce(ctx, "create_subnet", {"project_id": project, "tenant_id": project,
                                       "network:project_id": net["project_id"],
                                       "network:tenant_id": net["project_id"]})
        if net["project_id"] != project and not common.is_admin(ctx):
            raise store.network_not_found(net_id)
        await quotas.check(conn, cloud.config, project, "subnet")
        row = await insert(conn, net, project, body)
    return common.one(request, "subnet", store.subnet_view(row), 201)


async def update_subnet(request: web.Request) -> web.Response:
    ctx = common.context(request)
    body = await common.body_of(request, "subnet")
    ro = sorted(set(body) & READ_ONLY)
    if ro:
        raise bad_request(f"Cannot update read-only attribute {ro[0]}")
    common.check_attrs(body, UPDATE_ATTRS)
    for attr in ("name", "description"):
        common.check_string(body, attr)
    async with common.cloud(request).db.write() as conn:
        row, net = await _visible(conn, ctx, request.match_info["id"])
        enforce(ctx, "update_subnet", _target(row, net))
        cidr = ipaddress.ip_network(row["cidr"])
        values: dict = {k: body[k] for k in ("name", "description") if k in body}
        gateway = ipaddress.ip_address(row["gateway_ip"]) if row["gateway_ip"] else None
        if "gateway_ip" in body:
            gateway = ipam.check_gateway(body["gateway_ip"], cidr)
            values["gateway_ip"] = str(gateway) if gateway is not None else None
        if "enable_dhcp" in body:
            values["enable_dhcp"] = common.to_bool(body["enable_dhcp"], "enable_dhcp")
        pools = json.loads(row["allocation_pools"])
        if body.get("allocation_pools") is not None:
            pools = ipam.check_pools(body["allocation_pools"], cidr, gateway)
            values["allocation_pools"] = json.dumps(pools)
        elif "gateway_ip" in body and gateway is not None:
            ipam.check_pools(pools, cidr, gateway)
        if "dns_nameservers" in body:
            values["dns_nameservers"] = json.dumps(
                ipam.check_dns(body["dns_nameservers"] or [], cidr.version))
        if "host_routes" in body:
            values["host_routes"] = json.dumps(
                ipam.check_routes(body["host_routes"] or [], cidr.version))
        values.update(updated_at=utcnow(), revision_number=row["revision_number"] + 1)
        await conn.execute(S.update().where(S.c.id == row["id"]).values(**values))
        row.update(values)
        await secgroups.notify_network(common.cloud(request), conn, row["network_id"])
    return common.one(request, "subnet", store.subnet_view(row))


async def delete_subnet(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.write() as conn:
        row, net = await _visible(conn, ctx, request.match_info["id"])
        enforce(ctx, "delete_subnet", _target(row, net))
        busy = (await conn.execute(
            sa.select(sa.func.count()).select_from(A.join(P, P.c.id == A.c.port_id))
            .where(A.c.subnet_id == row["id"], P.c.device_owner != "network:dhcp"))
        ).scalar_one()
        if busy:
            raise error(409, "SubnetInUse",
                        f"Unable to complete operation on subnet {row['id']}: One or more "
                        "ports have an IP allocation from this subnet.")
        await conn.execute(A.delete().where(A.c.subnet_id == row["id"]))
        await conn.execute(S.delete().where(S.c.id == row["id"]))
    return web.Response(status=204)


ROUTES = [
    ("GET", "/v2.0/subnets", list_subnets),
    ("POST", "/v2.0/subnets", create_subnet),
    ("GET", "/v2.0/subnets/{id}", show_subnet),
    ("PUT", "/v2.0/subnets/{id}", update_subnet),
    ("DELETE", "/v2.0/subnets/{id}", delete_subnet),
]
