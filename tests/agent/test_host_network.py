"""HostNetwork's commands, asserted exactly through a recording runner (no root)."""

from __future__ import annotations

import copy
import json
import signal
import stat
from pathlib import Path

import pytest

from cloudd.agent.network import HostNetwork, nft
from cloudd.agent.network.dnsmasq import hosts_text, opts_text
from cloudd.agent.network.host import HostNetworkError, parse_mappings
from cloudd.agent.network.runner import CommandError

pytestmark = pytest.mark.asyncio

NET = "3f2a9c1e-0d1b-4c55-9d6e-000000000001"
BR = "cdbr-3f2a9c1e-0"


def vif(port="aaaaaaaaaaa1", ip="10.253.0.7", mac="fa:16:3e:00:00:07", **kw) -> dict:
    v = {"port_id": port, "mac": mac, "network_id": NET, "network_name": "default",
         "bridge": BR, "tap": f"tap{port[:11]}", "mtu": 1500, "network_type": "local",
         "physical_network": None, "segmentation_id": None,
         "host_address": "10.253.0.1/24", "nat": True,
         "subnets": [{"id": "s1", "cidr": "10.253.0.0/24", "ip_version": 4,
                      "gateway_ip": "10.253.0.1", "dns_nameservers": [], "host_routes": [],
                      "enable_dhcp": True, "ips": [ip]}],
         "port_security_enabled": True,
         "security_group_rules": [
             {"direction": "egress", "ethertype": "IPv4", "protocol": None,
              "port_range_min": None, "port_range_max": None,
              "remote_ip_prefixes": ["0.0.0.0/0"]}]}
    v.update(kw)
    return v


class FakeRunner:
    def __init__(self, links=(), ct=True) -> None:
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []
        self.links = set(links)
        self.masters: dict[str, str] = {}
        self.procs: dict[int, str] = {}
        self.signals: list[tuple[int, int]] = []
        self.ct = ct
        self.next_pid = 4000

    async def run(self, argv, *, input=None, check=True):
        self.calls.append(list(argv))
        self.inputs.append(input)
        if argv[:3] == ["ip", "link", "show"] and argv[3] == "dev":
            return (0 if argv[4] in self.links else 1), ""
        if argv[:3] == ["ip", "link", "add"]:
            self.links.add(argv[3] if argv[3] != "link" else argv[6])
        if argv[:3] == ["ip", "link", "del"]:
            self.links.discard(argv[4])
        if argv[:3] == ["ip", "-j", "link"]:
            return 0, json.dumps([{"ifname": n, **({"master": self.masters[n]}
                                                   if n in self.masters else {})}
                                  for n in sorted(self.links)])
        if argv[:2] == ["nft", "-c"]:
            return (0 if self.ct else 1), ""
        if argv[0].endswith("dnsmasq"):
            pidfile = next(a for a in argv if a.startswith("--pid-file="))
            self.next_pid += 1
            self.procs[self.next_pid] = "dnsmasq"
            Path(pidfile.split("=", 1)[1]).write_text(f"{self.next_pid}\n")
        return 0, ""

    def alive(self, pid, name):
        return name in self.procs.get(pid, "")

    def kill(self, pid, sig):
        self.signals.append((pid, sig))
        if sig == signal.SIGTERM:
            self.procs.pop(pid, None)

    def commands(self):
        return [c for c in self.calls if c[:2] != ["nft", "-c"]]


class FakeProxy:
    def __init__(self):
        self.calls = []

    async def ensure(self, network_id, host_address, device=None):
        self.calls.append(("ensure", network_id, host_address, device))

    async def remove(self, network_id):
        self.calls.append(("remove", network_id))

    async def close(self):
        self.calls.append(("close",))


def host(tmp_path, runner, **kw):
    return HostNetwork(tmp_path / "state", runner=runner, metadata_port=8775,
                       dnsmasq_binary="/usr/sbin/dnsmasq", **kw)


async def test_plug_local_network_creates_bridge_nat_dnsmasq_and_rules(tmp_path):
    r, proxy = FakeRunner(), FakeProxy()
    hn = host(tmp_path, r, proxy=proxy)
    await hn.plug("i1", [vif()])
    d = tmp_path / "state" / "dnsmasq" / NET
    assert r.commands() == [
        ["ip", "link", "show", "dev", BR],
        ["ip", "link", "add", BR, "type", "bridge"],
        ["ip", "link", "set", "dev", BR, "mtu", "1500", "up"],
        ["ip", "addr", "replace", "10.253.0.1/24", "dev", BR],
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ["/usr/sbin/dnsmasq", "--conf-file=", "--no-hosts", "--bind-interfaces",
         f"--interface={BR}", "--except-interface=lo", f"--pid-file={d}/pid",
         f"--dhcp-hostsfile={d}/hosts", f"--dhcp-optsfile={d}/opts",
         f"--dhcp-leasefile={d}/leases",
         "--dhcp-range=10.253.0.0,static,255.255.255.0,86400s",
         "--dhcp-authoritative", "--domain-needed", "--bogus-priv"],
        ["nft", "-f", "-"],
    ]
    assert (d / "hosts").read_text() == "fa:16:3e:00:00:07,10.253.0.7,host-10-253-0-7\n"
    assert (d / "opts").read_text() == ("option:router,10.253.0.1\n"
                                        "option:dns-server,10.253.0.1\noption:mtu,1500\n")
    script = r.inputs[-1]
    assert 'oifname "tapaaaaaaaaaaa" jump in-tapaaaaaaaaaaa' in script
    assert f'iifname "{BR}" ip daddr 169.254.169.254 tcp dport 80 dnat to 10.253.0.1:8775' \
        in script
    assert f'ip saddr 10.253.0.0/24 oifname != "{BR}" masquerade' in script
    assert "ct state established,related accept" in script
    assert proxy.calls == [("ensure", NET, "10.253.0.1/24", BR)]
    state = tmp_path / "state" / "host-network.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert json.loads(state.read_text())["instances"]["i1"][0]["tap"] == "tapaaaaaaaaaaa"


async def test_second_instance_reuses_bridge_and_sighups_dnsmasq(tmp_path):
    r = FakeRunner()
    hn = host(tmp_path, r)
    await hn.plug("i1", [vif()])
    pid = max(r.procs)
    r.calls.clear()
    await hn.plug("i2", [vif(port="bbbbbbbbbbb2", ip="10.253.0.8", mac="fa:16:3e:00:00:08")])
    assert ["ip", "link", "add", BR, "type", "bridge"] not in r.calls
    assert not any(c[0].endswith("dnsmasq") for c in r.calls)
    assert r.signals == [(pid, signal.SIGHUP)]
    hosts = (tmp_path / "state" / "dnsmasq" / NET / "hosts").read_text()
    assert hosts.splitlines() == ["fa:16:3e:00:00:07,10.253.0.7,host-10-253-0-7",
                                  "fa:16:3e:00:00:08,10.253.0.8,host-10-253-0-8"]
    # unchanged entries: no signal
    await hn.update("i2", [vif(port="bbbbbbbbbbb2", ip="10.253.0.8", mac="fa:16:3e:00:00:08")])
    assert r.signals == [(pid, signal.SIGHUP)]


async def test_unplug_last_instance_removes_everything(tmp_path):
    r, proxy = FakeRunner(), FakeProxy()
    hn = host(tmp_path, r, proxy=proxy)
    await hn.plug("i1", [vif()])
    await hn.plug("i2", [vif(port="bbbbbbbbbbb2", ip="10.253.0.8", mac="fa:16:3e:00:00:08")])
    await hn.unplug("i1")
    assert BR in r.links and r.procs
    r.calls.clear()
    r.inputs.clear()
    await hn.unplug("i2")
    assert ["ip", "link", "del", "dev", BR] in r.calls
    assert not r.procs                                   # dnsmasq got SIGTERM
    assert not (tmp_path / "state" / "dnsmasq" / NET).exists()
    assert proxy.calls[-1] == ("remove", NET)
    assert r.inputs[r.calls.index(["nft", "-f", "-"])] == (
        "table bridge cloudd\ndelete table bridge cloudd\n"
        "table ip cloudd_nat\ndelete table ip cloudd_nat\n")


async def test_update_of_unknown_instance_does_nothing(tmp_path):
    r = FakeRunner()
    await host(tmp_path, r).update("nope", [vif()])
    assert r.calls == []


async def test_security_group_rules_render(tmp_path):
    rules = [
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
         "port_range_min": 22, "port_range_max": 22, "remote_ip_prefixes": ["10.0.0.0/8"]},
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
         "port_range_min": 8, "port_range_max": 0,
         "remote_ip_prefixes": ["10.253.0.8/32", "10.253.0.9/32"]},
        {"direction": "ingress", "ethertype": "IPv6", "protocol": "icmp",
         "port_range_min": None, "port_range_max": None, "remote_ip_prefixes": ["::/0"]},
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "132",
         "port_range_min": None, "port_range_max": None, "remote_ip_prefixes": ["0.0.0.0/0"]},
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "udp",
         "port_range_min": 1000, "port_range_max": 2000, "remote_ip_prefixes": []},
        {"direction": "egress", "ethertype": "IPv4", "protocol": "udp",
         "port_range_min": 53, "port_range_max": 53, "remote_ip_prefixes": ["8.8.8.8/32"]},
    ]
    chains = "\n".join(nft.tap_chains(vif(security_group_rules=rules)))
    ingress, egress = chains.split("chain out-")
    assert "ip saddr 10.0.0.0/8 meta l4proto tcp tcp dport 22 accept" in ingress
    assert ("ip saddr { 10.253.0.8/32, 10.253.0.9/32 } meta l4proto icmp icmp type 8 "
            "icmp code 0 accept") in ingress
    assert "meta protocol ip6 meta l4proto ipv6-icmp accept" in ingress
    assert "meta protocol ip meta l4proto 132 accept" in ingress
    assert "1000-2000" not in chains                     # no remote address: matches nothing
    assert "ip daddr 8.8.8.8/32 meta l4proto udp udp dport 53 accept" in egress
    assert ingress.rstrip().endswith("drop\n  }") and egress.rstrip().endswith("drop\n  }")
    # DHCP, ARP, the host address and metadata are always allowed; spoofing is not
    assert "ether saddr != fa:16:3e:00:00:07 drop" in egress
    assert "meta protocol ip ip saddr != 10.253.0.7 drop" in egress
    assert "meta protocol ip ip daddr 10.253.0.1 accept" in egress
    assert "udp sport 68 udp dport 67 accept" in egress
    assert "udp sport 67 udp dport 68 accept" in ingress
    assert "ether type arp accept" in ingress and "ether type arp accept" in egress


async def test_port_security_off_means_no_filtering(tmp_path):
    script = nft.render([vif(port_security_enabled=False, security_group_rules=[])], 8775)
    assert "tapaaaaaaaaaaa" not in script
    assert "masquerade" in script


async def test_without_bridge_conntrack_rules_are_stateless(tmp_path):
    r = FakeRunner(ct=False)
    await host(tmp_path, r).plug("i1", [vif()])
    script = r.inputs[-1]
    assert "ct state" not in script
    assert "tcp flags & (syn | ack) != syn accept" in script


async def test_vlan_network_enslaves_a_vlan_interface(tmp_path):
    r = FakeRunner(links={"eth1"})
    hn = host(tmp_path, r, mappings=parse_mappings("physnet1:eth1"))
    v = vif(network_type="vlan", physical_network="physnet1", segmentation_id=100, nat=False)
    await hn.plug("i1", [v])
    assert ["ip", "link", "add", "link", "eth1", "name", "eth1.100", "type", "vlan",
            "id", "100"] in r.calls
    assert ["ip", "link", "set", "dev", "eth1.100", "master", BR] in r.calls
    assert ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"] not in r.calls
    assert "masquerade" not in r.inputs[-1]
    await hn.unplug("i1")
    assert ["ip", "link", "del", "dev", "eth1.100"] in r.calls


async def test_flat_network_enslaves_the_mapped_interface(tmp_path):
    r = FakeRunner(links={"eth2"})
    hn = host(tmp_path, r, mappings={"physnet2": "eth2"})
    await hn.plug("i1", [vif(network_type="flat", physical_network="physnet2")])
    assert ["ip", "link", "set", "dev", "eth2", "master", BR] in r.calls
    assert not any(c[:3] == ["ip", "link", "add"] and "vlan" in c for c in r.calls)


async def test_unmapped_physical_network_is_an_error(tmp_path):
    hn = host(tmp_path, FakeRunner())
    with pytest.raises(HostNetworkError, match="physnet9"):
        await hn.plug("i1", [vif(network_type="flat", physical_network="physnet9")])
    with pytest.raises(ValueError):
        parse_mappings("nocolon")


async def test_reconcile_removes_stale_and_reapplies_current(tmp_path):
    r = FakeRunner()
    hn = host(tmp_path, r)
    other = "4f2a9c1e-0d1b-4c55-9d6e-000000000002"
    old = vif(network_id=other, bridge="cdbr-4f2a9c1e-0", port="ccccccccccc3")
    await hn.plug("gone", [old])
    await hn.plug("kept", [vif()])
    r.links |= {"cdbr-leftover", "virbr0", "cdbr-others", "tapothers"}
    # a restart: a new HostNetwork reads the state file
    r2 = FakeRunner(links=r.links)
    r2.masters = {"tapothers": "cdbr-others"}     # a bridge with a port stays
    r2.procs = dict(r.procs)
    hn2 = host(tmp_path, r2)
    assert set(hn2.plugged()) == {"gone", "kept"}
    await hn2.reconcile({"kept": [vif()]})
    assert ["ip", "link", "del", "dev", "cdbr-4f2a9c1e-0"] in r2.calls
    assert ["ip", "link", "del", "dev", "cdbr-leftover"] in r2.calls
    assert ["ip", "link", "del", "dev", "virbr0"] not in r2.calls
    assert ["ip", "link", "del", "dev", "cdbr-others"] not in r2.calls
    assert ["ip", "link", "del", "dev", BR] not in r2.calls
    assert not (tmp_path / "state" / "dnsmasq" / other).exists()
    assert (tmp_path / "state" / "dnsmasq" / NET / "hosts").exists()
    assert "tapccccccccccc" not in r2.inputs[r2.calls.index(["nft", "-f", "-"])]
    assert set(hn2.plugged()) == {"kept"}


async def test_dhcp_files():
    v = vif(subnets=[{"id": "s", "cidr": "192.168.5.0/24", "ip_version": 4,
                      "gateway_ip": "192.168.5.254", "dns_nameservers": ["1.1.1.1"],
                      "host_routes": [{"destination": "10.9.0.0/16", "nexthop": "192.168.5.3"}],
                      "enable_dhcp": True, "ips": ["192.168.5.20"]}],
            host_address="192.168.5.2/24", mtu=1450)
    assert hosts_text([v]) == "fa:16:3e:00:00:07,192.168.5.20,host-192-168-5-20\n"
    assert opts_text(v) == ("option:router,192.168.5.254\noption:dns-server,1.1.1.1\n"
                            "option:classless-static-route,10.9.0.0/16,192.168.5.3,"
                            "0.0.0.0/0,192.168.5.254\noption:mtu,1450\n")
    assert copy.deepcopy(v) == v


# -- remote groups: one nft set per group and ethertype ------------------------------------

GROUP = "6a2d7c0e-1111-4000-8000-000000000000"
SET4, SET6 = "sg4-6a2d7c0e1111400080000000", "sg6-6a2d7c0e1111400080000000"


def members(version, v4=(), v6=()) -> dict:
    return {"version": version, "IPv4": list(v4), "IPv6": list(v6)}


def grouped(port="aaaaaaaaaaa1", ip="10.253.0.7", mac="fa:16:3e:00:00:07", version=1,
            v4=("10.253.0.7/32",)) -> dict:
    """A vif in the default group: ingress from the group's members."""
    rules = [{"direction": "ingress", "ethertype": eth, "protocol": None,
              "port_range_min": None, "port_range_max": None,
              "remote_group_id": GROUP, "remote_ip_prefixes": []}
             for eth in ("IPv4", "IPv6")]
    return vif(port=port, ip=ip, mac=mac, security_group_rules=rules,
               security_group_members={GROUP: members(version, v4)})


async def test_remote_group_rules_match_the_groups_sets(tmp_path):
    r = FakeRunner()
    hn = host(tmp_path, r)
    await hn.plug("i1", [grouped()])
    await hn.plug("i2", [grouped(port="bbbbbbbbbbb2", ip="10.253.0.8", mac="fa:16:3e:00:00:08",
                                 version=2, v4=("10.253.0.7/32", "10.253.0.8/32"))])
    script = r.inputs[-1]
    assert (f"  set {SET4} {{\n    type ipv4_addr; flags interval;\n"
            "    elements = { 10.253.0.7/32, 10.253.0.8/32 }\n  }") in script
    assert f"  set {SET6} {{\n    type ipv6_addr; flags interval;\n  }}" in script
    assert script.count(f"set {SET4} {{") == 1                 # one set for both taps
    for tap in ("tapaaaaaaaaaaa", "tapbbbbbbbbbbb"):
        chain = script.split(f"chain in-{tap} {{")[1].split("\n  }")[0]
        assert f"meta protocol ip ip saddr @{SET4} accept" in chain
        assert f"meta protocol ip6 ip6 saddr @{SET6} accept" in chain
    assert "10.253.0.8/32" not in script.split("chain in-")[1]   # never inlined
    saved = json.loads((tmp_path / "state" / "host-network.json").read_text())
    assert saved["security_group_members"][GROUP]["version"] == 2


async def test_a_member_change_refills_the_set_alone(tmp_path):
    r = FakeRunner()
    hn = host(tmp_path, r)
    await hn.plug("i1", [grouped(version=5)])
    r.calls.clear()
    r.inputs.clear()
    # a member joins: one nft transaction refilling the IPv4 and IPv6 sets
    await hn.set_members(GROUP, members(6, ["10.253.0.7/32", "10.253.0.9/32"],
                                        ["fd00::9/128"]))
    assert r.calls == [["nft", "-f", "-"]]
    assert r.inputs == [(
        f"flush set bridge cloudd {SET4}\n"
        f"add element bridge cloudd {SET4} {{ 10.253.0.7/32, 10.253.0.9/32 }}\n"
        f"flush set bridge cloudd {SET6}\n"
        f"add element bridge cloudd {SET6} {{ fd00::9/128 }}\n")]
    # an older snapshot (a spawn spec or command overtaken) changes nothing
    await hn.set_members(GROUP, members(4, ["10.253.0.7/32"]))
    await hn.update("i1", [grouped(version=3, v4=["10.253.0.7/32"])])
    assert hn.members[GROUP]["IPv4"] == ["10.253.0.7/32", "10.253.0.9/32"]
    assert "10.253.0.9/32" in r.inputs[-1]
    # the member leaves
    r.calls.clear()
    r.inputs.clear()
    await hn.set_members(GROUP, members(7, ["10.253.0.7/32"]))
    assert r.inputs == [(f"flush set bridge cloudd {SET4}\n"
                         f"add element bridge cloudd {SET4} {{ 10.253.0.7/32 }}\n"
                         f"flush set bridge cloudd {SET6}\n")]
    # the same members again: nothing to do
    r.calls.clear()
    await hn.set_members(GROUP, members(8, ["10.253.0.7/32"]))
    assert r.calls == []


async def test_members_of_a_group_no_vif_names_are_kept_not_applied(tmp_path):
    r = FakeRunner()
    hn = host(tmp_path, r)
    await hn.plug("i1", [vif()])
    r.calls.clear()
    await hn.set_members(GROUP, members(10, ["10.253.0.9/32"]))
    assert r.calls == []                        # no set to refill
    # a spawn spec made before that command still carries older members
    await hn.plug("i2", [grouped(port="bbbbbbbbbbb2", ip="10.253.0.8", version=9,
                                 v4=["10.253.0.8/32"])])
    assert "elements = { 10.253.0.9/32 }" in r.inputs[-1]


async def test_the_last_vif_naming_a_group_takes_its_sets_away(tmp_path):
    r = FakeRunner()
    hn = host(tmp_path, r)
    await hn.plug("i1", [grouped()])
    await hn.plug("i2", [vif(port="bbbbbbbbbbb2", ip="10.253.0.8", mac="fa:16:3e:00:00:08")])
    await hn.unplug("i1")
    assert "set sg" not in r.inputs[-1] and "tapbbbbbbbbbbb" in r.inputs[-1]
    r.calls.clear()
    await hn.set_members(GROUP, members(2, ["10.253.0.9/32"]))
    assert r.calls == []


async def test_sets_are_restored_on_restart_and_stateless_too(tmp_path):
    r = FakeRunner(ct=False)
    await host(tmp_path, r).plug("i1", [grouped(version=3, v4=["10.253.0.7/32"])])
    await host(tmp_path, r).set_members(GROUP, members(4, ["10.253.0.5/32"]))
    r2 = FakeRunner(ct=False, links=r.links)
    r2.procs = dict(r.procs)
    await host(tmp_path, r2).reconcile()
    script = r2.inputs[r2.calls.index(["nft", "-f", "-"])]
    assert "elements = { 10.253.0.5/32 }" in script
    assert f"ip saddr @{SET4} accept" in script and "ct state" not in script


async def test_a_failed_refill_applies_everything(tmp_path):
    r = FakeRunner()
    hn = host(tmp_path, r)
    await hn.plug("i1", [grouped()])

    real_run = r.run

    async def run(argv, *, input=None, check=True):
        if input and input.startswith("flush set"):
            raise CommandError("nft: No such file or directory")
        return await real_run(argv, input=input, check=check)

    r.run = run
    await hn.set_members(GROUP, members(2, ["10.253.0.6/32"]))
    assert "elements = { 10.253.0.6/32 }" in r.inputs[-1]
