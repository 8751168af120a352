"""os-security-groups (deprecated proxy, 2.1-2.35) and a server's groups.

As Nova with Neutron (nova/network/security_group_api.py): the network
service's security groups in nova-network's shape, ingress rules only;
list (all projects for an admin asking ``all_tenants``), show, create and
delete; GET /servers/{id}/os-security-groups lists the groups of the
server's ports. Updating a group and the os-security-group-rules proxy are
not offered (the Neutron API does both).
"""

from __future__ import annotations

import ipaddress

import sqlalchemy as sa
from aiohttp import web

from cloudd.db import tables as t
from cloudd.services.compute import common, instance_store, servers
from cloudd.services.compute.policies import PROJECT_MEMBER_OR_ADMIN as MEMBER
from cloudd.services.compute.policies import PROJECT_READER_OR_ADMIN as READER
from cloudd.services.compute.server_schemas import bool_from_string
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ROOT = "os_compute_api:os-security-groups:%s"
MAX = (2, 35)


def _secgroups():
    from cloudd.services.network import secgroups
    return secgroups


def _rule(rule: dict, names: dict[str, dict]) -> dict | None:
    """Nova's rule view of one Neutron ingress rule (None: its remote group is gone)."""
    protocol = rule["protocol"]
    low, high = rule["port_range_min"], rule["port_range_max"]
    if protocol and low is None and high is None:
        low, high = (1, 65535) if protocol.upper() in ("TCP", "UDP") else (-1, -1)
    out = {"id": rule["id"], "parent_group_id": rule["security_group_id"],
           "ip_protocol": protocol, "from_port": low, "to_port": high,
           "group": {}, "ip_range": {}}
    if rule["remote_group_id"]:
        group = names.get(rule["remote_group_id"])
        if group is None:
            return None
        out["group"] = group
    else:
        prefix = rule["remote_ip_prefix"]
        if prefix:
            prefix = str(ipaddress.ip_network(prefix, strict=False))
        else:
            prefix = "::/0" if rule["ethertype"] == "IPv6" else "0.0.0.0/0"
        out["ip_range"] = {"cidr": prefix}
    return out


async def _views(conn, rows: list[dict]) -> list[dict]:
    sg = _secgroups()
    rules = await sg.rules_by_group(conn, [r["id"] for r in rows])
    names = {r["id"]: {"name": r["name"], "tenant_id": r["project_id"]} for r in rows}
    remote = {x["remote_group_id"] for rs in rules.values() for x in rs
              if x["remote_group_id"] and x["remote_group_id"] not in names}
    if remote:
        for r in await sg.groups(conn, t.security_group.c.id.in_(sorted(remote))):
            names[r["id"]] = {"name": r["name"], "tenant_id": r["project_id"]}
    out = []
    for row in rows:
        formatted = [_rule(x, names) for x in rules[row["id"]] if x["direction"] == "ingress"]
        out.append({"id": row["id"], "name": row["name"], "description": row["description"],
                    "tenant_id": row["project_id"], "rules": [x for x in formatted if x]})
    return out


async def _group(conn, ctx, group_id: str) -> dict:
    row = await _secgroups().group(conn, group_id)
    if row is None or not (ctx.can("context_is_admin", {})
                           or row["project_id"] == ctx.project_id):
        raise ApiError(404, f"Security group {group_id} not found.")
    return row


def _network(request):
    cloud = common.cloud(request)
    if cloud.compute.network is None:
        raise ApiError(404, "The resource could not be found.")
    return cloud


async def index(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "get", {"project_id": ctx.project_id})
    cloud = _network(request)
    all_tenants = request.query.get("all_tenants")
    everyone = all_tenants is not None and ctx.can("context_is_admin", {}) and \
        (all_tenants == "" or bool_from_string(all_tenants, default=False))
    async with cloud.db.write() as conn:
        await _secgroups().ensure_default(conn, ctx.project_id)
        where = None if everyone else t.security_group.c.project_id == ctx.project_id
        found = await _views(conn, await _secgroups().groups(conn, where))
    limit, marker = common.limit_and_marker(request)
    found.sort(key=lambda g: (g["tenant_id"], g["name"], g["id"]))
    if marker is not None:
        ids = [g["id"] for g in found]
        found = found[ids.index(marker) + 1:] if marker in ids else found
    return web.json_response({"security_groups": found[:limit]})


async def show(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "show", {"project_id": ctx.project_id})
    cloud = _network(request)
    async with cloud.db.read() as conn:
        row = await _group(conn, ctx, request.match_info["group_id"])
        [view] = await _views(conn, [row])
    return web.json_response({"security_group": view})


async def create(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "create", {"project_id": ctx.project_id})
    cloud = _network(request)
    body = await read_json(request)
    group = body.get("security_group") if isinstance(body, dict) else None
    if not isinstance(group, dict):
        raise ApiError(400, "Invalid input for field/attribute security_group.")
    for key in ("name", "description"):
        value = group.get(key)
        if not isinstance(value, str) or len(value) > 255:
            raise ApiError(400, f"Invalid input for field/attribute {key}. Value: "
                                f"{value}.")
    if group["name"] == "default":
        raise ApiError(400, "Default security group already exists.")
    sg = _secgroups()
    from cloudd.services.network import quotas
    async with cloud.db.write() as conn:
        await sg.ensure_default(conn, ctx.project_id)
        try:
            await quotas.check(conn, cloud.config, ctx.project_id, "security_group")
        except ApiError:
            raise ApiError(403, "Quota exceeded, too many security groups.") from None
        row = await sg.insert_group(conn, ctx.project_id, group["name"],
                                    group["description"])
        for ethertype in sg.ETHERTYPES:
            await sg.insert_rule(conn, project_id=ctx.project_id, group_id=row["id"],
                                 direction="egress", ethertype=ethertype)
        [view] = await _views(conn, [row])
    return web.json_response({"security_group": view})


async def delete(request: web.Request) -> web.Response:
    ctx = common.context(request)
    ctx.authorize(ROOT % "delete", {"project_id": ctx.project_id})
    cloud = _network(request)
    sg = _secgroups()
    G, R, PSG = t.security_group, t.security_group_rule, t.port_security_group
    async with cloud.db.write() as conn:
        row = await _group(conn, ctx, request.match_info["group_id"])
        if await sg.default_group_id(conn, row["project_id"]) == row["id"]:
            raise ApiError(400, "Removing default security group not allowed.")
        busy = (await conn.execute(sa.select(sa.func.count()).select_from(PSG).where(
            PSG.c.security_group_id == row["id"]))).scalar_one()
        if busy:
            raise ApiError(400, f"Security Group {row['id']} in use.")
        referring = set((await conn.execute(sa.select(R.c.security_group_id).where(
            R.c.remote_group_id == row["id"], R.c.security_group_id != row["id"])))
            .scalars().all())
        await conn.execute(R.delete().where(sa.or_(R.c.security_group_id == row["id"],
                                                   R.c.remote_group_id == row["id"])))
        from cloudd.services.network import sg_members
        await sg_members.rules_changed(cloud, conn, referring)
        await conn.execute(G.delete().where(G.c.id == row["id"]))
    return web.Response(status=202)


async def server_groups(request: web.Request) -> web.Response:
    """GET /servers/{id}/os-security-groups: the groups of the server's ports."""
    ctx = common.context(request)
    cloud = _network(request)
    P, PSG = t.port, t.port_security_group
    async with cloud.db.read() as conn:
        row = await instance_store.get(conn, request.match_info["server_id"],
                                       servers.scope(request))
        ctx.authorize(ROOT % "list", {"project_id": row.project_id})
        ids = (await conn.execute(sa.select(PSG.c.security_group_id).distinct()
                                  .select_from(PSG.join(P, P.c.id == PSG.c.port_id))
                                  .where(P.c.device_id == row.uuid))).scalars().all()
        rows = await _secgroups().groups(conn, t.security_group.c.id.in_(sorted(ids))) \
            if ids else []
        found = await _views(conn, rows)
    found.sort(key=lambda g: (g["tenant_id"], g["name"], g["id"]))
    return web.json_response({"security_groups": found})


ROUTES = {
    "/os-security-groups": {"GET": (index, None, MAX), "POST": (create, None, MAX)},
    "/os-security-groups/{group_id}": {"GET": (show, None, MAX),
                                       "DELETE": (delete, None, MAX)},
    "/servers/{server_id}/os-security-groups": {"GET": (server_groups, None, MAX)},
}

POLICIES = {ROOT % "get": READER, ROOT % "show": READER, ROOT % "create": MEMBER,
            ROOT % "update": MEMBER, ROOT % "delete": MEMBER, ROOT % "rule:create": MEMBER,
            ROOT % "rule:delete": MEMBER, ROOT % "list": READER}
