"""Reading networks, subnets and ports, and their Neutron views.

Rows come back as dicts; ports carry ``fixed_ips`` and ``security_groups``,
networks carry ``subnets`` (ids), as Neutron's resources do.
"""

from __future__ import annotations

import sqlalchemy as sa

from cloudd.db import tables as t
from cloudd.services.network.common import error, iso, loads

N, S, P, A = t.network, t.subnet, t.port, t.ip_allocation
PSG = t.port_security_group


def network_not_found(net_id: str):
    return error(404, "NetworkNotFound", f"Network {net_id} could not be found.")


def subnet_not_found(subnet_id: str):
    return error(404, "SubnetNotFound", f"Subnet {subnet_id} could not be found.")


def port_not_found(port_id: str):
    return error(404, "PortNotFound", f"Port {port_id} could not be found.")


def visible_clause(table, project_id: str | None, shared_col=None):
    """Rows of ``project_id`` (and shared/external networks); None: all."""
    if project_id is None:
        return sa.true()
    clauses = [table.c.project_id == project_id]
    if shared_col is not None:
        clauses += shared_col
    return sa.or_(*clauses)


# -- networks ----------------------------------------------------------------------------

async def _rows(conn, table, where, lock: bool, *order) -> list[dict]:
    """The rows of ``table`` matching ``where`` (all when None), as dicts;
    ``lock`` takes them FOR UPDATE (PostgreSQL; SQLite ignores it)."""
    q = sa.select(table)
    if where is not None:
        q = q.where(where)
    if lock:
        q = q.with_for_update()
    if order:
        q = q.order_by(*order)
    return [dict(r._mapping) for r in (await conn.execute(q)).all()]


async def networks(conn, where=None, lock: bool = False) -> list[dict]:
    rows = await _rows(conn, N, where, lock)
    if rows:
        ids = [r["id"] for r in rows]
        subs: dict[str, list[str]] = {i: [] for i in ids}
        for sid, nid in (await conn.execute(sa.select(S.c.id, S.c.network_id)
                                            .where(S.c.network_id.in_(ids))
                                            .order_by(S.c.created_at, S.c.id))).all():
            subs[nid].append(sid)
        for r in rows:
            r["subnets"] = subs[r["id"]]
    return rows


async def network(conn, net_id: str, lock: bool = False) -> dict | None:
    found = await networks(conn, N.c.id == net_id, lock=lock)
    return found[0] if found else None


def visible_networks(project_id: str | None):
    if project_id is None:
        return None
    return sa.or_(N.c.project_id == project_id, N.c.shared == sa.true(),
                  N.c.router_external == sa.true())


def network_view(row: dict) -> dict:
    return {
        "id": row["id"], "name": row["name"], "description": row["description"],
        "tenant_id": row["project_id"], "project_id": row["project_id"],
        "admin_state_up": row["admin_state_up"], "status": row["status"],
        "subnets": list(row.get("subnets", [])), "shared": row["shared"],
        "router:external": row["router_external"], "mtu": row["mtu"],
        "port_security_enabled": row["port_security_enabled"],
        "provider:network_type": row["network_type"],
        "provider:physical_network": row["physical_network"],
        "provider:segmentation_id": row["segmentation_id"],
        "l2_adjacency": True,
        "tags": loads(row["tags"], []),
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "revision_number": row["revision_number"],
    }


# -- subnets -----------------------------------------------------------------------------

async def subnets(conn, where=None, lock: bool = False) -> list[dict]:
    return await _rows(conn, S, where, lock, S.c.created_at, S.c.id)


async def subnet(conn, subnet_id: str, lock: bool = False) -> dict | None:
    found = await subnets(conn, S.c.id == subnet_id, lock=lock)
    return found[0] if found else None


def subnet_view(row: dict) -> dict:
    return {
        "id": row["id"], "name": row["name"], "description": row["description"],
        "tenant_id": row["project_id"], "project_id": row["project_id"],
        "network_id": row["network_id"], "ip_version": row["ip_version"],
        "cidr": row["cidr"], "gateway_ip": row["gateway_ip"],
        "enable_dhcp": row["enable_dhcp"],
        "ipv6_ra_mode": row["ipv6_ra_mode"], "ipv6_address_mode": row["ipv6_address_mode"],
        "allocation_pools": loads(row["allocation_pools"], []),
        "dns_nameservers": loads(row["dns_nameservers"], []),
        "host_routes": loads(row["host_routes"], []),
        "subnetpool_id": None, "service_types": [],
        "tags": loads(row["tags"], []),
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "revision_number": row["revision_number"],
    }


# -- ports -------------------------------------------------------------------------------

async def ports(conn, where=None, lock: bool = False) -> list[dict]:
    rows = await _rows(conn, P, where, lock)
    if not rows:
        return rows
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        r["fixed_ips"], r["security_groups"] = [], []
    ids = list(by_id)
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for a in (await conn.execute(sa.select(A).where(A.c.port_id.in_(part)))).all():
            by_id[a.port_id]["fixed_ips"].append(
                {"subnet_id": a.subnet_id, "ip_address": a.ip_address})
        for g in (await conn.execute(sa.select(PSG).where(PSG.c.port_id.in_(part))
                                     .order_by(PSG.c.security_group_id))).all():
            by_id[g.port_id]["security_groups"].append(g.security_group_id)
    return rows


async def port(conn, port_id: str, lock: bool = False) -> dict | None:
    found = await ports(conn, P.c.id == port_id, lock=lock)
    return found[0] if found else None


def port_view(row: dict, net_owner: str | None = None) -> dict:
    bound = bool(row["binding_host_id"])
    return {
        "id": row["id"], "name": row["name"], "description": row["description"],
        "tenant_id": row["project_id"], "project_id": row["project_id"],
        "network_id": row["network_id"], "mac_address": row["mac_address"],
        "admin_state_up": row["admin_state_up"], "status": row["status"],
        "device_id": row["device_id"], "device_owner": row["device_owner"],
        "fixed_ips": list(row["fixed_ips"]),
        "security_groups": list(row["security_groups"]),
        "port_security_enabled": row["port_security_enabled"],
        "binding:host_id": row["binding_host_id"],
        "binding:vnic_type": row["binding_vnic_type"],
        "binding:profile": loads(row["binding_profile"], {}),
        "binding:vif_type": "bridge" if bound else "unbound",
        "binding:vif_details": {"port_filter": True, "connectivity": "l2"} if bound else {},
        "tags": loads(row["tags"], []),
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "revision_number": row["revision_number"],
    }
