"""Ports: fixed IPs, MAC, device, binding (admin), security groups and port
security (the shared work is port_ops.py)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from aiohttp import web

from cloudd.db import tables as t
from cloudd.services.network import (
    common,
    ipam,
    networks,
    port_ops,
    sg_members,
    store,
    tags,
)
from cloudd.services.network.common import bad_request, enforce, error, invalid_attr, utcnow

N, P, S = t.network, t.port, t.subnet
VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical",
              "virtio-forwarder", "smart-nic", "vdpa", "remote-managed")
COMMON = {"name", "description", "admin_state_up", "fixed_ips", "device_id", "device_owner",
          "security_groups", "port_security_enabled", "binding:host_id", "binding:profile",
          "binding:vnic_type", "mac_address"}
CREATE_ATTRS = COMMON | {"network_id", "project_id", "tenant_id"}
HIDDEN = ("binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details")
SORTABLE = {"id", "name", "description", "project_id", "tenant_id", "network_id",
            "mac_address", "admin_state_up", "status", "device_id", "device_owner",
            "created_at", "updated_at", "revision_number", "binding:host_id",
            "binding:vnic_type", "port_security_enabled"}


def _target(view: dict, net: dict | None, device_owner: str | None = None) -> dict:
    out = dict(view)
    owner = device_owner if device_owner is not None else view.get("device_owner") or ""
    out["network_device"] = owner.startswith("network:")
    if net is not None:
        out["network:project_id"] = net["project_id"]
        out["network:tenant_id"] = net["project_id"]
        out["shared"] = net["shared"]
    return out


def view(ctx, row: dict) -> dict:
    return common.strip_attrs(ctx, "port", store.port_view(row), HIDDEN)


async def _visible(conn, ctx, port_id: str, lock: bool = False) -> tuple[dict, dict]:
    row = await store.port(conn, port_id, lock=lock)
    net = await store.network(conn, row["network_id"]) if row else None
    if row is None or not ctx.can("get_port", _target(store.port_view(row), net)):
        raise store.port_not_found(port_id)
    return row, net


def _strings(body: dict) -> None:
    for attr in ("name", "description", "device_id", "device_owner", "binding:host_id"):
        common.check_string(body, attr)
    if "binding:vnic_type" in body and body["binding:vnic_type"] not in VNIC_TYPES:
        raise invalid_attr("binding:vnic_type", f"{body['binding:vnic_type']} is not in "
                                                f"{list(VNIC_TYPES)}")
    if "binding:profile" in body and not isinstance(body["binding:profile"], dict):
        raise invalid_attr("binding:profile", f"'{body['binding:profile']}' is not a "
                                              "dictionary")
    if "fixed_ips" in body and not isinstance(body["fixed_ips"], list):
        raise invalid_attr("fixed_ips", f"Invalid data format for fixed IP: "
                                        f"'{body['fixed_ips']}'")


def _check_fixed_ip_policy(ctx, action: str, fixed: list, target: dict) -> None:
    rule = f"{action}_port:fixed_ips"
    for item in fixed:
        if isinstance(item, dict) and "ip_address" in item:
            enforce(ctx, f"{rule}:ip_address", target)
        elif not ctx.can(rule, target):
            raise common.forbidden(f"rule:{rule}")


def _fixed_ips_filter(item: dict, wanted: list[str]) -> bool:
    for w in wanted:
        key, _, value = w.partition("=")
        if not any(ip.get(key) == value for ip in item.get("fixed_ips", [])):
            return False
    return True


# -- handlers ----------------------------------------------------------------------------

async def list_ports(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        where = None
        if not common.is_admin(ctx):
            owned = sa.select(N.c.id).where(N.c.project_id == ctx.project_id)
            where = sa.or_(P.c.project_id == ctx.project_id, P.c.network_id.in_(owned))
        rows = await store.ports(conn, where)
        nets = {n["id"]: n for n in await store.networks(
            conn, N.c.id.in_({r["network_id"] for r in rows}))} if rows else {}
    items = [view(ctx, r) for r in rows
             if ctx.can("get_port", _target(store.port_view(r), nets.get(r["network_id"])))]
    return common.listing(request, "ports", items, SORTABLE,
                          special={"fixed_ips": _fixed_ips_filter, **tags.special_filters()})


async def show_port(request: web.Request) -> web.Response:
    ctx = common.context(request)
    async with common.cloud(request).db.read() as conn:
        row, _ = await _visible(conn, ctx, request.match_info["id"])
    return common.one(request, "port", view(ctx, row))


async def create_port(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    body = await common.body_of(request, "port")
    common.check_attrs(body, CREATE_ATTRS)
    _strings(body)
    if "network_id" not in body:
        raise bad_request("Failed to parse request. Required attribute 'network_id' not "
                          "specified")
    net_id = common.check_uuid(body["network_id"], "network_id")
    project = common.owner_of(ctx, body)
    owner = body.get("device_owner") or ""
    async with cloud.db.write() as conn:
        net = await networks.visible(conn, ctx, net_id, lock=True)
        target = _target({"project_id": project, "tenant_id": project}, net, owner)
        enforce(ctx, "create_port", target)
        if "device_owner" in body:
            enforce(ctx, "create_port:device_owner", target)
        for attr in ("mac_address", "binding:host_id", "binding:profile"):
            if body.get(attr):
                enforce(ctx, f"create_port:{attr}", target)
        if "port_security_enabled" in body:
            secure = common.to_bool(body["port_security_enabled"], "port_security_enabled")
            if secure != net["port_security_enabled"]:
                enforce(ctx, "create_port:port_security_enabled", target)
        else:
            secure = None
        fixed = body.get("fixed_ips")
        if fixed is not None:
            _check_fixed_ip_policy(ctx, "create", fixed, target)
        row = await port_ops.create(
            conn, cloud, net, project, name=body.get("name") or "",
            description=body.get("description") or "", mac=body.get("mac_address"),
            fixed_ips=fixed, device_id=body.get("device_id") or "", device_owner=owner,
            host=body.get("binding:host_id") or "",
            security_groups=body.get("security_groups"), port_security_enabled=secure,
            admin_state_up=common.to_bool(body.get("admin_state_up", True),
                                          "admin_state_up"),
            binding_profile=body.get("binding:profile"),
            vnic_type=body.get("binding:vnic_type") or "normal",
            is_admin=common.is_admin(ctx))
    return common.one(request, "port", view(ctx, row), 201)


async def update_port(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    body = await common.body_of(request, "port")
    for attr in ("network_id", "project_id", "tenant_id", "id"):
        if attr in body:
            raise bad_request(f"Cannot update read-only attribute {attr}")
    common.check_attrs(body, COMMON)
    _strings(body)
    async with cloud.db.write() as conn:
        row, net = await _visible(conn, ctx, request.match_info["id"], lock=True)
        target = _target(store.port_view(row), net, body.get("device_owner"))
        enforce(ctx, "update_port", target, hide="get_port",
                hidden=store.port_not_found(row["id"]))
        if "device_owner" in body:
            enforce(ctx, "update_port:device_owner", target)
        for attr in ("mac_address", "binding:host_id", "binding:profile"):
            if attr in body:
                enforce(ctx, f"update_port:{attr}", target)
        values: dict = {k: body[k] for k in ("name", "description", "device_id",
                                             "device_owner") if k in body}
        if "admin_state_up" in body:
            values["admin_state_up"] = common.to_bool(body["admin_state_up"],
                                                      "admin_state_up")
        if "binding:host_id" in body:
            values["binding_host_id"] = body["binding:host_id"] or ""
            values["status"] = "ACTIVE" if values["binding_host_id"] else "DOWN"
        if "binding:profile" in body:
            values["binding_profile"] = json.dumps(body["binding:profile"] or {})
        if "binding:vnic_type" in body:
            values["binding_vnic_type"] = body["binding:vnic_type"]
        if "mac_address" in body and body["mac_address"] != row["mac_address"]:
            if row["binding_host_id"]:
                raise error(409, "PortBound", f"Unable to complete operation on port "
                                              f"{row['id']}, port is already bound, port "
                                              f"type: bridge, old_mac {row['mac_address']}, "
                                              f"new_mac {body['mac_address']}.")
            values["mac_address"] = await port_ops._mac(conn, net["id"], body["mac_address"])
        secure = row["port_security_enabled"]
        if "port_security_enabled" in body:
            secure = common.to_bool(body["port_security_enabled"], "port_security_enabled")
            if secure != row["port_security_enabled"]:
                enforce(ctx, "update_port:port_security_enabled", target)
            values["port_security_enabled"] = secure
        groups = row["security_groups"]
        groups_changed = False
        if "security_groups" in body:
            groups = await port_ops.check_groups(conn, row["project_id"],
                                                 body["security_groups"] or [],
                                                 common.is_admin(ctx))
            groups_changed = groups != row["security_groups"]
        if groups and not secure:
            if "security_groups" in body:
                raise port_ops.sg_requires_port_security()
            raise error(409, "PortSecurityPortHasSecurityGroup",
                        "Port has security group associated. Cannot disable port security "
                        "or ip address until security group is removed")
        ips_changed = False
        if "fixed_ips" in body:
            _check_fixed_ip_policy(ctx, "update", body["fixed_ips"] or [], target)
            subnets = await store.subnets(conn, S.c.network_id == net["id"], lock=True)
            ips = await ipam.plan(conn, net["id"], subnets, body["fixed_ips"] or [],
                                  values.get("mac_address", row["mac_address"]),
                                  device_owner=values.get("device_owner",
                                                          row["device_owner"]),
                                  exclude_port=row["id"])
            ips_changed = ips != row["fixed_ips"]
            await ipam.store(conn, row["id"], net["id"], ips)
            row["fixed_ips"] = ips
        if groups_changed:
            await port_ops.set_groups(conn, row["id"], groups)
        values.update(updated_at=utcnow(), revision_number=row["revision_number"] + 1)
        await conn.execute(P.update().where(P.c.id == row["id"]).values(**values))
        old_groups = row["security_groups"]
        row.update(values)
        row["security_groups"] = groups
        if groups_changed or ips_changed:
            await sg_members.members_changed(cloud, conn, set(groups) | set(old_groups))
        if (groups_changed or ips_changed or "port_security_enabled" in values) and \
                row["binding_host_id"]:
            compute = getattr(cloud, "compute", None)
            changed = getattr(compute, "ports_changed", None)
            if changed is not None and row["device_owner"].startswith("compute:"):
                await changed(conn, [row["device_id"]])
    return common.one(request, "port", view(ctx, row))


async def delete_port(request: web.Request) -> web.Response:
    ctx = common.context(request)
    cloud = common.cloud(request)
    async with cloud.db.write() as conn:
        row, net = await _visible(conn, ctx, request.match_info["id"], lock=True)
        enforce(ctx, "delete_port", _target(store.port_view(row), net), hide="get_port",
                hidden=store.port_not_found(row["id"]))
        await port_ops.delete(conn, cloud, row)
        changed = getattr(getattr(cloud, "compute", None), "ports_changed", None)
        if changed is not None and row["device_owner"].startswith("compute:") and \
                row["binding_host_id"] and row["device_id"]:
            await changed(conn, [row["device_id"]])     # its host unplugs the port
    return web.Response(status=204)


ROUTES = [
    ("GET", "/v2.0/ports", list_ports),
    ("POST", "/v2.0/ports", create_port),
    ("GET", "/v2.0/ports/{id}", show_port),
    ("PUT", "/v2.0/ports/{id}", update_port),
    ("DELETE", "/v2.0/ports/{id}", delete_port),
]
