"""An in-memory stand-in for ``cloud.network`` (the NetworkService contract in
docs/network-design.md), for tests of the compute side alone: it records
what compute asked and answers with vifs of the contract's shape.

Networks: ``default`` (shared) and whatever ``add_network`` makes; ports
get addresses .10, .11, ... of their network's /24. ``fail_allocate`` makes
the next allocations raise the ApiError it holds.
"""

from __future__ import annotations

import itertools
import uuid as uuidlib

from cloudd.web.errors import ApiError


class FakeNetworks:
    def __init__(self) -> None:
        self.networks: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.fail_allocate: ApiError | None = None
        self._macs = itertools.count(0x10)
        self.default = self.add_network("default", "10.253.0", shared=True)

    def add_network(self, name: str, prefix: str, *, project: str | None = None,
                    shared: bool = False) -> str:
        net_id = str(uuidlib.uuid4())
        self.networks[net_id] = {"id": net_id, "name": name, "prefix": prefix,
                                 "project": project, "shared": shared,
                                 "subnet": str(uuidlib.uuid4()), "next": 10}
        return net_id

    def add_port(self, net_id: str, project: str) -> str:
        port_id = str(uuidlib.uuid4())
        self.ports[port_id] = self._port(port_id, net_id, None, project, None, user=True)
        return port_id

    def _port(self, port_id, net_id, instance, project, host, *, user=False, ip=None):
        net = self.networks[net_id]
        if ip is None:
            ip = f"{net['prefix']}.{net['next']}"
            net["next"] += 1
        return {"id": port_id, "network_id": net_id, "device_id": instance,
                "project": project, "host": host, "user": user, "ip": ip,
                "mac": f"fa:16:3e:00:00:{next(self._macs):02x}"}

    def _available(self, project: str) -> list[str]:
        own = [n for n, v in self.networks.items() if v["project"] == project]
        if own:
            return own
        return [self.default]

    # -- the contract -------------------------------------------------------------------

    async def validate_requested(self, conn, project_id, requested) -> None:
        self.calls.append(("validate", project_id, requested))
        if requested == "auto" and len(self._available(project_id)) > 1:
            raise ApiError(409, "Multiple possible networks found, use a Network ID to be "
                                "more specific.")
        if isinstance(requested, list):
            for req in requested:
                if req.get("port"):
                    port = self.ports.get(req["port"])
                    if port is None:
                        raise ApiError(400, f"Port id {req['port']} could not be found.")
                    if port["device_id"]:
                        raise ApiError(409, f"Port {req['port']} is still in use.")
                elif req.get("uuid") not in self.networks:
                    raise ApiError(400, f"Network {req.get('uuid')} could not be found.")

    async def allocate_for_instance(self, conn, *, instance_uuid, project_id, host, zone,
                                    requested, security_groups) -> list[dict]:
        self.calls.append(("allocate", instance_uuid, host, zone, requested,
                           list(security_groups)))
        if self.fail_allocate is not None:
            raise self.fail_allocate
        if requested == "none":
            return []
        if requested == "auto":
            requested = [{"uuid": self._available(project_id)[0]}]
        for req in requested:
            if req.get("port"):
                port = self.ports[req["port"]]
                port.update(device_id=instance_uuid, host=host)
            else:
                port_id = str(uuidlib.uuid4())
                self.ports[port_id] = self._port(port_id, req["uuid"], instance_uuid,
                                                 project_id, host, ip=req.get("fixed_ip"))
        return (await self.vifs_for_instances(conn, [instance_uuid]))[instance_uuid]

    async def deallocate_for_instance(self, conn, instance_uuid) -> None:
        self.calls.append(("deallocate", instance_uuid))
        for port_id, port in list(self.ports.items()):
            if port["device_id"] == instance_uuid:
                if port["user"]:
                    port.update(device_id=None, host=None)
                else:
                    del self.ports[port_id]

    async def bind_instance(self, conn, instance_uuid, host) -> None:
        self.calls.append(("bind", instance_uuid, host))
        for port in self.ports.values():
            if port["device_id"] == instance_uuid:
                port["host"] = host

    async def vifs_for_instances(self, conn, instance_uuids) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {u: [] for u in instance_uuids}
        for port in self.ports.values():
            if port["device_id"] in out:
                out[port["device_id"]].append(self.vif(port))
        return out

    def vif(self, port: dict) -> dict:
        net = self.networks[port["network_id"]]
        return {"port_id": port["id"], "mac": port["mac"], "network_id": net["id"],
                "network_name": net["name"], "bridge": f"cdbr-{net['id'][:10]}",
                "tap": f"tap{port['id'][:11]}", "mtu": 1500, "network_type": "local",
                "physical_network": None, "segmentation_id": None,
                "host_address": f"{net['prefix']}.1/24", "nat": True,
                "subnets": [{"id": net["subnet"], "cidr": f"{net['prefix']}.0/24",
                             "ip_version": 4, "gateway_ip": f"{net['prefix']}.1",
                             "dns_nameservers": [], "host_routes": [], "enable_dhcp": True,
                             "ips": [port["ip"]]}],
                "port_security_enabled": True, "security_group_rules": [],
                "status": port.get("status", "ACTIVE")}

    async def allocate_port_for_instance(self, conn, *, instance_uuid, project_id, host,
                                         zone, network_id=None, port_id=None,
                                         fixed_ip=None, security_groups=None) -> dict:
        self.calls.append(("allocate_port", instance_uuid, host, network_id, port_id,
                           fixed_ip))
        if self.fail_allocate is not None:
            raise self.fail_allocate
        if port_id:
            port = self.ports.get(port_id)
            if port is None:
                raise ApiError(404, f"Port id {port_id} could not be found.")
            if port["device_id"]:
                raise ApiError(409, f"Port {port_id} is still in use.")
            port.update(device_id=instance_uuid, host=host, status="DOWN")
        else:
            if network_id is None:
                network_id = self._available(project_id)[0]
            if network_id not in self.networks:
                raise ApiError(404, f"Network {network_id} could not be found.")
            port_id = str(uuidlib.uuid4())
            self.ports[port_id] = port = self._port(port_id, network_id, instance_uuid,
                                                    project_id, host, ip=fixed_ip)
            port["status"] = "DOWN"
        return self.vif(port)

    async def port_attached(self, conn, instance_uuid, port_id) -> None:
        self.calls.append(("port_attached", instance_uuid, port_id))
        self.ports[port_id]["status"] = "ACTIVE"

    async def deallocate_port_for_instance(self, conn, instance_uuid, port_id) -> bool:
        self.calls.append(("deallocate_port", instance_uuid, port_id))
        port = self.ports.get(port_id)
        if port is None or port["device_id"] != instance_uuid:
            return False
        if port["user"]:
            port.update(device_id=None, host=None, status="DOWN")
        else:
            del self.ports[port_id]
        return True

    async def instances_for_security_group(self, conn, group_id) -> list[tuple[str, str]]:
        return []
