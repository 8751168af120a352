"""Vifs: a port as the host plumbing needs it (the spawn spec's ``network_info``
element, docs/network-design.md), with its security group rules: a remote
prefix as a prefix, a remote group by name, with that group's members in the
vif's ``security_group_members`` (sg_members.py)."""

from __future__ import annotations

import ipaddress

import sqlalchemy as sa

from cloudd.db import tables as t
from cloudd.services.network import secgroups, sg_members, store
from cloudd.services.network.common import loads

P, PSG, A = t.port, t.port_security_group, t.ip_allocation

# Protocol names Neutron accepts and their numbers; tcp, udp and icmp stay names.
PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
    "icmpv6": 58, "igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44,
    "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
    "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
_NAMED = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}


def wire_protocol(protocol: str | None) -> str | None:
    """None (any), "tcp", "udp", "icmp" (ICMP or ICMPv6 by the rule's ethertype),
    or the protocol number as a string."""
    if protocol in (None, "", "any"):
        return None
    number = PROTOCOLS.get(protocol)
    if number is None:
        number = int(protocol)
    return _NAMED.get(number, str(number))


def bridge_name(network_id: str) -> str:
    return f"cdbr-{network_id[:10]}"


def tap_name(port_id: str) -> str:
    return f"tap{port_id[:11]}"


async def _rules_for(conn, group_ids: list[str], cache: dict) -> list[dict]:
    """The wire rules of ports in these groups; ``cache`` gains the members of
    every group a rule names as remote group (sg_members.snapshot)."""
    rules = await secgroups.rules(conn, R_IN(group_ids))
    remotes = {r["remote_group_id"] for r in rules if r["remote_group_id"]}
    missing = remotes - set(cache)
    if missing:
        cache.update(await sg_members.snapshot(conn, missing))
    out = []
    for r in rules:
        version = 4 if r["ethertype"] == "IPv4" else 6
        item = {"direction": r["direction"], "ethertype": r["ethertype"],
                "protocol": wire_protocol(r["protocol"]),
                "port_range_min": r["port_range_min"], "port_range_max": r["port_range_max"]}
        if r["remote_group_id"]:
            # The agent matches the group's member set; an older agent, which
            # knows only remote_ip_prefixes, matches nothing (fails closed).
            item["remote_group_id"] = r["remote_group_id"]
            item["remote_ip_prefixes"] = []
        elif r["remote_ip_prefix"]:
            item["remote_ip_prefixes"] = [
                str(ipaddress.ip_network(r["remote_ip_prefix"], strict=False))]
        else:
            item["remote_ip_prefixes"] = ["0.0.0.0/0" if version == 4 else "::/0"]
        if item not in out:
            out.append(item)
    return out


def R_IN(group_ids: list[str]):
    return t.security_group_rule.c.security_group_id.in_(group_ids)


def _host_address(net: dict, subnets: list[dict], dhcp: dict | None) -> str | None:
    v4 = [s for s in subnets if s["ip_version"] == 4]
    if net["network_type"] == "local":
        for s in v4:
            if s["gateway_ip"]:
                return f"{s['gateway_ip']}/{ipaddress.ip_network(s['cidr']).prefixlen}"
    if dhcp is not None:
        for ip in dhcp["fixed_ips"]:
            for s in v4:
                if s["id"] == ip["subnet_id"]:
                    return f"{ip['ip_address']}/{ipaddress.ip_network(s['cidr']).prefixlen}"
    return None


async def for_ports(conn, ports: list[dict]) -> list[dict]:
    """The vif of each port, in order."""
    nets: dict[str, dict] = {}
    subs: dict[str, list[dict]] = {}
    dhcp: dict[tuple[str, str], dict | None] = {}
    members: dict[str, dict] = {}
    out = []
    for port in ports:
        nid = port["network_id"]
        if nid not in nets:
            nets[nid] = await store.network(conn, nid)
            subs[nid] = await store.subnets(conn, t.subnet.c.network_id == nid)
        net, subnets = nets[nid], subs[nid]
        key = (nid, port["binding_host_id"])
        if key not in dhcp:
            found = await store.ports(conn, sa.and_(
                P.c.network_id == nid, P.c.device_owner == "network:dhcp",
                P.c.device_id == f"dhcp-{port['binding_host_id']}"))
            dhcp[key] = found[0] if found else None
        by_subnet: dict[str, list[str]] = {}
        for ip in port["fixed_ips"]:
            by_subnet.setdefault(ip["subnet_id"], []).append(ip["ip_address"])
        vif_subnets = [{"id": s["id"], "cidr": s["cidr"], "ip_version": s["ip_version"],
                        "gateway_ip": s["gateway_ip"],
                        "dns_nameservers": loads(s["dns_nameservers"], []),
                        "host_routes": loads(s["host_routes"], []),
                        "enable_dhcp": s["enable_dhcp"], "ips": by_subnet[s["id"]]}
                       for s in subnets if s["id"] in by_subnet]
        rules = []
        if port["port_security_enabled"] and port["security_groups"]:
            rules = await _rules_for(conn, port["security_groups"], members)
        remotes = sorted({r["remote_group_id"] for r in rules if r.get("remote_group_id")})
        out.append({
            "port_id": port["id"], "mac": port["mac_address"], "network_id": nid,
            "network_name": net["name"], "bridge": bridge_name(nid),
            "tap": tap_name(port["id"]), "mtu": net["mtu"],
            "network_type": net["network_type"],
            "physical_network": net["physical_network"],
            "segmentation_id": net["segmentation_id"],
            "host_address": _host_address(net, subnets, dhcp[key]),
            "nat": net["network_type"] == "local",
            "subnets": vif_subnets,
            "port_security_enabled": port["port_security_enabled"],
            "security_group_rules": rules,
            "security_group_members": {g: members[g] for g in remotes},
            "status": port["status"],
        })
    return out
