"""dnsmasq per network: static DHCP entries from cloudd's allocations."""

from __future__ import annotations

import ipaddress
import os
import signal
from pathlib import Path

from cloudd.agent.network.runner import Runner


def dhcp_subnet(vif: dict) -> dict | None:
    for s in vif.get("subnets") or []:
        if s.get("ip_version") == 4 and s.get("enable_dhcp", True):
            return s
    return None


def hosts_text(vifs: list[dict]) -> str:
    """``MAC,IP,hostname`` lines, one per vif with an IPv4 address."""
    lines = []
    for v in vifs:
        s = dhcp_subnet(v)
        for ip in (s or {}).get("ips") or []:
            if ipaddress.ip_address(ip).version == 4:
                name = "host-" + ip.replace(".", "-")
                lines.append(f"{v['mac'].lower()},{ip},{name}")
                break
    return "".join(f"{x}\n" for x in sorted(lines))


def opts_text(vif: dict) -> str:
    s = dhcp_subnet(vif) or {}
    host = str(ipaddress.ip_interface(vif["host_address"]).ip)
    lines = [f"option:router,{s.get('gateway_ip') or ''}".rstrip(",")]
    dns = [d for d in s.get("dns_nameservers") or [] if ":" not in d] or [host]
    lines.append("option:dns-server," + ",".join(dns))
    routes = [r for r in s.get("host_routes") or [] if ":" not in r.get("destination", "")]
    if routes:
        parts = [f"{r['destination']},{r['nexthop']}" for r in routes]
        if s.get("gateway_ip"):
            parts.append(f"0.0.0.0/0,{s['gateway_ip']}")
        lines.append("option:classless-static-route," + ",".join(parts))
    if vif.get("mtu"):
        lines.append(f"option:mtu,{vif['mtu']}")
    return "".join(f"{x}\n" for x in lines)


class Dnsmasq:
    """The dnsmasq of one network; its files live in ``directory``."""

    def __init__(self, runner: Runner, binary: str, directory: Path) -> None:
        self.runner = runner
        self.binary = binary
        self.dir = Path(directory)

    @property
    def pidfile(self) -> Path:
        return self.dir / "pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self.runner.alive(pid, "dnsmasq") else None

    def argv(self, vif: dict) -> list[str]:
        s = dhcp_subnet(vif)
        net = ipaddress.ip_network(s["cidr"], strict=False)
        return [self.binary, "--conf-file=", "--no-hosts", "--bind-interfaces",
                f"--interface={vif['bridge']}", "--except-interface=lo",
                f"--pid-file={self.pidfile}",
                f"--dhcp-hostsfile={self.dir / 'hosts'}",
                f"--dhcp-optsfile={self.dir / 'opts'}",
                f"--dhcp-leasefile={self.dir / 'leases'}",
                f"--dhcp-range={net.network_address},static,{net.netmask},86400s",
                "--dhcp-authoritative", "--domain-needed", "--bogus-priv"]

    def _write(self, name: str, text: str) -> bool:
        path = self.dir / name
        try:
            if path.read_text() == text:
                return False
        except OSError:
            pass
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)     # dnsmasq re-reads it as nobody after SIGHUP
        tmp.replace(path)
        return True

    async def ensure(self, vifs: list[dict]) -> None:
        """Running with these vifs' entries: started, or SIGHUP on a change."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        changed = self._write("hosts", hosts_text(vifs))
        changed = self._write("opts", opts_text(vifs[0])) or changed
        pid = self.pid()
        if pid is None:
            await self.runner.run(self.argv(vifs[0]))
        elif changed:
            self.runner.kill(pid, signal.SIGHUP)

    async def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            self.runner.kill(pid, signal.SIGTERM)
        for name in ("pid", "hosts", "opts", "leases"):
            (self.dir / name).unlink(missing_ok=True)
        try:
            self.dir.rmdir()
        except OSError:
            pass
