"""Making, binding and removing ports: what the port API and the in-process
NetworkService share (MACs, fixed IPs, security groups, port security)."""

from __future__ import annotations

import json
import random
import re

import sqlalchemy as sa

from cloudd.db import tables as t
from cloudd.services.network import ipam, quotas, secgroups, sg_members, store
from cloudd.services.network.common import error, invalid_attr, new_id, utcnow

P, PSG, S, G = t.port, t.port_security_group, t.subnet, t.security_group
MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
BASE_MAC = "fa:16:3e"


def sg_requires_port_security():
    return error(400, "PortSecurityAndIPRequiredForSecurityGroups",
                 "Port security must be enabled and port must have an IP address in order "
                 "to use security groups.")


async def _mac(conn, network_id: str, wanted: str | None) -> str:
    used = sa.select(P.c.id).where(P.c.network_id == network_id)
    if wanted is not None:
        mac = str(wanted).lower().replace("-", ":")
        if not MAC.match(mac) or int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
            raise invalid_attr("mac_address", f"'{wanted}' is not a valid MAC address")
        if (await conn.execute(used.where(P.c.mac_address == mac))).first():
            raise error(409, "MacAddressInUse",
                        f"Unable to complete operation for network {network_id}. The mac "
                        f"address {mac} is in use.")
        return mac
    for _ in range(16):
        mac = BASE_MAC + "".join(f":{random.randint(0, 255):02x}" for _ in range(3))
        if not (await conn.execute(used.where(P.c.mac_address == mac))).first():
            return mac
    raise error(503, "MacAddressGenerationFailure",
                f"Unable to generate unique mac on network {network_id}.")


async def check_groups(conn, project_id: str, group_ids, is_admin: bool) -> list[str]:
    """The given security group ids, each one that exists and is the project's."""
    if not isinstance(group_ids, list):
        raise invalid_attr("security_groups", f"'{group_ids}' is not a list")
    out = []
    for gid in group_ids:
        row = await secgroups.group(conn, str(gid))
        if row is None or (row["project_id"] != project_id and not is_admin):
            raise secgroups.not_found(str(gid))
        if row["id"] not in out:
            out.append(row["id"])
    return out


async def set_groups(conn, port_id: str, group_ids: list[str]) -> None:
    await conn.execute(PSG.delete().where(PSG.c.port_id == port_id))
    for gid in group_ids:
        await conn.execute(PSG.insert().values(port_id=port_id, security_group_id=gid))


async def create(conn, cloud, net: dict, project_id: str, *, name: str = "",
                 description: str = "", mac: str | None = None,
                 fixed_ips: list[dict] | None = None, device_id: str = "",
                 device_owner: str = "", host: str = "", security_groups=None,
                 port_security_enabled: bool | None = None, admin_state_up: bool = True,
                 binding_profile: dict | None = None, vnic_type: str = "normal",
                 preserve_on_delete: bool = True, device_order: int = 0,
                 is_admin: bool = False,
                 count_quota: bool = True, host_gets_vif: bool = False) -> dict:
    """A new port on ``net`` with its addresses and groups, inside the caller's
    transaction; returns the stored port (with fixed_ips and security_groups).
    ``host_gets_vif``: the caller sends the port's vif to ``host`` in this
    transaction (a build's spawn; sg_members.members_changed)."""
    if count_quota:
        await quotas.check(conn, cloud.config, project_id, "port")
    subnets = await store.subnets(conn, S.c.network_id == net["id"], lock=True)
    mac = await _mac(conn, net["id"], mac)
    secure = net["port_security_enabled"] if port_security_enabled is None \
        else port_security_enabled
    if security_groups is None:
        groups = []
        if secure and not device_owner.startswith("network:"):
            groups = [await secgroups.ensure_default(conn, project_id)]
    else:
        groups = await check_groups(conn, project_id, security_groups, is_admin)
    if groups and not secure:
        raise sg_requires_port_security()
    port_id = new_id()
    ips = await ipam.plan(conn, net["id"], subnets, fixed_ips, mac,
                          device_owner=device_owner)
    now = utcnow()
    row = {"id": port_id, "project_id": project_id, "network_id": net["id"], "name": name,
           "description": description, "mac_address": mac, "admin_state_up": admin_state_up,
           "status": "ACTIVE" if host else "DOWN", "device_id": device_id,
           "device_owner": device_owner, "binding_host_id": host,
           "binding_vnic_type": vnic_type, "binding_profile": json.dumps(binding_profile or {}),
           "port_security_enabled": secure, "preserve_on_delete": preserve_on_delete,
           "device_order": device_order,
           "tags": "[]", "revision_number": 0, "created_at": now, "updated_at": now}
    await conn.execute(P.insert().values(**row))
    await ipam.store(conn, port_id, net["id"], ips)
    await set_groups(conn, port_id, groups)
    row.update(fixed_ips=ips, security_groups=groups)
    if groups:
        await sg_members.members_changed(cloud, conn, groups,
                                         host_has_vif=host if host_gets_vif else None)
    return row


async def delete(conn, cloud, port: dict, skip=()) -> None:
    """Remove a port, its addresses and group memberships; the hosts holding
    its groups' member sets hear of it (``skip``: kept for callers, unused)."""
    await conn.execute(P.delete().where(P.c.id == port["id"]))
    if port["security_groups"]:
        await sg_members.members_changed(cloud, conn, port["security_groups"])


async def dhcp_port(conn, cloud, net: dict, host: str) -> dict | None:
    """The per-host ``network:dhcp`` port of a flat or vlan network (its address
    is the host's on the bridge), made when first needed."""
    device = f"dhcp-{host}"
    found = await store.ports(conn, sa.and_(P.c.network_id == net["id"],
                                            P.c.device_owner == "network:dhcp",
                                            P.c.device_id == device))
    if found:
        return found[0]
    subnets = await store.subnets(conn, S.c.network_id == net["id"])
    if not any(s["ip_version"] == 4 and s["enable_dhcp"] for s in subnets):
        return None
    return await create(conn, cloud, net, net["project_id"], device_id=device,
                        device_owner="network:dhcp", host=host, security_groups=[],
                        port_security_enabled=False, count_quota=False, is_admin=True)
