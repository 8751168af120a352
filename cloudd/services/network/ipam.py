"""IP address management: subnet attribute checks and defaults (gateway,
allocation pools, name servers, host routes, IPv6 modes) and port address
allocation, with Neutron's errors (neutron/db/ipam_backend_mixin.py,
ipam_pluggable_backend.py, neutron/ipam/utils.py).

Addresses are handed out lowest free first from the allocation pools; the
``ip_allocation`` primary key (subnet, address) keeps two ports off one address.
"""

from __future__ import annotations

import ipaddress
import itertools
import json

import sqlalchemy as sa

from cloudd.db import tables as t
from cloudd.services.network.common import bad_request, error, invalid_attr, invalid_input

MAX_DNS = 5
MAX_ROUTES = 20
V6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def _ip(value, attr: str):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise invalid_attr(attr, f"'{value}' is not a valid IP address") from None


def parse_cidr(value, attr: str = "cidr"):
    if not isinstance(value, str) or "/" not in value:
        raise invalid_attr(attr, f"'{value}' is not a valid IP subnet")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise invalid_attr(attr, f"'{value}' is not a valid IP subnet") from None
    if iface.ip != iface.network.network_address:
        raise invalid_attr(attr, f"'{value}' isn't a recognized IP subnet cidr, "
                                 f"'{iface.network}' is recommended")
    return iface.network


def pool_str(start, end) -> str:
    return f"{start}-{end}"


def default_gateway(net):
    if net.num_addresses < 2:
        return None
    return net.network_address + 1


def default_pools(net, gateway) -> list[dict]:
    """The subnet's addresses less the network (and IPv4 broadcast) address,
    split around the gateway, as Neutron's generate_pools."""
    if net.num_addresses < 2 and net.version == 4:
        return []
    first = net.network_address + 1
    last = net.broadcast_address - 1 if net.version == 4 else net.broadcast_address
    if net.version == 4 and net.prefixlen >= 31:
        first, last = net.network_address, net.broadcast_address
    ranges = [(first, last)]
    if gateway is not None and first <= gateway <= last:
        ranges = [(first, gateway - 1), (gateway + 1, last)]
    return [{"start": str(a), "end": str(b)} for a, b in ranges if a <= b]


def check_pools(pools, net, gateway) -> list[dict]:
    if not isinstance(pools, list):
        raise invalid_attr("allocation_pools", f"Invalid data format for IP pool: '{pools}'")
    parsed = []
    for pool in pools:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise invalid_attr("allocation_pools", f"Invalid data format for IP pool: "
                                                   f"'{pool}'")
        start, end = _ip(pool["start"], "allocation_pools"), _ip(pool["end"],
                                                                 "allocation_pools")
        if start.version != net.version or end.version != net.version or start > end:
            raise error(400, "InvalidAllocationPool",
                        f"The allocation pool {pool_str(start, end)} is not valid.")
        if start not in net or end not in net or (
                net.version == 4 and net.prefixlen < 31 and (
                    start == net.network_address or end == net.broadcast_address)):
            raise error(400, "OutOfBoundsAllocationPool",
                        f"The allocation pool {pool_str(start, end)} spans beyond the "
                        f"subnet cidr {net}.")
        parsed.append((start, end))
    ordered = sorted(parsed)
    for (a1, b1), (a2, b2) in itertools.pairwise(ordered):
        if a2 <= b1:
            raise error(400, "OverlappingAllocationPools",
                        f"Found overlapping allocation pools: {pool_str(a1, b1)} "
                        f"{pool_str(a2, b2)} for subnet {net}.")
    if gateway is not None:
        for a, b in parsed:
            if a <= gateway <= b:
                raise error(409, "GatewayConflictWithAllocationPools",
                            f"Gateway ip {gateway} conflicts with allocation pool "
                            f"{pool_str(a, b)}")
    return [{"start": str(a), "end": str(b)} for a, b in parsed]


def check_gateway(value, net):
    if value is None:
        return None
    gw = _ip(value, "gateway_ip")
    if gw.version != net.version:
        raise invalid_input(f"gateway_ip '{gw}' does not match the ip_version "
                            f"'{net.version}'")
    if gw in net and net.version == 4 and net.prefixlen < 31 and \
            gw in (net.network_address, net.broadcast_address):
        raise invalid_input("Gateway is not valid on subnet")
    if net.version == 6 and gw == net.network_address:
        raise invalid_input("Gateway is not valid on subnet")
    return gw


def check_dns(values, version: int) -> list[str]:
    if not isinstance(values, list):
        raise invalid_attr("dns_nameservers", f"'{values}' is not a list")
    if len(values) > MAX_DNS:
        raise error(400, "DNSNameServersExhausted",
                    "Unable to complete operation for the subnet. The number of DNS "
                    f"nameservers exceeds the limit {MAX_DNS}.")
    out = []
    for v in values:
        ip = _ip(v, "dns_nameservers")
        if str(ip) in out:
            raise invalid_attr("dns_nameservers", f"Duplicate nameserver '{ip}'")
        out.append(str(ip))
    return out


def check_routes(values, version: int) -> list[dict]:
    if not isinstance(values, list):
        raise invalid_attr("host_routes", f"'{values}' is not a list")
    if len(values) > MAX_ROUTES:
        raise error(400, "HostRoutesExhausted",
                    "Unable to complete operation for the subnet. The number of host "
                    f"routes exceeds the limit {MAX_ROUTES}.")
    out = []
    for route in values:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise invalid_attr("host_routes", f"Validation of dictionary's keys failed. "
                                              f"Expected keys: {{'destination', 'nexthop'}}"
                                              f" Provided keys: {route}")
        dest = parse_cidr(route["destination"], "host_routes")
        hop = _ip(route["nexthop"], "host_routes")
        if dest.version != version or hop.version != version:
            raise invalid_input(f"host_route '{route['destination']}' does not match the "
                                f"ip_version '{version}'")
        item = {"destination": str(dest), "nexthop": str(hop)}
        if item in out:
            raise invalid_attr("host_routes", f"Duplicate hostroute '{route}'")
        out.append(item)
    return out


def check_v6_modes(body: dict, version: int, enable_dhcp: bool, net) -> None:
    ra, addr = body.get("ipv6_ra_mode"), body.get("ipv6_address_mode")
    for attr, value in (("ipv6_ra_mode", ra), ("ipv6_address_mode", addr)):
        if value is not None and value not in V6_MODES:
            raise invalid_attr(attr, f"'{value}' is not in {list(V6_MODES)}")
    if ra is None and addr is None:
        return
    if version == 4:
        raise invalid_input(f"{'ipv6_ra_mode' if ra else 'ipv6_address_mode'} is not valid "
                            "when ip_version is 4")
    if not enable_dhcp:
        raise invalid_input("ipv6_ra_mode or ipv6_address_mode cannot be set when "
                            "enable_dhcp is set to False")
    if ra and addr and ra != addr:
        raise invalid_input(f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to "
                            f"'{addr}' is not valid. If both attributes are set, they must "
                            "be the same value")
    if (addr or ra) in ("slaac", "dhcpv6-stateless") and net.prefixlen != 64:
        raise invalid_input(f"Invalid CIDR {net} for IPv6 address mode. OpenStack uses the "
                            "EUI-64 address format, which requires the prefix to be /64")


def is_auto_address(subnet: dict) -> bool:
    return subnet["ip_version"] == 6 and (
        subnet["ipv6_address_mode"] in ("slaac", "dhcpv6-stateless")
        or (subnet["ipv6_address_mode"] is None
            and subnet["ipv6_ra_mode"] in ("slaac", "dhcpv6-stateless")))


def eui64(cidr: str, mac: str) -> str:
    raw = bytearray(int(b, 16) for b in mac.split(":"))
    raw[0] ^= 0x02
    iid = bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:])
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + int.from_bytes(iid, "big"))


# -- allocation --------------------------------------------------------------------------

async def allocated(conn, subnet_id: str) -> set[str]:
    A = t.ip_allocation
    return set((await conn.execute(sa.select(A.c.ip_address)
                                   .where(A.c.subnet_id == subnet_id))).scalars().all())


def _free_in(subnet: dict, used: set[str]) -> str | None:
    for pool in json.loads(subnet["allocation_pools"] or "[]"):
        ip = ipaddress.ip_address(pool["start"])
        end = ipaddress.ip_address(pool["end"])
        while ip <= end:
            if str(ip) not in used:
                return str(ip)
            ip += 1
    return None


def _subnet_for(ip, subnets: list[dict]) -> dict | None:
    for s in subnets:
        if ip in ipaddress.ip_network(s["cidr"]):
            return s
    return None


def _check_specific(ip, subnet: dict, is_router: bool) -> None:
    net = ipaddress.ip_network(subnet["cidr"])
    if ip not in net or (net.version == 4 and net.prefixlen < 31 and ip in (
            net.network_address, net.broadcast_address)):
        raise error(400, "InvalidIpForSubnet",
                    f"IP address {ip} is not a valid IP for the specified subnet.")
    if not is_router and subnet["gateway_ip"] and str(ip) == subnet["gateway_ip"]:
        raise error(409, "IpAddressAlreadyAllocated",
                    f"IP address {ip} already allocated in subnet {subnet['id']}")


async def plan(conn, network_id: str, subnets: list[dict], requested: list[dict] | None,
               mac: str, *, device_owner: str = "", exclude_port: str | None = None
               ) -> list[dict]:
    """The fixed IPs a port gets: ``requested`` ({subnet_id?, ip_address?} items)
    checked, or (None) one address of each IP version and every SLAAC address.

    The caller has locked the network's subnets (SELECT ... FOR UPDATE)."""
    is_router = device_owner.startswith("network:router")
    out: list[dict] = []
    taken: dict[str, set[str]] = {}

    async def used(sid: str) -> set[str]:
        if sid not in taken:
            taken[sid] = await allocated(conn, sid)
            if exclude_port:
                A = t.ip_allocation
                mine = (await conn.execute(sa.select(A.c.ip_address).where(
                    A.c.subnet_id == sid, A.c.port_id == exclude_port))).scalars().all()
                taken[sid] -= set(mine)
        return taken[sid]

    if requested is None:
        for version in (4, 6):
            stateful = [s for s in subnets if s["ip_version"] == version
                        and not is_auto_address(s)]
            for s in stateful:
                free = _free_in(s, await used(s["id"]))
                if free:
                    out.append({"subnet_id": s["id"], "ip_address": free})
                    break
            else:
                if stateful:
                    raise error(409, "IpAddressGenerationFailure",
                                f"No more IP addresses available on network {network_id}.")
        for s in subnets:
            if is_auto_address(s):
                out.append({"subnet_id": s["id"], "ip_address": eui64(s["cidr"], mac)})
        for item in out:
            if item["ip_address"] in await used(item["subnet_id"]):
                raise error(409, "IpAddressAlreadyAllocated",
                            f"IP address {item['ip_address']} already allocated in subnet "
                            f"{item['subnet_id']}")
        return out
    by_id = {s["id"]: s for s in subnets}
    for req in requested:
        if not isinstance(req, dict) or not set(req) <= {"subnet_id", "ip_address"} or \
                not req:
            raise bad_request(f"Invalid input for fixed_ips. Reason: Invalid data format "
                              f"for fixed IP: '{req}'.")
        sid, addr = req.get("subnet_id"), req.get("ip_address")
        if sid is not None and sid not in by_id:
            raise invalid_input(f"Failed to create port on network {network_id}, because "
                                f"fixed_ips included invalid subnet {sid}")
        if addr is not None:
            ip = _ip(addr, "fixed_ips")
            subnet = by_id[sid] if sid else _subnet_for(ip, subnets)
            if subnet is None:
                raise error(400, "InvalidIpForNetwork",
                            f"IP address {ip} is not a valid IP for any of the subnets on "
                            "the specified network.")
            _check_specific(ip, subnet, is_router)
            if str(ip) in await used(subnet["id"]) or any(
                    o["ip_address"] == str(ip) for o in out):
                raise error(409, "IpAddressAlreadyAllocated",
                            f"IP address {ip} already allocated in subnet {subnet['id']}")
            out.append({"subnet_id": subnet["id"], "ip_address": str(ip)})
        else:
            subnet = by_id[sid]
            if is_auto_address(subnet):
                free = eui64(subnet["cidr"], mac)
            else:
                busy = await used(sid) | {o["ip_address"] for o in out}
                free = _free_in(subnet, busy)
            if free is None:
                raise error(409, "IpAddressGenerationFailure",
                            f"No more IP addresses available on network {network_id}.")
            out.append({"subnet_id": sid, "ip_address": free})
    return out


async def store(conn, port_id: str, network_id: str, fixed_ips: list[dict]) -> None:
    A = t.ip_allocation
    await conn.execute(A.delete().where(A.c.port_id == port_id))
    for item in fixed_ips:
        await conn.execute(A.insert().values(port_id=port_id, subnet_id=item["subnet_id"],
                                             network_id=network_id,
                                             ip_address=item["ip_address"]))


async def holder_of(conn, network_id: str, ip) -> tuple[dict | None, str | None]:
    """The subnet of the network that address ``ip`` falls in (None: none of
    them) and the device id of the port holding it (None: free)."""
    subnets = (await conn.execute(sa.select(t.subnet).where(
        t.subnet.c.network_id == network_id))).mappings().all()
    subnet = next((dict(s) for s in subnets if ip in ipaddress.ip_network(s["cidr"])), None)
    if subnet is None:
        return None, None
    A, P = t.ip_allocation, t.port
    row = (await conn.execute(
        sa.select(P.c.device_id).select_from(A.join(P, P.c.id == A.c.port_id))
        .where(A.c.subnet_id == subnet["id"], A.c.ip_address == str(ip)))).first()
    return subnet, (None if row is None else row.device_id)
