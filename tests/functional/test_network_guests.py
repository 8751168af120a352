"""A real guest on the default network (`cloudd serve`, its local libvirt
agent, the real `openstack` CLI): it gets over DHCP the address the API
shows, and the host pings it only while its security group has an ingress
ICMP rule; two guests ping each other (the default group admits its members),
and each reads its uuid and key from its config drive and its uuid from the
metadata service. Needs root (the agent makes bridges, dnsmasq and nftables rules);
on CI a missing libvirt fails, never skips."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloudd.testing import guest as test_guest
from cloudd.testing.libvirtd import LibvirtUnavailable, ensure_running
from cloudd.testing.postgres import free_port
from cloudd.testing.process import CloudProcess
from tests.conftest import FAST, Osc

SHARED = Path("/var/lib/cloudd-tests")   # QEMU's own user (and dnsmasq's) must get in


def _virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True,
                          text=True, check=False).stdout.strip()


def _wait(check, what: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def _pings(address: str) -> bool:
    return subprocess.run(["ping", "-c", "1", "-W", "1", address], capture_output=True,
                          check=False).returncode == 0


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    missing = [t for t in ("dnsmasq", "nft", "ip", "ping") if not shutil.which(t)]
    try:
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not installed "
                               "(make network-system-deps)")
        if os.geteuid() != 0:
            raise RuntimeError("host networking needs root")
        ensure_running()
        guest = test_guest.build()
    except (LibvirtUnavailable, RuntimeError, subprocess.CalledProcessError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"network guest tests cannot run: {e}")
        pytest.skip(f"network guest tests cannot run: {e}")
    base = tmp_path_factory.mktemp("netguests")
    tag = uuid.uuid4().hex[:10]
    work = SHARED / tag
    work.mkdir(parents=True, mode=0o711)
    SHARED.chmod(0o711)
    cidr = f"10.{random.randrange(200, 250)}.{random.randrange(256)}.0/24"
    table = f"cloudd_t{tag}"
    cloud = CloudProcess(base / "data", env={
        **FAST, "CLOUDD_COMPUTE__LOCAL_AGENT": "libvirt",
        "CLOUDD_LIBVIRT__INSTANCES_DIR": str(work / "instances"),
        "CLOUDD_LIBVIRT__IMAGE_CACHE_DIR": str(work / "images"),
        "CLOUDD_LIBVIRT__PROBE_KERNEL": str(guest.kernel),
        "CLOUDD_LIBVIRT__SHUTDOWN_TIMEOUT": "15",
        "CLOUDD_AGENT__RESERVED_HOST_MEMORY_MB": "0",
        # this cloud's own subnet, tables and files: other runs share the host
        "CLOUDD_NETWORK__DEFAULT_CIDR": cidr,
        "CLOUDD_HOST_NETWORK__NFT_TABLE": table,
        "CLOUDD_HOST_NETWORK__METADATA_PORT": str(free_port()),
        "CLOUDD_HOST_NETWORK__STATE_DIR": str(work / "network")}).start(timeout=120)
    osc = Osc(cloud)
    bridge = None
    try:
        _wait(lambda: any(s["State"] == "up" for s in osc.json(
            "compute", "service", "list", "--service", "nova-compute")), "libvirt host up")
        bridge = "cdbr-" + osc.json("network", "show", "default")["id"][:10]
        kernel = osc.json("image", "create", "--disk-format", "aki", "--container-format",
                          "aki", "--file", str(guest.kernel), "guest-kernel")
        ramdisk = osc.json("image", "create", "--disk-format", "ari", "--container-format",
                           "ari", "--file", str(guest.ramdisk), "guest-ramdisk")
        machine = base / "machine.img"
        machine.write_bytes(b"\0" * 1024 * 1024)
        osc.json("image", "create", "--disk-format", "ami", "--container-format", "ami",
                 "--file", str(machine), "--property", f"kernel_id={kernel['id']}",
                 "--property", f"ramdisk_id={ramdisk['id']}",
                 "--property", "os_command_line=console=ttyS0", "guest")
        yield osc, work, bridge
    finally:
        code = cloud.stop()
        for name in _virsh("list", "--all", "--name").split():
            if name.startswith("cloudd-") and str(work) in _virsh("dumpxml", name):
                _virsh("destroy", name)
                _virsh("undefine", name, "--managed-save")
        if bridge:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        for family, name in (("bridge", table), ("ip", f"{table}_nat")):
            subprocess.run(["nft", "delete", "table", family, name], capture_output=True,
                           check=False)
        for pidfile in (work / "network").glob("dnsmasq/*/pid"):
            try:
                os.kill(int(pidfile.read_text()), 15)
            except (OSError, ValueError):
                pass
        shutil.rmtree(work, ignore_errors=True)
    assert code == 0, cloud.log_text()[-3000:]


def test_guest_gets_the_api_address_and_icmp_follows_its_security_group(env):
    osc, _, bridge = env
    server = osc.json("server", "create", "--image", "guest", "--flavor", "m1.tiny",
                      "--network", "default", "--wait", "netvm1")
    sid = server["id"]
    assert server["status"] == "ACTIVE"
    addresses = osc.json("server", "show", sid)["addresses"]
    api_ip = re.search(r"\d+\.\d+\.\d+\.\d+", str(addresses)).group(0)

    log = _wait(lambda: (out := osc.run("console", "log", "show", sid).stdout)
                and test_guest.IP_LINE in out and out, "the guest's DHCP address", 300)
    dhcp_ip = log.split(test_guest.IP_LINE, 1)[1].split()[0]
    assert dhcp_ip == api_ip

    # the default group allows ingress from its members only: not from the host
    assert not _pings(api_ip)
    rule = osc.json("security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
                    "default")
    _wait(lambda: _pings(api_ip), "ping allowed by the new ICMP rule", 60)
    osc.run("security", "group", "rule", "delete", rule["id"])
    time.sleep(3)
    _wait(lambda: not _pings(api_ip), "ping stopped once the rule is gone", 60)
    time.sleep(2)
    assert not _pings(api_ip)
    osc.json("security", "group", "rule", "create", "--ingress", "--protocol", "icmp",
             "default")
    _wait(lambda: _pings(api_ip), "ping back with the rule added again", 60)

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
        log = _wait(lambda sid=sid, done=done: (
            out := osc.run("console", "log", "show", sid).stdout) and done in out and out,
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
    lines = _virsh("domiflist", f"cloudd-{sid}").splitlines()[2:]
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
    assert port["MAC Address"] in _virsh("dumpxml", "--inactive", f"cloudd-{sid}")

    osc.run("server", "remove", "network", sid, "attach-net")
    _wait(lambda: osc.json("port", "list", "--server", sid, "--network", net["id"]) == [],
          "the port detached", 90)
    assert [n[2] for n in _iflist(sid)] == [bridge]
    assert port["MAC Address"] not in _virsh("dumpxml", "--inactive", f"cloudd-{sid}")
    # nothing on the host wants the second bridge any more
    _wait(lambda: subprocess.run(["ip", "link", "show", second], capture_output=True,
                                 check=False).returncode != 0, "the bridge removed", 30)
    assert osc.json("server", "show", sid)["status"] == "ACTIVE"
    osc.run("server", "delete", "--wait", sid)
