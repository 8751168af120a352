"""A real guest on the default network (`cloudd serve`, its local libvirt
agent, the real `openstack` CLI): it gets over DHCP the address the API
shows, and the host pings it only while its security group has an ingress
ICMP rule; two guests ping each other (the default group admits its members),
and each reads its uuid and key from its config drive and its uuid from the
metadata service. Needs root (the agent makes bridges, dnsmasq and nftables
rules); on CI a missing libvirt fails, never skips."""

from __future__ import annotations

import random
import re
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloudd.testing import guest as test_guest
from tests.functional.libvirt_cloud import console, libvirt_cloud, virsh, wait


def _pings(address: str) -> bool:
    return subprocess.run(["ping", "-c", "1", "-W", "1", address], capture_output=True,
                          check=False).returncode == 0


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with libvirt_cloud(tmp_path_factory.mktemp("netguests")) as (osc, _, work):
        yield osc, work, "cdbr-" + osc.json("network", "show", "default")["id"][:10]


def test_guest_gets_the_api_address_and_icmp_follows_its_security_group(env):
    osc, _, bridge = env
    server = osc.json("server", "create", "--image", "guest", "--flavor", "m1.tiny",
                      "--network", "default", "--wait", "netvm1")
    sid = server["id"]
    assert server["status"] == "ACTIVE"
    addresses = osc.json("server", "show", sid)["addresses"]
    api_ip = re.search(r"\d+\.\d+\.\d+\.\d+", str(addresses)).group(0)

    log = wait(lambda: (out := console(osc, sid)) and test_guest.IP_LINE in out and out,
               "the guest's DHCP address", 300)
    dhcp_ip = log.split(test_guest.IP_LINE, 1)[1].split()[0]
    assert dhcp_ip == api_ip

    # the default group allows ingress from its members only: not from the host
    assert not _pings(api_ip)
    rule = osc.json("security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
                    "default")
    wait(lambda: _pings(api_ip), "ping allowed by the new ICMP rule", 60)
    osc.run("security", "group", "rule", "delete", rule["id"])
    time.sleep(3)
    wait(lambda: not _pings(api_ip), "ping stopped once the rule is gone", 60)
    time.sleep(2)
    assert not _pings(api_ip)
    osc.json("security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
             "default")
    wait(lambda: _pings(api_ip), "ping back with the rule added again", 60)

    osc.run("server", "delete", "--wait", sid)
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True,
                          check=False).returncode != 0


def _pinger(address: str) -> str:
    """#! user data: ping ``address`` until it answers, then say so."""
    return ("#!/bin/sh\n"
            "for i in $(seq 60); do\n"
            f"  if ping -c 1 -W 2 {address} >/dev/null; then\n"
            f"    echo '{test_guest.PREFIX}ping {address} ok'; exit 0\n"
            "  fi\n"
            "  sleep 1\n"
            "done\n"
            f"echo '{test_guest.PREFIX}ping {address} failed'\n")


def test_two_guests_ping_each_other_and_read_the_drive_and_the_metadata_service(
        env, tmp_path):
    osc, _, _ = env
    public_key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    (tmp_path / "key.pub").write_text(public_key + " netguests\n")
    osc.json("keypair", "create", "--public-key", str(tmp_path / "key.pub"), "netkey")
    subnet = osc.json("subnet", "show", osc.json("network", "show", "default")["subnets"][0])
    prefix = subnet["cidr"].rsplit(".", 1)[0]
    ips = {"a": f"{prefix}.50", "b": f"{prefix}.51"}
    servers = {}
    for me, other in (("a", "b"), ("b", "a")):
        (tmp_path / f"{me}.sh").write_text(_pinger(ips[other]))
        servers[me] = osc.json(
            "server", "create", "--image", "guest", "--flavor", "m1.tiny",
            "--nic", f"net-id=default,v4-fixed-ip={ips[me]}", "--config-drive", "True",
            "--key-name", "netkey", "--user-data", str(tmp_path / f"{me}.sh"),
            f"netvm-{me}")["id"]
    for me, other in (("a", "b"), ("b", "a")):
        sid = servers[me]
        done = f"{test_guest.PREFIX}ping {ips[other]} "
        log = wait(lambda sid=sid, done=done: (
            out := console(osc, sid)) and done in out and out,
            f"guest {me} pinging {ips[other]}", 300)
        assert f"{done}ok" in log, log[-2000:]
        assert f"{test_guest.IP_LINE}{ips[me]}" in log
        # the config drive and the metadata service both name this server
        assert f"{test_guest.DRIVE_UUID_LINE}{sid}" in log, log[-2000:]
        assert f"{test_guest.DRIVE_KEY_LINE}{public_key}" in log, log[-2000:]
        assert f"{test_guest.METADATA_UUID_LINE}{sid}" in log, log[-2000:]
    for sid in servers.values():
        osc.run("server", "delete", "--wait", sid)


def _iflist(sid: str) -> list[list[str]]:
    """``virsh domiflist``: [interface, type, source, model, mac] per NIC."""
    lines = virsh("domiflist", f"cloudd-{sid}").splitlines()[2:]
    return [line.split() for line in lines if line.strip()]


def _ports_on(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                         capture_output=True, text=True, check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def test_a_second_nic_is_hot_plugged_on_its_bridge_and_unplugged(env):
    osc, _, bridge = env
    sid = osc.json("server", "create", "--image", "guest", "--flavor", "m1.tiny",
                   "--network", "default", "--wait", "netvm-attach")["id"]
    assert len(_iflist(sid)) == 1
    net = osc.json("network", "create", "attach-net")
    cidr = f"10.{random.randrange(200, 250)}.{random.randrange(256)}.0/24"
    osc.json("subnet", "create", "--network", "attach-net", "--subnet-range", cidr,
             "attach-subnet")
    second = "cdbr-" + net["id"][:10]

    osc.run("server", "add", "network", sid, "attach-net")
    [port] = osc.json("port", "list", "--server", sid, "--network", net["id"])
    assert port["Status"] == "ACTIVE"
    nics = _iflist(sid)
    assert [n[2] for n in nics] == [bridge, second], nics
    new = nics[1]
    assert new[4] == port["MAC Address"] and new[0] == "tap" + port["ID"][:11]
    assert _ports_on(second) == [new[0]]                  # the tap on the new bridge
    # the definition has it too: the guest keeps it across a stop and start
    assert port["MAC Address"] in virsh("dumpxml", "--inactive", f"cloudd-{sid}")

    osc.run("server", "remove", "network", sid, "attach-net")
    wait(lambda: osc.json("port", "list", "--server", sid, "--network", net["id"]) == [],
         "the port detached", 90)
    assert [n[2] for n in _iflist(sid)] == [bridge]
    assert port["MAC Address"] not in virsh("dumpxml", "--inactive", f"cloudd-{sid}")
    # nothing on the host wants the second bridge any more
    wait(lambda: subprocess.run(["ip", "link", "show", second], capture_output=True,
                                check=False).returncode != 0, "the bridge removed", 30)
    assert osc.json("server", "show", sid)["status"] == "ACTIVE"
    osc.run("server", "delete", "--wait", sid)
