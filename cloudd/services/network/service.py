"""NetworkService: what compute asks of the network, in-process, inside
compute's own transaction (the contract in docs/network-design.md).

Errors are ApiErrors with Nova's statuses and messages (nova/network/neutron.py
and the server create handler's mapping of them), so compute can raise them
as they are.
"""

from __future__ import annotations

import ipaddress

import sqlalchemy as sa

from cloudd.db import tables as t
from cloudd.services.network import attach, ipam, port_ops, quotas, secgroups, store, vifs
from cloudd.services.network.common import utcnow
from cloudd.web.errors import ApiError

N, P, G = t.network, t.port, t.security_group


class NetworkService:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    # -- helpers ---------------------------------------------------------------------

    async def _available(self, conn, project_id: str) -> list[dict]:
        """Nova's "auto": the project's own networks, else the shared ones."""
        own = await store.networks(conn, sa.and_(N.c.project_id == project_id,
                                                 N.c.router_external == sa.false()))
        if own:
            return own
        return await store.networks(conn, sa.and_(N.c.shared == sa.true(),
                                                  N.c.router_external == sa.false()))

    async def _usable_network(self, conn, project_id: str, net_id: str) -> dict:
        net = await store.network(conn, net_id)
        if net is None or not (net["project_id"] == project_id or net["shared"]
                               or net["router_external"]):
            raise ApiError(400, f"Network {net_id} could not be found.")
        return net

    async def _requests(self, conn, project_id: str, requested) -> list[dict]:
        """``requested`` as a list of {"uuid"?, "port"?, "fixed_ip"?}, "auto" resolved."""
        if requested == "none" or requested is None:
            return []
        if requested == "auto":
            nets = await self._available(conn, project_id)
            if not nets:
                raise ApiError(400, "Unable to automatically allocate a network for "
                                    f"project {project_id}")
            if len(nets) > 1:
                raise ApiError(409, "Multiple possible networks found, use a Network ID "
                                    "to be more specific.")
            return [{"uuid": nets[0]["id"]}]
        return [dict(r) for r in requested]

    async def _group_ids(self, conn, project_id: str, names) -> list[str]:
        """Nova's _process_security_groups: names or ids of the project's groups."""
        out = []
        for name in names or []:
            name = str(name)
            if name == "default":
                gid = await secgroups.ensure_default(conn, project_id)
                if gid not in out:
                    out.append(gid)
                continue
            rows = await secgroups.groups(conn, sa.and_(
                G.c.project_id == project_id, sa.or_(G.c.id == name, G.c.name == name)))
            by_id = [r for r in rows if r["id"] == name]
            rows = by_id or rows
            if not rows:
                raise ApiError(400, f"Security group {name} not found.")
            if len(rows) > 1:
                raise ApiError(409, f"Multiple security groups found matching '{name}'. "
                                    "Use an ID to be more specific.")
            if rows[0]["id"] not in out:
                out.append(rows[0]["id"])
        return out

    # -- the contract ----------------------------------------------------------------

    async def validate_requested(self, conn, project_id: str, requested) -> None:
        """Server create's checks (Nova's validate_networks): an unknown network
        or port (400), a port in use (409), a port without an address (400), a
        network without a subnet (400), a fixed IP outside the network or taken
        (400), "auto" with several networks to choose from (409), more ports
        than the project's port quota (403). Changes nothing."""
        wanted = await self._requests(conn, project_id, requested)
        new_ports = 0
        for order, req in enumerate(wanted):
            if req.get("port"):
                port = await store.port(conn, req["port"])
                if port is None or port["project_id"] != project_id:
                    raise ApiError(400, f"Port id {req['port']} could not be found.")
                if port["device_id"]:
                    raise ApiError(409, f"Port {req['port']} is still in use.")
                if not port["fixed_ips"]:
                    raise ApiError(400, f"Port {req['port']} requires a FixedIP in order "
                                        "to be used.")
                continue
            net = await self._usable_network(conn, project_id, req.get("uuid"))
            if not net["subnets"]:
                raise ApiError(400, f"Network {net['id']} requires a subnet in order to "
                                    "boot instances on.")
            new_ports += 1
            if req.get("fixed_ip"):
                await self._check_fixed_ip(conn, net, req["fixed_ip"])
        if new_ports:
            limit = (await quotas.limits(conn, self.cloud.config, project_id))["port"]
            used = await quotas.used(conn, project_id, "port")
            if 0 <= limit < used + new_ports:
                raise ApiError(403, "Maximum number of ports exceeded")

    async def _check_fixed_ip(self, conn, net: dict, address: str) -> None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise ApiError(400, f"Invalid fixed IP address ({address})") from None
        subnet, holder = await ipam.holder_of(conn, net["id"], ip)
        if subnet is None:
            raise ApiError(400, f"Fixed IP address {address} is not valid on network "
                                f"{net['id']}.")
        if holder is not None:
            raise ApiError(400, f"Fixed IP address {address} is already in use on "
                                f"instance {holder}.")

    async def validate_security_groups(self, conn, project_id: str, names) -> None:
        """Each name or id names exactly one of the project's groups (400/409)."""
        for name in names or []:
            if str(name) == "default":
                continue
            await self._group_ids(conn, project_id, [name])

    async def allocate_for_instance(self, conn, *, instance_uuid: str, project_id: str,
                                    host: str, zone: str, requested,
                                    security_groups: list[str]) -> list[dict]:
        """The instance's ports, bound to ``host``: new ones (deleted again when
        the instance goes) on the requested or "auto" network, with the given
        fixed IP and security groups; a given port is bound (and kept later).
        Returns the vifs, in request order: the caller sends them to ``host``
        in this transaction (the spawn), so that host gets no
        security_group_members for the member sets they carry."""
        wanted = await self._requests(conn, project_id, requested)
        if not wanted:
            return []
        group_ids = await self._group_ids(conn, project_id, security_groups or ["default"])
        made: list[dict] = []
        owner = f"compute:{zone}"
        for order, req in enumerate(wanted):
            if req.get("port"):
                port = await store.port(conn, req["port"], lock=True)
                if port is None:
                    raise ApiError(400, f"Port id {req['port']} could not be found.")
                if port["device_id"] and port["device_id"] != instance_uuid:
                    raise ApiError(409, f"Port {req['port']} is still in use.")
                await conn.execute(P.update().where(P.c.id == port["id"]).values(
                    device_id=instance_uuid, device_owner=owner, binding_host_id=host,
                    status="ACTIVE", device_order=order, updated_at=utcnow(),
                    revision_number=port["revision_number"] + 1))
                port.update(device_id=instance_uuid, device_owner=owner,
                            binding_host_id=host, status="ACTIVE")
                # Its groups' members are unchanged (a member set holds the
                # addresses of bound and unbound ports alike).
                net = await store.network(conn, port["network_id"])
            else:
                net = await self._usable_network(conn, project_id, req.get("uuid"))
                fixed = None
                if req.get("fixed_ip"):
                    fixed = [{"ip_address": req["fixed_ip"]}]
                groups = group_ids if net["port_security_enabled"] else []
                try:
                    port = await port_ops.create(
                        conn, self.cloud, net, project_id, fixed_ips=fixed,
                        device_id=instance_uuid, device_owner=owner, host=host,
                        security_groups=groups, preserve_on_delete=False,
                        device_order=order, is_admin=True, host_gets_vif=True)
                except ApiError as err:
                    raise ApiError(err.status if err.status != 404 else 400,
                                   err.message) from None
            if net["network_type"] != "local":
                await port_ops.dhcp_port(conn, self.cloud, net, host)
            made.append(port)
        return await vifs.for_ports(conn, made)

    async def deallocate_for_instance(self, conn, instance_uuid: str) -> None:
        """Deletes the ports made for the instance; unbinds the ones the user
        gave (they stay, with their addresses). Idempotent."""
        ports = await store.ports(conn, sa.and_(P.c.device_id == instance_uuid,
                                                P.c.device_owner.like("compute:%")),
                                  lock=True)
        for port in ports:
            if port["preserve_on_delete"]:
                await conn.execute(P.update().where(P.c.id == port["id"]).values(
                    device_id="", device_owner="", binding_host_id="", status="DOWN",
                    updated_at=utcnow(), revision_number=port["revision_number"] + 1))
            else:
                await port_ops.delete(conn, self.cloud, port, skip={instance_uuid})

    async def bind_instance(self, conn, instance_uuid: str, host: str) -> None:
        """Binds the instance's ports to ``host``: a resize to another host and
        its revert (Nova's migrate_instance_finish); flat and vlan networks
        get that host's DHCP port. Member sets do not change (they hold
        addresses, wherever the port is bound); the new host gets them in the
        instance's vifs."""
        ports = await store.ports(conn, sa.and_(P.c.device_id == instance_uuid,
                                                P.c.device_owner.like("compute:%")),
                                  lock=True)
        for port in ports:
            if port["binding_host_id"] == host:
                continue
            await conn.execute(P.update().where(P.c.id == port["id"]).values(
                binding_host_id=host, updated_at=utcnow(),
                revision_number=port["revision_number"] + 1))
            net = await store.network(conn, port["network_id"])
            if net["network_type"] != "local":
                await port_ops.dhcp_port(conn, self.cloud, net, host)

    async def vifs_for_instances(self, conn, instance_uuids) -> dict[str, list[dict]]:
        """Each instance's vifs, in the order the ports were asked for."""
        uuids = list(instance_uuids)
        out: dict[str, list[dict]] = {u: [] for u in uuids}
        if not uuids:
            return out
        ports = await store.ports(conn, sa.and_(P.c.device_id.in_(uuids),
                                                P.c.device_owner.like("compute:%")))
        ports.sort(key=lambda p: (p["device_order"], p["created_at"], p["id"]))
        for port, vif in zip(ports, await vifs.for_ports(conn, ports)):
            out[port["device_id"]].append(vif)
        return out

    async def allocate_port_for_instance(self, conn, *, instance_uuid: str,
                                         project_id: str, host: str, zone: str,
                                         network_id: str | None = None,
                                         port_id: str | None = None,
                                         fixed_ip: str | None = None,
                                         security_groups=None) -> dict:
        """Interface attach: one more port for the instance bound to ``host``
        (status DOWN until ``port_attached``); returns its vif. Nova's
        os-interface errors (404 network/port not found, 409 port or IP in
        use, 400 no or several networks, 403 port quota)."""
        return await attach.allocate_port(
            self, conn, instance_uuid=instance_uuid, project_id=project_id, host=host,
            zone=zone, network_id=network_id, port_id=port_id, fixed_ip=fixed_ip,
            security_groups=security_groups)

    async def port_attached(self, conn, instance_uuid: str, port_id: str) -> None:
        """The guest has the port (the agent attached it): status ACTIVE."""
        await attach.port_attached(conn, instance_uuid, port_id)

    async def deallocate_port_for_instance(self, conn, instance_uuid: str,
                                           port_id: str) -> bool:
        """Interface detach (or an attach rolled back): a port made for the
        instance is deleted, a given one unbound and kept. False when the
        instance has no such port."""
        return await attach.deallocate_port(self, conn, instance_uuid, port_id)

    async def instances_for_security_group(self, conn, group_id: str
                                           ) -> list[tuple[str, str]]:
        """(instance_uuid, host) of every bound port in the group, or in a group
        whose rules name it as remote group."""
        return await secgroups.instances_for_group(conn, group_id)
