"""Networks: shared and external flags, MTU, port security, and the admin-only
provider attributes (network types local, flat and vlan, as ML2's type drivers
check them)."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.network import common, quotas, secgroups, store, tags
from cloudd.services.network.common import (
    enforce,
    enforce_attrs,
    error,
    invalid_input,
    new_id,
    utcnow,
)

N, P, S, A = t.network, t.port, t.subnet, t.ip_allocation
TYPES = ("local", "flat", "vlan")
PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")
CREATE_ATTRS = {"name", "description", "admin_state_up", "shared", "router:external", "mtu",
                "port_security_enabled", "project_id", "tenant_id", *PROVIDER}
UPDATE_ATTRS = {"name", "description", "admin_state_up", "shared", "router:external", "mtu",
                "port_security_enabled", *PROVIDER}
GUARDED = {"shared": False, "router:external": False, "port_security_enabled": True,
           **{p: None for p in PROVIDER}}
SORTABLE = {"id", "name", "description", "project_id", "tenant_id", "status", "shared",
            "admin_state_up", "mtu", "router:external", "created_at", "updated_at",
            "revision_number", "provider:network_type", "provider:physical_network",
            "provider:segmentation_id", "port_security_enabled"}


def segment(cfg, body: dict) -> tuple[str, str | None, int | None, str | None]:
    """(type, physical network, segmentation id, unique key) with ML2's checks."""
    kind = body.get("provider:network_type") or "local"
    physnet = body.get("provider:physical_network")
    seg = body.get("provider:segmentation_id")
    if kind not in TYPES:
        raise invalid_input(f"network_type value '{kind}' not supported")
    allowed = [p.strip() for p in cfg.network.physical_networks.split(",") if p.strip()]
    if seg is not None:
        seg = common.to_int(seg, "provider:segmentation_id")
    if kind == "local":
        for attr, value in (("physical_network", physnet), ("segmentation_id", seg)):
            if value is not None:
                raise invalid_input(f"{attr} prohibited for local provider network")
        return kind, None, None, None
    label = "flat" if kind == "flat" else "VLAN"
    if not physnet:
        raise invalid_input(f"physical_network required for {label} provider network")
    if not isinstance(physnet, str) or len(physnet) > 64:
        raise invalid_input(f"physical_network '{physnet}' is not valid")
    if "*" not in allowed and physnet not in allowed:
        raise invalid_input(f"physical_network '{physnet}' unknown for {label} provider "
                            "network")
    if kind == "flat":
        if seg is not None:
            raise invalid_input("segmentation_id specified for flat provider network")
        return kind, physnet, None, f"flat:{physnet}"
    if seg is None:
        raise invalid_input("segmentation_id required for VLAN provider network")
    if not 1 <= seg <= 4094:
        raise invalid_input("segmentation_id out of range (1 through 4094)")
    return kind, physnet, seg, f"vlan:{physnet}:{seg}"


def check_mtu(cfg, value) -> int:
    mtu = common.to_int(value, "mtu")
    if mtu < 68:
        raise common.invalid_attr("mtu", f"'{mtu}' is too small - must be at least '68'")
    if mtu > cfg.network.global_physnet_mtu:
        raise invalid_input(f"Requested MTU is too big, maximum is "
                            f"{cfg.network.global_physnet_mtu}")
    return mtu


async def insert(conn, cfg, project_id: str, body: dict) -> dict:
    """A new network row (the caller checked policy and quota)."""
    kind, physnet, seg, key = segment(cfg, body)
    now = utcnow()
    row = {"id": new_id(), "project_id": project_id, "name": body.get("name") or "",
           "description": body.get("description") or "",
           "admin_state_up": common.to_bool(body.get("admin_state_up", True),
                                            "admin_state_up"),
           "status": "ACTIVE", "shared": common.to_bool(body.get("shared", False), "shared"),
           "router_external": common.to_bool(body.get("router:external", False),
                                             "router:external"),
           "mtu": check_mtu(cfg, body["mtu"]) if body.get("mtu") is not None
           else cfg.network.global_physnet_mtu,
           "network_type": kind, "physical_network": physnet, "segmentation_id": seg,
           "segment_key": key,
           "port_security_enabled": common.to_bool(body.get("port_security_enabled", True),
                                                   "port_security_enabled"),
           "tags": "[]", "revision_number": 0, "created_at": now, "updated_at": now}
    if key is not None and (await conn.execute(
            sa.select(N.c.id).where(N.c.segment_key == key))).first():
        raise _segment_in_use(kind, physnet, seg)
    try:
        async with conn.begin_nested():
            await conn.execute(N.insert().values(**row))
    except IntegrityError:
        raise _segment_in_use(kind, physnet, seg) from None
    row["subnets"] = []
    return row


def _segment_in_use(kind: str, physnet, seg):
    if kind == "flat":
        return error(409, "FlatNetworkInUse", "Unable to create the flat network. Physical "
                                              f"network {physnet} is in use.")
    return error(409, "VlanIdInUse", f"Unable to create the network. The VLAN {seg} on "
                                     f"physical network {physnet} is in use.")


def view(ctx, row: dict) -> dict:
    return common.strip_attrs(ctx, "network", store.network_view(row),
                              ("router:external", *PROVIDER))


def _target(row: dict) -> dict:
    return store.network_view(row)


async def visible(conn, ctx, net_id: str, lock: bool = False) -> dict:
    row = await store.network(conn, net_id, lock=lock)
    if row is None or not ctx.can("get_network", _target(row)):
        raise store.network_not_found(net_id)
    return row


# -- handlers ----------------------------------------------------------------------------

async def list_networks(request: web.Request) -> web.Response:
    ctx = common.context(request)
    where = None if common.is_admin(ctx) else store.visible_networks(ctx.project_id)
    async with common.cloud(request).db.read() as conn:
        rows = await store.networks(conn, where)
    items = [view(ctx, r) for r in rows if ctx.can("get_network", _target(r))]
    return common.listing(request, "networks", items, SORTABLE,
                          special=tags.special_filters())


async def show_network(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row = await visible(conn, ctx, request.match_info["id"])
    return common.one(request, "network", view(ctx, row))


async def create_network(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    body = await common.body_of(request, "network")
    common.check_attrs(body, CREATE_ATTRS)
    for attr in ("name", "description"):
        common.check_string(body, attr)
    project = common.owner_of(ctx, body)
    target = {"project_id": project, "tenant_id": project}
    enforce(ctx, "create_network", target)
    enforce_attrs(ctx, "create", "network", body, target, GUARDED)
    async with cloud.db.write() as conn:
        await quotas.check(conn, cloud.config, project, "network")
        row = await insert(conn, cloud.config, project, body)
        await secgroups.ensure_default(conn, project)
    return common.one(request, "network", view(ctx, row), 201)


async def update_network(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    body = await common.body_of(request, "network")
    common.check_attrs(body, UPDATE_ATTRS)
    for attr in ("name", "description"):
        common.check_string(body, attr)
    async with cloud.db.write() as conn:
        row = await visible(conn, ctx, request.match_info["id"], lock=True)
        target = _target(row)
        enforce(ctx, "update_network", target)
        current = {"shared": row["shared"], "router:external": row["router_external"],
                   "port_security_enabled": row["port_security_enabled"],
                   "provider:network_type": row["network_type"],
                   "provider:physical_network": row["physical_network"],
                   "provider:segmentation_id": row["segmentation_id"]}
        changed = {k: v for k, v in body.items() if k in current and v != current[k]}
        enforce_attrs(ctx, "update", "network", changed, target,
                      {k: object() for k in changed})
        if any(p in changed for p in PROVIDER):
            raise invalid_input("Plugin does not support updating the following provider "
                                "network attributes: "
                                f"{sorted(p for p in PROVIDER if p in changed)}")
        values: dict = {k: body[k] for k in ("name", "description") if k in body}
        for attr, col in (("admin_state_up", "admin_state_up"), ("shared", "shared"),
                          ("router:external", "router_external"),
                          ("port_security_enabled", "port_security_enabled")):
            if attr in body:
                values[col] = common.to_bool(body[attr], attr)
        if "mtu" in body:
            values["mtu"] = check_mtu(cloud.config, body["mtu"])
        if row["shared"] and values.get("shared") is False:
            others = (await conn.execute(sa.select(sa.func.count()).select_from(P).where(
                P.c.network_id == row["id"], P.c.project_id != row["project_id"],
                P.c.device_owner.not_like("network:%")))).scalar_one()
            if others:
                raise error(409, "InvalidSharedSetting",
                            f"Unable to reconfigure sharing settings for network "
                            f"{row['id']}. Multiple tenants are using it.")
        values.update(updated_at=utcnow(), revision_number=row["revision_number"] + 1)
        await conn.execute(N.update().where(N.c.id == row["id"]).values(**values))
        if values.get("mtu", row["mtu"]) != row["mtu"]:
            await secgroups.notify_network(cloud, conn, row["id"])
        row.update(values)
    return common.one(request, "network", view(ctx, row))


async def delete_network(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.write() as conn:
        row = await visible(conn, ctx, request.match_info["id"], lock=True)
        enforce(ctx, "delete_network", _target(row))
        busy = (await conn.execute(sa.select(sa.func.count()).select_from(P).where(
            P.c.network_id == row["id"], P.c.device_owner != "network:dhcp"))).scalar_one()
        if busy:
            raise error(409, "NetworkInUse",
                        f"Unable to complete operation on network {row['id']}. There are "
                        "one or more ports still in use on the network.")
        await conn.execute(P.delete().where(P.c.network_id == row["id"]))
        await conn.execute(S.delete().where(S.c.network_id == row["id"]))
        await conn.execute(N.delete().where(N.c.id == row["id"]))
    return web.Response(status=204)


ROUTES = [
    ("GET", "/v2.0/networks", list_networks),
    ("POST", "/v2.0/networks", create_network),
    ("GET", "/v2.0/networks/{id}", show_network),
    ("PUT", "/v2.0/networks/{id}", update_network),
    ("DELETE", "/v2.0/networks/{id}", delete_network),
]
