"""Security group rules with Neutron's checks (securitygroups_db.py): protocol
names or numbers, port ranges (ICMP type and code), remote group or remote
prefix, ethertype conflicts, duplicates (409 SecurityGroupRuleExists)."""

from __future__ import annotations

import ipaddress

import sqlalchemy as sa
from aiohttp import web

from cloudd.db import tables as t
from cloudd.services.network import common, quotas, secgroups, sg_members
from cloudd.services.network.common import bad_request, enforce, error, invalid_attr
from cloudd.services.network.vifs import PROTOCOLS

G, R = t.security_group, t.security_group_rule
ATTRS = {"security_group_id", "direction", "ethertype", "protocol", "port_range_min",
         "port_range_max", "remote_ip_prefix", "remote_group_id", "description",
         "project_id", "tenant_id"}
SORTABLE = {"id", "project_id", "tenant_id", "security_group_id", "direction", "ethertype",
            "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
            "remote_group_id", "created_at", "updated_at", "revision_number", "description"}
PORTED = {6, 17, 33, 132, 136}          # tcp, udp, dccp, sctp, udplite
ICMP = {1, 58}
V6_ONLY = {"icmpv6", "ipv6-icmp", "ipv6-encap", "ipv6-frag", "ipv6-nonxt", "ipv6-opts",
           "ipv6-route"}


def not_found(rule_id: str):
    return error(404, "SecurityGroupRuleNotFound",
                 f"Security group rule {rule_id} does not exist")


def _protocol(value) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).lower()
    if text in PROTOCOLS:
        return text
    try:
        number = int(text)
    except ValueError:
        number = -1
    if 0 <= number <= 255 and not isinstance(value, bool):
        return str(number)
    names = sorted(PROTOCOLS) + [None]
    raise error(400, "SecurityGroupRuleInvalidProtocol",
                f"Security group rule protocol {value} not supported. Only protocol values "
                f"{names} and integer representations [0 to 255] are supported.")


def _number(protocol: str | None) -> int | None:
    if protocol is None:
        return None
    return PROTOCOLS[protocol] if protocol in PROTOCOLS else int(protocol)


def _port(value, attr: str) -> int | None:
    if value is None:
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise error(400, "SecurityGroupInvalidPortValue", f"Invalid value for port {value}.")
    return port


def validate(body: dict) -> dict:
    """The rule's attributes, checked and made canonical."""
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise invalid_attr("direction", f"'{direction}' is not in ['ingress', 'egress']")
    ethertype = str(body.get("ethertype") or "IPv4")
    ethertype = {"ipv4": "IPv4", "ipv6": "IPv6"}.get(ethertype.lower(), ethertype)
    if ethertype not in ("IPv4", "IPv6"):
        raise invalid_attr("ethertype", f"'{body.get('ethertype')}' is not in "
                                        "['IPv4', 'IPv6']")
    protocol = _protocol(body.get("protocol"))
    if protocol in V6_ONLY and ethertype == "IPv4":
        raise error(400, "SecurityGroupEthertypeConflictWithProtocol",
                    f"Invalid ethertype {ethertype} for protocol {protocol}.")
    pmin = _port(body.get("port_range_min"), "port_range_min")
    pmax = _port(body.get("port_range_max"), "port_range_max")
    number = _number(protocol)
    if pmin is not None or pmax is not None:
        if protocol is None:
            raise error(400, "SecurityGroupProtocolRequiredWithPorts",
                        "Must also specify protocol if port range is given.")
        if number in PORTED:
            if pmin == 0 or pmax == 0:
                raise error(400, "SecurityGroupInvalidPortValue", "Invalid value for port 0.")
            if pmin is None or pmax is None or pmin > pmax:
                raise error(400, "SecurityGroupInvalidPortRange",
                            "For TCP/UDP protocols, port_range_min must be <= "
                            "port_range_max")
            if (pmin, pmax) == (1, 65535):
                pmin = pmax = None
        elif number in ICMP:
            for attr, field, value in (("port_range_min", "type", pmin),
                                       ("port_range_max", "code", pmax)):
                if value is not None and not 0 <= value <= 255:
                    raise error(400, "SecurityGroupInvalidIcmpValue",
                                f"Invalid value for ICMP {field} ({attr}) {value}. It must "
                                "be 0 to 255.")
            if pmin is None and pmax is not None:
                raise error(400, "SecurityGroupMissingIcmpType",
                            f"ICMP code (port-range-max) {pmax} is provided but ICMP type "
                            "(port-range-min) is missing.")
        else:
            raise error(400, "SecurityGroupInvalidProtocolForPort",
                        f"Invalid protocol {protocol} for port range, only supported for "
                        "TCP, UDP, UDPLITE, SCTP and DCCP.")
    prefix = body.get("remote_ip_prefix")
    remote_group = body.get("remote_group_id")
    if prefix is not None and remote_group is not None:
        raise error(400, "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                    "Only remote_ip_prefix or remote_group_id may be provided.")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise invalid_attr("remote_ip_prefix", f"'{prefix}' is not a valid IP "
                                                   "subnet") from None
        if net.version != (4 if ethertype == "IPv4" else 6):
            raise error(400, "SecurityGroupRuleParameterConflict",
                        f"Conflicting value ethertype {ethertype} for CIDR {prefix}")
        prefix = str(prefix) if "/" in str(prefix) else str(net)
    if remote_group is not None:
        remote_group = common.check_uuid(remote_group, "remote_group_id")
    return {"direction": direction, "ethertype": ethertype, "protocol": protocol,
            "port_range_min": pmin, "port_range_max": pmax, "remote_ip_prefix": prefix,
            "remote_group_id": remote_group}


def _key(rule: dict) -> tuple:
    prefix = rule["remote_ip_prefix"]
    if prefix is not None:
        net = ipaddress.ip_network(prefix, strict=False)
        prefix = None if net.prefixlen == 0 else str(net)
    return (rule["direction"], rule["ethertype"], _number(rule["protocol"]),
            rule["port_range_min"], rule["port_range_max"], prefix, rule["remote_group_id"])


async def _visible(conn, ctx, rule_id: str) -> dict:
    found = await secgroups.rules(conn, R.c.id == rule_id)
    if not found or not ctx.can("get_security_group_rule", found[0]):
        raise not_found(rule_id)
    return found[0]


# -- handlers ----------------------------------------------------------------------------

async def list_rules(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.write() as conn:
        await secgroups.ensure_default(conn, ctx.project_id)
        where = None
        if not common.is_admin(ctx):
            own = sa.select(G.c.id).where(G.c.project_id == ctx.project_id)
            where = sa.or_(R.c.project_id == ctx.project_id, R.c.security_group_id.in_(own))
        rows = await secgroups.rules(conn, where)
    return common.listing(request, "security_group_rules",
                          [secgroups.rule_view(r) for r in rows], SORTABLE)


async def show_rule(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row = await _visible(conn, ctx, request.match_info["id"])
    return common.one(request, "security_group_rule", secgroups.rule_view(row))


async def create_rule(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    body = await common.body_of(request, "security_group_rule")
    common.check_attrs(body, ATTRS)
    common.check_string(body, "description")
    if "security_group_id" not in body:
        raise bad_request("Failed to parse request. Required attribute 'security_group_id' "
                          "not specified")
    if "direction" not in body:
        raise bad_request("Failed to parse request. Required attribute 'direction' not "
                          "specified")
    group_id = common.check_uuid(body["security_group_id"], "security_group_id")
    project = common.owner_of(ctx, body)
    rule = validate(body)
    async with cloud.db.write() as conn:
        group = await secgroups.group(conn, group_id)
        if group is None or not ctx.can("get_security_group", group):
            raise secgroups.not_found(group_id)
        enforce(ctx, "create_security_group_rule", {"project_id": project,
                                                    "tenant_id": project})
        if group["project_id"] != project and not common.is_admin(ctx):
            raise secgroups.not_found(group_id)
        if rule["remote_group_id"]:
            remote = await secgroups.group(conn, rule["remote_group_id"])
            if remote is None or not ctx.can("get_security_group", remote):
                raise secgroups.not_found(rule["remote_group_id"])
        key = _key(rule)
        for existing in await secgroups.rules(conn, R.c.security_group_id == group_id):
            if _key(existing) == key:
                raise error(409, "SecurityGroupRuleExists",
                            "Security group rule already exists. Rule id is "
                            f"{existing['id']}.")
        await quotas.check(conn, cloud.config, project, "security_group_rule")
        row = await secgroups.insert_rule(conn, project_id=project, group_id=group_id,
                                          description=body.get("description") or "",
                                          **rule)
        await sg_members.rules_changed(cloud, conn, [group_id])
    return common.one(request, "security_group_rule", secgroups.rule_view(row), 201)


async def delete_rule(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    async with cloud.db.write() as conn:
        row = await _visible(conn, ctx, request.match_info["id"])
        enforce(ctx, "delete_security_group_rule", row)
        await conn.execute(R.delete().where(R.c.id == row["id"]))
        await sg_members.rules_changed(cloud, conn, [row["security_group_id"]])
    return web.Response(status=204)


ROUTES = [
    ("GET", "/v2.0/security-group-rules", list_rules),
    ("POST", "/v2.0/security-group-rules", create_rule),
    ("GET", "/v2.0/security-group-rules/{id}", show_rule),
    ("DELETE", "/v2.0/security-group-rules/{id}", delete_rule),
]
