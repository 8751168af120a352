"""The nftables rulesets: security groups (bridge family) and NAT/metadata DNAT.

Both tables are rendered whole from the current vifs and replaced atomically
(one ``nft -f -`` transaction), so stale chains never survive a change or a
restart. A rule whose remote is a security group matches a named set of that
group's member addresses (``sg4-…``/``sg6-…`` in the bridge table, one per
group and ethertype that a plugged vif's rule names); a membership change
refills the set alone (``set_update``).
"""

from __future__ import annotations

import ipaddress

FILTER = "cloudd"          # table bridge cloudd
NAT = "cloudd_nat"         # table ip cloudd_nat
METADATA_IP = "169.254.169.254"


def _q(name: str) -> str:
    return f'"{name}"'


def _set(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _ipv4s(vif: dict) -> list[str]:
    return [ip for s in vif.get("subnets") or [] if s.get("ip_version") == 4
            for ip in s.get("ips") or []]


def set_name(group_id: str, ethertype: str) -> str:
    """The nft set of a remote group's member addresses of one ethertype."""
    kind = "6" if ethertype == "IPv6" else "4"
    return f"sg{kind}-" + "".join(c for c in group_id if c.isalnum())[:24]


def referenced_sets(vifs: list[dict]) -> set[tuple[str, str]]:
    """(group_id, ethertype) of every remote group a filtered vif's rule names."""
    return {(r["remote_group_id"], r.get("ethertype") or "IPv4")
            for v in vifs if v.get("port_security_enabled", True)
            for r in v.get("security_group_rules") or [] if r.get("remote_group_id")}


def _elements(members: dict | None, ethertype: str) -> list[str]:
    version = 6 if ethertype == "IPv6" else 4
    out = set()
    for p in (members or {}).get(ethertype) or []:
        net = ipaddress.ip_network(p, strict=False)
        if net.version == version:
            out.add(str(net))
    return sorted(out, key=lambda n: ipaddress.ip_network(n))


def set_decl(group_id: str, ethertype: str, members: dict | None) -> str:
    kind = "ipv6_addr" if ethertype == "IPv6" else "ipv4_addr"
    elements = _elements(members, ethertype)
    lines = [f"type {kind}; flags interval;"]
    if elements:
        lines.append("elements = { " + ", ".join(elements) + " }")
    return (f"  set {set_name(group_id, ethertype)} {{\n"
            + "".join(f"    {x}\n" for x in lines) + "  }")


def set_update(table: str, group_id: str, members: dict | None,
               ethertypes=("IPv4", "IPv6")) -> str:
    """An ``nft -f`` script refilling a group's sets in one transaction."""
    out = []
    for eth in ethertypes:
        name = set_name(group_id, eth)
        out.append(f"flush set bridge {table} {name}")
        elements = _elements(members, eth)
        if elements:
            out.append(f"add element bridge {table} {name} {{ {', '.join(elements)} }}")
    return "\n".join(out) + "\n"


def host_ip(vif: dict) -> str | None:
    ha = vif.get("host_address")
    return str(ipaddress.ip_interface(ha).ip) if ha else None


def rule_match(rule: dict, ingress: bool) -> str | None:
    """The match of one security group rule, or None when it matches nothing."""
    v6 = rule.get("ethertype") == "IPv6"
    fam = "ip6" if v6 else "ip"
    parts = [f"meta protocol {fam}"]
    prefixes = rule.get("remote_ip_prefixes")
    if rule.get("remote_group_id"):
        name = set_name(rule["remote_group_id"], rule.get("ethertype") or "IPv4")
        parts.append(f"{fam} {'saddr' if ingress else 'daddr'} @{name}")
    elif prefixes is not None:
        if not prefixes:
            return None
        nets = [str(ipaddress.ip_network(p, strict=False)) for p in prefixes]
        if nets not in (["0.0.0.0/0"], ["::/0"]):
            parts.append(f"{fam} {'saddr' if ingress else 'daddr'} {_set(nets)}")
    proto = rule.get("protocol")
    lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
    if proto in ("tcp", "udp"):
        parts.append(f"meta l4proto {proto}")
        if lo is not None:
            rng = str(lo) if hi in (None, lo) else f"{lo}-{hi}"
            parts.append(f"{proto} dport {rng}")
    elif proto == "icmp":
        icmp = "icmpv6" if v6 else "icmp"
        parts.append(f"meta l4proto {'ipv6-icmp' if v6 else 'icmp'}")
        if lo is not None:
            parts.append(f"{icmp} type {lo}")
            if hi is not None:
                parts.append(f"{icmp} code {hi}")
    elif proto not in (None, "", "any"):
        parts.append(f"meta l4proto {int(proto)}")
    return " ".join(parts)


# Replies, when the kernel has no connection tracking in the bridge family
# (CONFIG_NF_CONNTRACK_BRIDGE): TCP that opens nothing, ICMP errors and echo
# replies, DNS answers.
STATELESS_REPLIES = [
    "meta l4proto tcp tcp flags & (syn | ack) != syn accept",
    "icmp type { echo-reply, destination-unreachable, time-exceeded } accept",
    "meta l4proto udp udp sport 53 accept",
]
STATEFUL_REPLIES = ["ct state established,related accept"]
CT_PROBE = ("table bridge cloudd_probe {\n  chain c {\n"
            "    ct state established accept\n  }\n}\n")


def tap_chains(vif: dict, stateful: bool = True) -> list[str]:
    """The ``in-TAP`` (to the guest) and ``out-TAP`` (from it) chains."""
    replies = STATEFUL_REPLIES if stateful else STATELESS_REPLIES
    tap, mac = vif["tap"], vif["mac"].lower()
    host = host_ip(vif)
    ips = _ipv4s(vif)
    rules = vif.get("security_group_rules") or []
    ingress = [
        "ether type arp accept",
        *replies,
        "meta l4proto udp udp sport 67 udp dport 68 accept",
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept",
    ]
    egress = [
        "ether type arp accept",
        f"ether saddr != {mac} drop",
        "meta l4proto udp udp sport 68 udp dport 67 accept",
    ]
    if ips:
        egress.append(f"meta protocol ip ip saddr != {_set(ips)} drop")
    egress += [
        *replies,
        "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept",
    ]
    if host:
        egress.append(f"meta protocol ip ip daddr {host} accept")
    egress.append(f"meta protocol ip ip daddr {METADATA_IP} meta l4proto tcp "
                  "tcp dport 80 accept")
    for r in rules:
        is_in = r.get("direction") == "ingress"
        m = rule_match(r, is_in)
        if m is not None:
            (ingress if is_in else egress).append(f"{m} accept")
    ingress.append("drop")
    egress.append("drop")
    body = []
    for name, lines in ((f"in-{tap}", ingress), (f"out-{tap}", egress)):
        body.append(f"  chain {name} {{\n" + "".join(f"    {x}\n" for x in lines) + "  }")
    return body


def render(vifs: list[dict], metadata_port: int, stateful: bool = True,
           tables: tuple[str, str] = (FILTER, NAT), members: dict | None = None) -> str:
    """The whole ``nft -f`` script for these vifs (each plugged vif once);
    ``tables`` names the bridge filter table and the ip NAT table; ``members``
    ({group_id: members}) fills the remote groups' sets."""
    ftable, ntable = tables
    out = [f"table bridge {ftable}", f"delete table bridge {ftable}",
           f"table ip {ntable}", f"delete table ip {ntable}"]
    filtered = [v for v in vifs if v.get("port_security_enabled", True)]
    if filtered:
        fwd, inp, outp, chains = [], [], [], []
        for v in filtered:
            tap = v["tap"]
            fwd += [f"oifname {_q(tap)} jump in-{tap}", f"iifname {_q(tap)} jump out-{tap}"]
            inp.append(f"iifname {_q(tap)} jump out-{tap}")
            outp.append(f"oifname {_q(tap)} jump in-{tap}")
            chains += tap_chains(v, stateful)
        out.append(f"table bridge {ftable} {{")
        for gid, eth in sorted(referenced_sets(filtered)):
            out.append(set_decl(gid, eth, (members or {}).get(gid)))
        for hook, lines in (("forward", fwd), ("input", inp), ("output", outp)):
            out.append(f"  chain {hook} {{\n    type filter hook {hook} priority 0; "
                       "policy accept;\n" + "".join(f"    {x}\n" for x in lines) + "  }")
        out += chains
        out.append("}")
    pre, post = [], []
    for v in _networks(vifs):
        host, br = host_ip(v), v["bridge"]
        if host:
            pre.append(f"iifname {_q(br)} ip daddr {METADATA_IP} tcp dport 80 "
                       f"dnat to {host}:{metadata_port}")
        if v.get("network_type", "local") == "local" and v.get("nat", True):
            for s in v.get("subnets") or []:
                if s.get("ip_version") == 4:
                    post.append(f"ip saddr {s['cidr']} oifname != {_q(br)} masquerade")
    if pre or post:
        out.append(f"table ip {ntable} {{")
        out.append("  chain prerouting {\n    type nat hook prerouting priority dstnat; "
                   "policy accept;\n" + "".join(f"    {x}\n" for x in pre) + "  }")
        out.append("  chain postrouting {\n    type nat hook postrouting priority srcnat; "
                   "policy accept;\n" + "".join(f"    {x}\n" for x in post) + "  }")
        out.append("}")
    return "\n".join(out) + "\n"


def _networks(vifs: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for v in vifs:
        seen.setdefault(v["network_id"], v)
    return list(seen.values())
