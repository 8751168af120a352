"""HostNetwork on this host, for real: a "guest" in its own network namespace,
plugged into the bridge by a veth pair standing in for the tap, gets the
vif's address from dnsmasq over DHCP, reaches the host address, and is
reached from the host only while an ingress ICMP rule allows it. Unplugging
removes the bridge, dnsmasq and the rules. Needs root."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cloudd.agent.network import HostNetwork
from cloudd.testing.postgres import free_port

pytestmark = pytest.mark.asyncio

# A one-shot DHCP DISCOVER from the namespace; prints the offered address.
DHCP_CLIENT = r"""
import os, socket, struct, sys
dev, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.bind(("", 68))
s.settimeout(3)
xid = os.urandom(4)
pkt = (bytes([1, 1, 6, 0]) + xid + struct.pack("!HH", 0, 0x8000) + bytes(16)
       + mac + bytes(10) + bytes(192) + bytes([99, 130, 83, 99, 53, 1, 1, 255]))
for _ in range(5):
    s.sendto(pkt, ("255.255.255.255", 67))
    try:
        while True:
            data = s.recv(2048)
            if data[4:8] == xid and data[0] == 2:
                print(socket.inet_ntoa(data[16:20]))
                sys.exit(0)
    except TimeoutError:
        pass
sys.exit(1)
"""


def need_root() -> None:
    missing = [t for t in ("ip", "nft", "dnsmasq", "ping") if not shutil.which(t)]
    if missing:
        msg = f"{', '.join(missing)} not installed (make test-system-deps)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    if os.geteuid() != 0:
        pytest.skip("needs root (bridges, network namespaces, nftables)")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=60)


async def ping(target: str, ns: str | None = None) -> bool:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    p = await asyncio.to_thread(sh, *prefix, "ping", "-c", "1", "-W", "1", target,
                                check=False)
    return p.returncode == 0


async def test_bridge_dhcp_security_groups_and_cleanup(tmp_path):
    need_root()
    tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
    third = random.randrange(250)
    net_id = f"t{tag}-0000-0000-0000-000000000000"
    bridge, tap, peer, ns = f"cdbr-t{tag}", f"tapt{tag}", f"cdg{tag}", f"cdns{tag}"
    mac = f"fa:16:3e:{random.randrange(256):02x}:{third:02x}:07"
    guest_ip, host_ip = f"10.196.{third}.7", f"10.196.{third}.1"
    icmp_in = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
               "port_range_min": None, "port_range_max": None,
               "remote_ip_prefixes": ["0.0.0.0/0"]}
    egress = {"direction": "egress", "ethertype": "IPv4", "protocol": None,
              "port_range_min": None, "port_range_max": None,
              "remote_ip_prefixes": ["0.0.0.0/0"]}

    def vif(rules):
        return {"port_id": tag, "mac": mac, "network_id": net_id, "network_name": "t",
                "bridge": bridge, "tap": tap, "mtu": 1500, "network_type": "local",
                "physical_network": None, "segmentation_id": None,
                "host_address": f"{host_ip}/24", "nat": True,
                "subnets": [{"id": "s", "cidr": f"10.196.{third}.0/24", "ip_version": 4,
                             "gateway_ip": host_ip, "dns_nameservers": [],
                             "host_routes": [], "enable_dhcp": True, "ips": [guest_ip]}],
                "port_security_enabled": True, "security_group_rules": rules}

    tables = (f"cloudd_t{tag}", f"cloudd_nat_t{tag}")
    # dnsmasq reads its hosts file as nobody: pytest's tmp_path is not reachable
    dnsmasq_dir = Path(tempfile.mkdtemp(prefix="cloudd-test-dnsmasq-"))
    dnsmasq_dir.chmod(0o755)
    port = free_port()
    hn = HostNetwork(tmp_path / "state", metadata_port=port, tables=tables,
                     dnsmasq_binary=shutil.which("dnsmasq"), dnsmasq_dir=dnsmasq_dir)
    try:
        await hn.plug("i1", [vif([egress])])
        # what libvirt does with the tap: a veth end in the bridge
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", tap, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", tap, "master", bridge, "up")
        sh("ip", "link", "set", peer, "netns", ns)
        sh("ip", "-n", ns, "link", "set", peer, "address", mac)
        sh("ip", "-n", ns, "link", "set", peer, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        pidfile = dnsmasq_dir / net_id / "pid"
        assert pidfile.exists()

        offer = await asyncio.to_thread(sh, "ip", "netns", "exec", ns, sys.executable,
                                        "-c", DHCP_CLIENT, peer, mac, check=False)
        assert offer.returncode == 0, offer.stderr
        assert offer.stdout.strip() == guest_ip

        sh("ip", "-n", ns, "addr", "add", f"{guest_ip}/24", "dev", peer)
        # guest -> host address: always allowed
        assert await ping(host_ip, ns)
        # host -> guest: only with an ingress ICMP rule
        assert not await ping(guest_ip)
        await hn.update("i1", [vif([egress, icmp_in])])
        assert await ping(guest_ip)
        await hn.update("i1", [vif([egress])])
        assert not await ping(guest_ip)
        # from a remote group's members only: the host's address joins the
        # group's nft set and leaves it again (the set alone is refilled)
        group = f"6a2d7c0e-{tag}-4000-8000-000000000000"
        by_group = dict(icmp_in, remote_group_id=group, remote_ip_prefixes=[])
        grouped = vif([egress, by_group])
        grouped["security_group_members"] = {group: {"version": 1, "IPv4": [f"{guest_ip}/32"],
                                                     "IPv6": []}}
        await hn.update("i1", [grouped])
        assert not await ping(guest_ip)
        await hn.set_members(group, {"version": 2, "IPv4": [f"{guest_ip}/32", f"{host_ip}/32"],
                                     "IPv6": []})
        assert await ping(guest_ip)
        await hn.set_members(group, {"version": 3, "IPv4": [f"{guest_ip}/32"], "IPv6": []})
        assert not await ping(guest_ip)
        await hn.update("i1", [vif([egress])])
        # 169.254.169.254:80 reaches the metadata port on the host address
        sh("ip", "-n", ns, "route", "add", "default", "via", host_ip)
        server = await asyncio.start_server(
            lambda r, w: (w.write(b"metadata here\n"), w.close()), host_ip, port)
        try:
            got = await asyncio.to_thread(
                sh, "ip", "netns", "exec", ns, sys.executable, "-c",
                "import socket; s = socket.create_connection(('169.254.169.254', 80), 3); "
                "print(s.recv(100).decode().strip())", check=False)
        finally:
            server.close()
        assert got.stdout.strip() == "metadata here", got.stderr
        # a spoofed source address is dropped
        sh("ip", "-n", ns, "addr", "add", f"10.196.{third}.99/24", "dev", peer)
        spoof = await asyncio.to_thread(sh, "ip", "netns", "exec", ns, "ping", "-c", "1",
                                        "-W", "1", "-I", f"10.196.{third}.99", host_ip,
                                        check=False)
        assert spoof.returncode != 0

        pid = int(pidfile.read_text())
        await hn.unplug("i1")
        assert sh("ip", "link", "show", "dev", bridge, check=False).returncode != 0
        assert not pidfile.exists()
        for _ in range(50):
            if not os.path.exists(f"/proc/{pid}"):
                break
            await asyncio.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}")
        listed = sh("nft", "list", "tables").stdout
        assert tables[0] not in listed and tables[1] not in listed
    finally:
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", tap, check=False)
        sh("ip", "link", "del", bridge, check=False)
        for family, table in zip(("bridge", "ip"), tables, strict=True):
            sh("nft", "delete", "table", family, table, check=False)
        try:
            os.kill(int(pidfile.read_text()), 15)
        except (OSError, ValueError, UnboundLocalError):
            pass
        shutil.rmtree(dnsmasq_dir, ignore_errors=True)
