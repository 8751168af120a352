"""Real guests: `cloudd serve` with its local libvirt agent, driven by the
real `openstack` CLI: boot, console log, stop/start, reboot, resize, a
snapshot booted as a second guest, delete.

The guest is the tiny one cloudd.testing.guest builds from Debian's kernel
and busybox; it boots by direct kernel boot under QEMU (KVM when it really
works here, software emulation otherwise) and prints a known line on its
serial console. On CI a missing libvirt fails these tests; it never skips.
"""

from __future__ import annotations

import subprocess

import pytest

from cloudd.testing import guest as test_guest
from tests.conftest import Osc
from tests.functional.libvirt_cloud import libvirt_cloud, virsh, wait


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with libvirt_cloud(tmp_path_factory.mktemp("libvirt")) as running:
        yield running


def _status(osc: Osc, sid: str, status: str, timeout: float = 180.0) -> dict:
    return wait(lambda: (s := osc.json("server", "show", sid))["status"] == status and s,
                f"{sid} {status}", timeout)


def test_a_real_guest_boots_and_lives(env):
    osc, _, work = env
    server = osc.json("server", "create", "--image", "guest", "--flavor", "m1.tiny",
                      "--wait", "vm1")
    sid = server["id"]
    assert server["status"] == "ACTIVE"
    domain = f"cloudd-{sid}"
    assert virsh("domstate", domain) == "running"
    wait(lambda: test_guest.KNOWN_LINE in osc.run("console", "log", "show", sid).stdout,
         "the guest's known line on its console")

    osc.run("server", "stop", sid)
    _status(osc, sid, "SHUTOFF")
    assert virsh("domstate", domain) == "shut off"
    osc.run("server", "start", sid)
    _status(osc, sid, "ACTIVE")
    assert virsh("domstate", domain) == "running"
    osc.run("server", "reboot", "--hard", "--wait", sid)
    assert virsh("domstate", domain) == "running"

    osc.run("server", "resize", "--flavor", "m1.small", "--wait", sid)
    _status(osc, sid, "VERIFY_RESIZE")
    osc.run("server", "resize", "confirm", sid)
    _status(osc, sid, "ACTIVE")
    info = dict(line.split(":", 1) for line in virsh("dominfo", domain).splitlines()
                if ":" in line)
    assert info["Max memory"].strip() == "2097152 KiB"     # m1.small's 2048 MB

    snap = osc.json("server", "image", "create", "--wait", "--name", "vm1-snap", sid)
    assert osc.json("image", "show", snap["id"])["status"] == "active"
    second = osc.json("server", "create", "--image", "vm1-snap", "--flavor", "m1.small",
                      "--wait", "vm2")
    assert second["status"] == "ACTIVE"
    wait(lambda: test_guest.KNOWN_LINE in osc.run("console", "log", "show",
                                                  second["id"]).stdout,
         "the snapshot's guest on its console")

    for server in (sid, second["id"]):
        osc.run("server", "delete", "--wait", server)
        assert f"cloudd-{server}" not in virsh("list", "--all", "--name").split()
        assert not (work / "instances" / server).exists()


def test_a_guest_destroyed_with_virsh_shows_shutoff(env):
    """libvirt's lifecycle event (or, if it is missed, the periodic power
    sync) brings a guest stopped behind cloudd's back to SHUTOFF."""
    osc, _, work = env
    sid = osc.json("server", "create", "--image", "guest", "--flavor", "m1.tiny",
                   "--wait", "vm-destroyed")["id"]
    domain = f"cloudd-{sid}"
    assert virsh("domstate", domain) == "running"
    subprocess.run(["virsh", "-c", "qemu:///system", "destroy", domain], check=True,
                   capture_output=True)
    shown = _status(osc, sid, "SHUTOFF", timeout=90)
    assert shown["OS-EXT-STS:power_state"] in (4, "Shutdown", "SHUTDOWN")
    assert virsh("domstate", domain) == "shut off"        # cloudd did not restart it
    osc.run("server", "delete", "--wait", sid)
    assert domain not in virsh("list", "--all", "--name").split()
    assert not (work / "instances" / sid).exists()
