"""HostNetwork: plug, unplug, update and reconcile the vifs of this host's guests."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from cloudd.agent.network import dnsmasq, members, nft
from cloudd.agent.network.runner import CommandError, Runner

log = logging.getLogger("cloudd.agent.network")

PREFIX = "cdbr-"
# A member set no vif here names is forgotten once the controller has sent
# something an hour newer (until then a spawn spec made before its last
# update may still come, and must not win).
UNREFERENCED_KEEP_NS = 3600 * 10**9


class HostNetworkError(RuntimeError):
    pass


def parse_mappings(text) -> dict[str, str]:
    """``physnet:iface`` pairs (a string separated by commas, or a list)."""
    items = text.split(",") if isinstance(text, str) else list(text or [])
    out = {}
    for item in items:
        item = item.strip()
        if item:
            name, _, iface = item.partition(":")
            if not iface:
                raise ValueError(f"physical_interface_mappings: {item!r} is not PHYSNET:IFACE")
            out[name.strip()] = iface.strip()
    return out


class HostNetwork:
    def __init__(self, state_dir: Path, *, runner: Runner | None = None,
                 mappings: dict[str, str] | None = None, metadata_port: int = 8775,
                 dnsmasq_binary: str = "dnsmasq", proxy=None,
                 tables: tuple[str, str] = (nft.FILTER, nft.NAT),
                 dnsmasq_dir: Path | None = None) -> None:
        self.dir = Path(state_dir)
        # dnsmasq reads its hosts file as "nobody": every directory above its
        # files must let others through (the agent gives its own o+x).
        self.dnsmasq_dir = Path(dnsmasq_dir) if dnsmasq_dir else self.dir / "dnsmasq"
        self.runner = runner or Runner()
        self.mappings = mappings or {}
        self.metadata_port = metadata_port
        self.dnsmasq_binary = dnsmasq_binary
        self.proxy = proxy
        self.tables = tables
        self.instances: dict[str, list[dict]] = {}
        self.applied: dict[str, dict] = {}      # network_id -> its vif as applied
        self.members: dict[str, dict] = {}      # security group -> its members
        self._sets: set[tuple[str, str]] = set()   # (group, ethertype) in nft now
        self._lock = asyncio.Lock()
        self._forwarding = False
        self.stateful: bool | None = None    # conntrack in the bridge family
        self._load()

    # --- state ------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.dir / "host-network.json"

    def _load(self) -> None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        self.instances = data.get("instances") or {}
        self.applied = data.get("networks") or {}
        self.members = data.get("security_group_members") or {}

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"instances": self.instances, "networks": self.applied,
                       "security_group_members": self.members}, f)
        tmp.replace(self.state_file)

    # --- the interface ------------------------------------------------------------

    async def plug(self, uuid: str, network_info: list[dict]) -> None:
        async with self._lock:
            if not network_info and uuid not in self.instances:
                return
            self.instances[uuid] = list(network_info or [])
            members.put_from_vifs(self.members, network_info)
            await self._apply()

    async def update(self, uuid: str, network_info: list[dict]) -> None:
        """Re-apply ``uuid``'s rules and DHCP entries (nothing if it is not here)."""
        async with self._lock:
            if uuid not in self.instances:
                return
            self.instances[uuid] = list(network_info or [])
            members.put_from_vifs(self.members, network_info)
            await self._apply()

    async def set_members(self, group_id: str, new: dict) -> None:
        """A security group's members (the ``security_group_members`` command):
        kept unless older than what is here; the group's sets, when a vif
        here names the group, are refilled in one nft transaction."""
        async with self._lock:
            if not members.put(self.members, group_id, new):
                return
            self._save()
            sets = [eth for gid, eth in sorted(self._sets) if gid == group_id]
            if not sets:
                return
            script = nft.set_update(self.tables[0], group_id, self.members[group_id], sets)
            try:
                await self.runner.run(["nft", "-f", "-"], input=script)
            except CommandError as exc:
                log.warning("refilling the member sets failed (%s): applying all", exc)
                await self._apply()

    async def unplug(self, uuid: str) -> None:
        async with self._lock:
            if self.instances.pop(uuid, None) is None:
                return
            await self._apply()

    async def reconcile(self, instances: dict[str, list[dict]] | None = None) -> None:
        """Make the host match ``instances`` (default: the saved state), removing
        any ``cdbr-*`` bridge, dnsmasq and nft chain nothing needs."""
        async with self._lock:
            if instances is not None:
                self.instances = {u: list(n or []) for u, n in instances.items()}
                for vifs in self.instances.values():
                    members.put_from_vifs(self.members, vifs)
            await self._apply(sweep=True)

    def plugged(self) -> list[str]:
        return list(self.instances)

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()

    # --- applying -----------------------------------------------------------------

    def _wanted(self) -> dict[str, list[dict]]:
        nets: dict[str, list[dict]] = {}
        for vifs in self.instances.values():
            for v in vifs:
                if v.get("bridge"):
                    nets.setdefault(v["network_id"], []).append(v)
        return nets

    async def _apply(self, sweep: bool = False) -> None:
        wanted = self._wanted()
        stale = {n: v for n, v in self.applied.items() if n not in wanted}
        for net_id, vifs in wanted.items():
            self.applied[net_id] = await self._ensure_network(net_id, vifs)
            self._save()
        all_vifs = [v for vifs in wanted.values() for v in vifs]
        if self.stateful is None:
            rc, _ = await self.runner.run(["nft", "-c", "-f", "-"], input=nft.CT_PROBE,
                                          check=False)
            self.stateful = rc == 0
            if not self.stateful:
                log.warning("no connection tracking for bridges in this kernel "
                            "(nf_conntrack_bridge): security groups match replies "
                            "statelessly")
        self._forget_members(all_vifs)
        await self.runner.run(["nft", "-f", "-"],
                              input=nft.render(all_vifs, self.metadata_port, self.stateful,
                                               self.tables, self.members))
        self._sets = nft.referenced_sets(all_vifs)
        for net_id, vif in stale.items():
            await self._remove_network(net_id, vif)
            self.applied.pop(net_id, None)
        self._save()
        if sweep:
            await self._sweep({v[0]["bridge"] for v in wanted.values()})

    def _forget_members(self, vifs: list[dict]) -> None:
        """Drop member sets no vif names that are an hour older than the newest."""
        used = members.referenced(vifs)
        newest = max((m.get("version", 0) for m in self.members.values()), default=0)
        for gid in [g for g, m in self.members.items() if g not in used
                    and m.get("version", 0) < newest - UNREFERENCED_KEEP_NS]:
            del self.members[gid]

    async def _ensure_network(self, net_id: str, vifs: list[dict]) -> dict:
        """The network's bridge, uplink, dnsmasq and metadata listener; returns
        what removing it later needs (kept in the state file)."""
        vif = vifs[0]
        brief = {"bridge": vif["bridge"], "vlan_interface": None}
        br = vif["bridge"]
        if not br.startswith(PREFIX):
            raise HostNetworkError(f"bridge {br!r} is not a cloudd bridge")
        run = self.runner.run
        rc, _ = await run(["ip", "link", "show", "dev", br], check=False)
        if rc != 0:
            await run(["ip", "link", "add", br, "type", "bridge"])
        args = ["ip", "link", "set", "dev", br]
        if vif.get("mtu"):
            args += ["mtu", str(vif["mtu"])]
        await run(args + ["up"])
        if vif.get("host_address"):
            await run(["ip", "addr", "replace", vif["host_address"], "dev", br])
        kind = vif.get("network_type") or "local"
        if kind == "local":
            if not self._forwarding:
                await run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
                self._forwarding = True
        else:
            iface = await self._uplink(vif)
            if vif.get("network_type") == "vlan":
                brief["vlan_interface"] = iface
            await run(["ip", "link", "set", "dev", iface, "master", br])
            await run(["ip", "link", "set", "dev", iface, "up"])
        if vif.get("host_address") and dnsmasq.dhcp_subnet(vif):
            for d in (self.dir, self.dnsmasq_dir):
                d.mkdir(parents=True, exist_ok=True)
                d.chmod(d.stat().st_mode | 0o001)
            await self._dnsmasq(net_id).ensure(vifs)
        else:
            await self._dnsmasq(net_id).stop()
        if self.proxy is not None and vif.get("host_address"):
            await self.proxy.ensure(net_id, vif["host_address"], device=br)
        return brief

    async def _uplink(self, vif: dict) -> str:
        physnet = vif.get("physical_network")
        iface = self.mappings.get(physnet or "")
        if not iface:
            raise HostNetworkError(f"no interface for physical network {physnet!r} in "
                                   "[host_network] physical_interface_mappings")
        if vif.get("network_type") != "vlan":
            return iface
        vid = int(vif["segmentation_id"])
        sub = f"{iface}.{vid}"
        rc, _ = await self.runner.run(["ip", "link", "show", "dev", sub], check=False)
        if rc != 0:
            await self.runner.run(["ip", "link", "add", "link", iface, "name", sub,
                                   "type", "vlan", "id", str(vid)])
        return sub

    def _dnsmasq(self, net_id: str) -> dnsmasq.Dnsmasq:
        return dnsmasq.Dnsmasq(self.runner, self.dnsmasq_binary, self.dnsmasq_dir / net_id)

    async def _remove_network(self, net_id: str, vif: dict) -> None:
        await self._dnsmasq(net_id).stop()
        if self.proxy is not None:
            await self.proxy.remove(net_id)
        await self.runner.run(["ip", "link", "del", "dev", vif["bridge"]], check=False)
        if vif.get("vlan_interface"):
            await self.runner.run(["ip", "link", "del", "dev", vif["vlan_interface"]],
                                  check=False)

    async def _sweep(self, keep: set[str]) -> None:
        """``cdbr-*`` bridges nothing here uses and that have no port left (a
        bridge with ports belongs to a live guest, perhaps another agent's),
        and dnsmasq directories of networks no longer plugged."""
        try:
            _, out = await self.runner.run(["ip", "-j", "link", "show"])
            links = json.loads(out or "[]")
        except (CommandError, ValueError) as exc:
            log.warning("cannot list links: %s", exc)
            links = []
        used = {x.get("master") for x in links}
        for x in links:
            name = x.get("ifname", "")
            if name.startswith(PREFIX) and name not in keep and name not in used:
                await self.runner.run(["ip", "link", "del", "dev", name], check=False)
        root = self.dnsmasq_dir
        if root.is_dir():
            for d in root.iterdir():
                if d.name not in self.applied:
                    await self._dnsmasq(d.name).stop()
