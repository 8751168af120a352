"""Interface attach and detach: one port for a running instance (Nova's
allocate_for_instance with one request, and deallocate_port_for_instance),
with the errors Nova's os-interface API answers (attach_interfaces.py)."""

from __future__ import annotations

import ipaddress

import sqlalchemy as sa

from cloudd.db import tables as t
from cloudd.services.network import ipam, port_ops, quotas, store, vifs
from cloudd.services.network.common import utcnow
from cloudd.web.errors import ApiError

P = t.port


def _not_found_network(net_id: str) -> ApiError:
    return ApiError(404, f"Network {net_id} could not be found.")


async def _network(service, conn, project_id: str, net_id: str | None) -> dict:
    if net_id is None:
        nets = await service._available(conn, project_id)
        if not nets:
            raise ApiError(400, "No specific network was requested and none are available "
                                f"for project '{project_id}'.")
        if len(nets) > 1:
            raise ApiError(400, "Multiple possible networks found, use a Network ID to be "
                                "more specific.")
        return nets[0]
    net = await store.network(conn, net_id)
    if net is None or not (net["project_id"] == project_id or net["shared"]
                           or net["router_external"]):
        raise _not_found_network(net_id)
    return net


async def _check_ip(conn, net: dict, address: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ApiError(400, f"{address} is not a valid IP v4/6 address.") from None
    subnet, holder = await ipam.holder_of(conn, net["id"], ip)
    if subnet is None:
        raise ApiError(400, f"Fixed IP {address} is not a valid ip address for network "
                            f"{net['id']}.")
    if holder is not None:
        raise ApiError(409, f"Fixed IP {address} is already in use.")


async def _next_order(conn, instance_uuid: str) -> int:
    top = (await conn.execute(sa.select(sa.func.max(P.c.device_order)).where(
        P.c.device_id == instance_uuid, P.c.device_owner.like("compute:%")))).scalar()
    return 0 if top is None else int(top) + 1


async def allocate_port(service, conn, *, instance_uuid: str, project_id: str, host: str,
                        zone: str, network_id: str | None = None,
                        port_id: str | None = None, fixed_ip: str | None = None,
                        security_groups=None) -> dict:
    """One more port for the instance, bound to ``host`` with status DOWN
    (``port_attached`` makes it ACTIVE once the guest has it): the given port
    (kept on detach) or a new one on ``network_id`` (or the one network the
    project may use), deleted on detach. Returns its vif."""
    owner = f"compute:{zone}"
    order = await _next_order(conn, instance_uuid)
    if port_id:
        port = await store.port(conn, port_id, lock=True)
        if port is None or port["project_id"] != project_id:
            raise ApiError(404, f"Port id {port_id} could not be found.")
        if port["device_id"]:
            raise ApiError(409, f"Port {port_id} is still in use.")
        if not port["fixed_ips"]:
            raise ApiError(400, f"Port {port_id} requires a FixedIP in order to be used.")
        await conn.execute(P.update().where(P.c.id == port_id).values(
            device_id=instance_uuid, device_owner=owner, binding_host_id=host,
            status="DOWN", device_order=order, updated_at=utcnow(),
            revision_number=port["revision_number"] + 1))
        port.update(device_id=instance_uuid, device_owner=owner, binding_host_id=host,
                    status="DOWN", device_order=order)
        net = await store.network(conn, port["network_id"])       # members unchanged
    else:
        net = await _network(service, conn, project_id, network_id)
        if not net["subnets"]:
            raise ApiError(400, f"Network {net['id']} requires a subnet in order to boot "
                                "instances on.")
        if fixed_ip:
            await _check_ip(conn, net, fixed_ip)
        limit = (await quotas.limits(conn, service.cloud.config, project_id))["port"]
        if 0 <= limit < await quotas.used(conn, project_id, "port") + 1:
            raise ApiError(403, "Maximum number of ports exceeded")
        groups = []
        if net["port_security_enabled"]:
            groups = await service._group_ids(conn, project_id,
                                              security_groups or ["default"])
        try:
            port = await port_ops.create(
                conn, service.cloud, net, project_id,
                fixed_ips=[{"ip_address": fixed_ip}] if fixed_ip else None,
                device_id=instance_uuid, device_owner=owner, host=host,
                security_groups=groups, preserve_on_delete=False, device_order=order,
                is_admin=True, count_quota=False)
        except ApiError as err:
            if err.kind == "IpAddressGenerationFailure":
                raise ApiError(400, "No fixed IP addresses available for network: "
                                    f"{net['id']}") from None
            raise ApiError(400 if err.status == 404 else err.status, err.message) from None
        await conn.execute(P.update().where(P.c.id == port["id"]).values(status="DOWN"))
        port["status"] = "DOWN"
    if net["network_type"] != "local":
        await port_ops.dhcp_port(conn, service.cloud, net, host)
    [vif] = await vifs.for_ports(conn, [port])
    return vif


async def port_attached(conn, instance_uuid: str, port_id: str) -> None:
    """The guest has the port: its status is ACTIVE."""
    await conn.execute(P.update().where(
        P.c.id == port_id, P.c.device_id == instance_uuid).values(
            status="ACTIVE", updated_at=utcnow()))


async def deallocate_port(service, conn, instance_uuid: str, port_id: str) -> bool:
    """Gives one port of the instance back: a port made for it is deleted, one
    the user gave is unbound and kept. False when the instance has no such port."""
    found = await store.ports(conn, sa.and_(P.c.id == port_id,
                                            P.c.device_id == instance_uuid,
                                            P.c.device_owner.like("compute:%")), lock=True)
    if not found:
        return False
    port = found[0]
    if port["preserve_on_delete"]:
        await conn.execute(P.update().where(P.c.id == port_id).values(
            device_id="", device_owner="", binding_host_id="", status="DOWN",
            updated_at=utcnow(), revision_number=port["revision_number"] + 1))
    else:
        await port_ops.delete(conn, service.cloud, port, skip={instance_uuid})
    return True
