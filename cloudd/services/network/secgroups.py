"""Security groups (neutron/db/securitygroups_db.py): each project's ``default``
group made on first use (egress anywhere, ingress from its own members, for
IPv4 and IPv6), a new group's egress rules. Who hears of a change: sg_members.py."""

from __future__ import annotations

import ipaddress
import logging

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.network import common, quotas, sg_members, tags
from cloudd.services.network.common import enforce, error, iso, loads, new_id, utcnow

log = logging.getLogger("cloudd.network")

G, R, DSG, PSG, P = (t.security_group, t.security_group_rule, t.default_security_group,
                     t.port_security_group, t.port)
ETHERTYPES = ("IPv4", "IPv6")


def not_found(group_id: str):
    return error(404, "SecurityGroupNotFound", f"Security group {group_id} does not exist")


def rule_view(row: dict) -> dict:
    prefix = row["remote_ip_prefix"]
    normalized = str(ipaddress.ip_network(prefix, strict=False)) if prefix else None
    return {
        "id": row["id"], "tenant_id": row["project_id"], "project_id": row["project_id"],
        "security_group_id": row["security_group_id"], "direction": row["direction"],
        "ethertype": row["ethertype"], "protocol": row["protocol"],
        "port_range_min": row["port_range_min"], "port_range_max": row["port_range_max"],
        "remote_ip_prefix": prefix, "normalized_cidr": normalized,
        "remote_group_id": row["remote_group_id"], "description": row["description"],
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "revision_number": row["revision_number"],
    }


def group_view(row: dict, rules: list[dict]) -> dict:
    return {
        "id": row["id"], "name": row["name"], "description": row["description"],
        "tenant_id": row["project_id"], "project_id": row["project_id"],
        "stateful": row["stateful"], "security_group_rules": [rule_view(r) for r in rules],
        "tags": loads(row["tags"], []),
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "revision_number": row["revision_number"],
    }


async def groups(conn, where=None) -> list[dict]:
    q = sa.select(G)
    if where is not None:
        q = q.where(where)
    return [dict(r._mapping) for r in (await conn.execute(q)).all()]


async def group(conn, group_id: str) -> dict | None:
    found = await groups(conn, G.c.id == group_id)
    return found[0] if found else None


async def rules(conn, where=None) -> list[dict]:
    q = sa.select(R)
    if where is not None:
        q = q.where(where)
    return [dict(r._mapping) for r in (await conn.execute(
        q.order_by(R.c.created_at, R.c.id))).all()]


async def rules_by_group(conn, group_ids: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {g: [] for g in group_ids}
    if group_ids:
        for r in await rules(conn, R.c.security_group_id.in_(group_ids)):
            out[r["security_group_id"]].append(r)
    return out


async def insert_rule(conn, *, project_id: str, group_id: str, direction: str,
                      ethertype: str, protocol=None, port_range_min=None,
                      port_range_max=None, remote_ip_prefix=None, remote_group_id=None,
                      description: str = "") -> dict:
    now = utcnow()
    row = {"id": new_id(), "project_id": project_id, "security_group_id": group_id,
           "remote_group_id": remote_group_id, "direction": direction,
           "ethertype": ethertype, "protocol": protocol, "port_range_min": port_range_min,
           "port_range_max": port_range_max, "remote_ip_prefix": remote_ip_prefix,
           "description": description, "revision_number": 0,
           "created_at": now, "updated_at": now}
    await conn.execute(R.insert().values(**row))
    return row


async def insert_group(conn, project_id: str, name: str, description: str,
                       stateful: bool = True) -> dict:
    now = utcnow()
    row = {"id": new_id(), "project_id": project_id, "name": name,
           "description": description, "stateful": stateful, "tags": "[]",
           "revision_number": 0, "created_at": now, "updated_at": now}
    await conn.execute(G.insert().values(**row))
    return row


async def default_group_id(conn, project_id: str) -> str | None:
    return (await conn.execute(sa.select(DSG.c.security_group_id)
                               .where(DSG.c.project_id == project_id))).scalar()


async def ensure_default(conn, project_id: str | None) -> str | None:
    """The project's ``default`` group, made now if it has none: egress to
    anywhere and ingress from the group's own members, IPv4 and IPv6."""
    if not project_id:
        return None
    found = await default_group_id(conn, project_id)
    if found:
        return found
    try:
        # A concurrent first use in another transaction loses on the primary key
        # of default_security_group and takes the winner's group.
        async with conn.begin_nested():
            row = await insert_group(conn, project_id, "default", "Default security group")
            await conn.execute(DSG.insert().values(project_id=project_id,
                                                   security_group_id=row["id"]))
            for ethertype in ETHERTYPES:
                await insert_rule(conn, project_id=project_id, group_id=row["id"],
                                  direction="egress", ethertype=ethertype)
                await insert_rule(conn, project_id=project_id, group_id=row["id"],
                                  direction="ingress", ethertype=ethertype,
                                  remote_group_id=row["id"])
    except IntegrityError:
        return await default_group_id(conn, project_id)
    log.info("made the default security group %s of project %s", row["id"], project_id)
    return row["id"]


async def instances_for_group(conn, group_id: str) -> list[tuple[str, str]]:
    """(instance uuid, host) of every bound compute port in the group or in a
    group whose rules name it as remote group."""
    referring = sa.select(R.c.security_group_id).where(R.c.remote_group_id == group_id)
    q = (sa.select(P.c.device_id, P.c.binding_host_id).distinct()
         .select_from(P.join(PSG, PSG.c.port_id == P.c.id))
         .where(P.c.device_owner.like("compute:%"), P.c.binding_host_id != "",
                P.c.device_id != "",
                sa.or_(PSG.c.security_group_id == group_id,
                       PSG.c.security_group_id.in_(referring))))
    return sorted((r.device_id, r.binding_host_id) for r in (await conn.execute(q)).all())


async def notify_network(cloud, conn, network_id: str) -> None:
    """Tell compute about every bound instance on a network whose subnets or
    MTU changed (their DHCP entries and vifs follow)."""
    changed = getattr(getattr(cloud, "compute", None), "ports_changed", None)
    if changed is None:
        return
    uuids = (await conn.execute(sa.select(P.c.device_id).distinct().where(
        P.c.network_id == network_id, P.c.device_owner.like("compute:%"),
        P.c.binding_host_id != "", P.c.device_id != ""))).scalars().all()
    if uuids:
        await changed(conn, sorted(uuids))


# -- the API -----------------------------------------------------------------------------

GROUP_ATTRS = {"name", "description", "stateful", "project_id", "tenant_id"}
SORTABLE = {"id", "name", "description", "project_id", "tenant_id", "created_at",
            "updated_at", "revision_number", "stateful"}


async def _visible(conn, ctx, group_id: str) -> dict:
    row = await group(conn, group_id)
    if row is None or not ctx.can("get_security_group", row):
        raise not_found(group_id)
    return row


async def list_groups(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    async with cloud.db.write() as conn:
        await ensure_default(conn, ctx.project_id)
        where = None if common.is_admin(ctx) else G.c.project_id == ctx.project_id
        rows = [r for r in await groups(conn, where) if ctx.can("get_security_group", r)]
        by_group = await rules_by_group(conn, [r["id"] for r in rows])
    return common.listing(request, "security_groups",
                          [group_view(r, by_group[r["id"]]) for r in rows], SORTABLE,
                          special=tags.special_filters())


async def show_group(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row = await _visible(conn, ctx, request.match_info["id"])
        found = await rules_by_group(conn, [row["id"]])
    return common.one(request, "security_group", group_view(row, found[row["id"]]))


async def create_group(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    body = await common.body_of(request, "security_group")
    common.check_attrs(body, GROUP_ATTRS)
    for attr in ("name", "description"):
        common.check_string(body, attr)
    project = common.owner_of(ctx, body)
    enforce(ctx, "create_security_group", {"project_id": project})
    name = body.get("name") or ""
    if name == "default":
        raise error(409, "SecurityGroupDefaultAlreadyExists",
                    "Default security group already exists.")
    stateful = common.to_bool(body.get("stateful", True), "stateful")
    async with cloud.db.write() as conn:
        await ensure_default(conn, project)
        await quotas.check(conn, cloud.config, project, "security_group")
        row = await insert_group(conn, project, name, body.get("description") or "", stateful)
        made = [await insert_rule(conn, project_id=project, group_id=row["id"],
                                  direction="egress", ethertype=e) for e in ETHERTYPES]
    return common.one(request, "security_group", group_view(row, made), 201)


async def update_group(request: web.Request) -> web.Response:
    ctx = common.context(request)
    body = await common.body_of(request, "security_group")
    common.check_attrs(body, {"name", "description", "stateful"})
    for attr in ("name", "description"):
        common.check_string(body, attr)
    async with common.cloud(request).db.write() as conn:
        row = await _visible(conn, ctx, request.match_info["id"])
        enforce(ctx, "update_security_group", row)
        values = {k: body[k] for k in ("name", "description") if k in body}
        if "stateful" in body:
            values["stateful"] = common.to_bool(body["stateful"], "stateful")
        if row["name"] == "default" and values.get("name", "default") != "default":
            raise error(409, "SecurityGroupCannotUpdateDefault",
                        "Updating default security group not allowed.")
        values.update(updated_at=utcnow(), revision_number=row["revision_number"] + 1)
        await conn.execute(G.update().where(G.c.id == row["id"]).values(**values))
        row.update(values)
        found = await rules_by_group(conn, [row["id"]])
    return common.one(request, "security_group", group_view(row, found[row["id"]]))


async def delete_group(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.write() as conn:
        row = await _visible(conn, ctx, request.match_info["id"])
        enforce(ctx, "delete_security_group", row)
        if row["name"] == "default" and not common.is_admin(ctx) and \
                await default_group_id(conn, row["project_id"]) == row["id"]:
            raise error(409, "SecurityGroupCannotRemoveDefault",
                        "Insufficient rights for removing default security group.")
        busy = (await conn.execute(sa.select(sa.func.count()).select_from(PSG).where(
            PSG.c.security_group_id == row["id"]))).scalar_one()
        if busy:
            raise error(409, "SecurityGroupInUse", f"Security Group {row['id']} in use.")
        referring = set((await conn.execute(sa.select(R.c.security_group_id).where(
            R.c.remote_group_id == row["id"], R.c.security_group_id != row["id"])))
            .scalars().all())
        await conn.execute(R.delete().where(sa.or_(R.c.security_group_id == row["id"],
                                                   R.c.remote_group_id == row["id"])))
        await sg_members.rules_changed(common.cloud(request), conn, referring)
        await conn.execute(DSG.delete().where(DSG.c.security_group_id == row["id"]))
        await conn.execute(G.delete().where(G.c.id == row["id"]))
    return web.Response(status=204)


ROUTES = [
    ("GET", "/v2.0/security-groups", list_groups),
    ("POST", "/v2.0/security-groups", create_group),
    ("GET", "/v2.0/security-groups/{id}", show_group),
    ("PUT", "/v2.0/security-groups/{id}", update_group),
    ("DELETE", "/v2.0/security-groups/{id}", delete_group),
]
