"""Real guests: `cloudd serve` with its local libvirt agent, driven by the
real `openstack` CLI: boot, console log, stop/start, reboot, resize, a
snapshot booted as a second guest, delete.

The guest is the tiny one cloudd.testing.guest builds from Debian's kernel
and busybox; it boots by direct kernel boot under QEMU (KVM when it really
works here, software emulation otherwise) and prints a known line on its
serial console. On CI a missing libvirt fails these tests; it never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cloudd.testing import guest as test_guest
from cloudd.testing.libvirtd import LibvirtUnavailable, ensure_running
from cloudd.testing.process import CloudProcess
from tests.conftest import FAST, Osc

SHARED = Path("/var/lib/cloudd-tests")   # QEMU's own user must reach guests' files


def _virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True,
                          text=True, check=False).stdout.strip()


def _wait(check, what: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    try:
        ensure_running()
        guest = test_guest.build()
    except (LibvirtUnavailable, RuntimeError, subprocess.CalledProcessError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"libvirt tests cannot run: {e}")
        pytest.skip(f"libvirt tests cannot run: {e}")
    base = tmp_path_factory.mktemp("libvirt")
    work = SHARED / uuid.uuid4().hex[:12]
    work.mkdir(parents=True, mode=0o711)
    SHARED.chmod(0o711)
    cloud = CloudProcess(base / "data", env={
        **FAST, "CLOUDD_COMPUTE__LOCAL_AGENT": "libvirt",
        "CLOUDD_LIBVIRT__INSTANCES_DIR": str(work / "instances"),
        "CLOUDD_LIBVIRT__IMAGE_CACHE_DIR": str(work / "images"),
        "CLOUDD_LIBVIRT__PROBE_KERNEL": str(guest.kernel),
        "CLOUDD_LIBVIRT__SHUTDOWN_TIMEOUT": "15",
        "CLOUDD_AGENT__RESERVED_HOST_MEMORY_MB": "0"}).start(timeout=120)
    osc = Osc(cloud)
    try:
        _wait(lambda: any(s["State"] == "up" for s in osc.json(
            "compute", "service", "list", "--service", "nova-compute")), "libvirt host up")
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
        yield osc, cloud, work
    finally:
        code = cloud.stop()
        for name in _virsh("list", "--all", "--name").split():
            # only this test's guests: other runs may share the host's libvirtd
            if name.startswith("cloudd-") and str(work) in _virsh("dumpxml", name):
                _virsh("destroy", name)
                _virsh("undefine", name, "--managed-save")
        shutil.rmtree(work, ignore_errors=True)
    assert code == 0, cloud.log_text()[-3000:]


def _status(osc: Osc, sid: str, status: str, timeout: float = 180.0) -> dict:
    return _wait(lambda: (s := osc.json("server", "show", sid))["status"] == status and s,
                 f"{sid} {status}", timeout)


def test_a_real_guest_boots_and_lives(env):
    osc, _, work = env
    server = osc.json("server", "create", "--image", "guest", "--flavor", "m1.tiny",
                      "--wait", "vm1")
    sid = server["id"]
    assert server["status"] == "ACTIVE"
    domain = f"cloudd-{sid}"
    assert _virsh("domstate", domain) == "running"
    _wait(lambda: test_guest.KNOWN_LINE in osc.run("console", "log", "show", sid).stdout,
          "the guest's known line on its console")

    osc.run("server", "stop", sid)
    _status(osc, sid, "SHUTOFF")
    assert _virsh("domstate", domain) == "shut off"
    osc.run("server", "start", sid)
    _status(osc, sid, "ACTIVE")
    assert _virsh("domstate", domain) == "running"
    osc.run("server", "reboot", "--hard", "--wait", sid)
    assert _virsh("domstate", domain) == "running"

    osc.run("server", "resize", "--flavor", "m1.small", "--wait", sid)
    _status(osc, sid, "VERIFY_RESIZE")
    osc.run("server", "resize", "confirm", sid)
    _status(osc, sid, "ACTIVE")
    info = dict(line.split(":", 1) for line in _virsh("dominfo", domain).splitlines()
                if ":" in line)
    assert info["Max memory"].strip() == "2097152 KiB"     # m1.small's 2048 MB

    snap = osc.json("server", "image", "create", "--wait", "--name", "vm1-snap", sid)
    assert osc.json("image", "show", snap["id"])["status"] == "active"
    second = osc.json("server", "create", "--image", "vm1-snap", "--flavor", "m1.small",
                      "--wait", "vm2")
    assert second["status"] == "ACTIVE"
    _wait(lambda: test_guest.KNOWN_LINE in osc.run("console", "log", "show",
                                                   second["id"]).stdout,
          "the snapshot's guest on its console")

    for server in (sid, second["id"]):
        osc.run("server", "delete", "--wait", server)
        assert f"cloudd-{server}" not in _virsh("list", "--all", "--name").split()
        assert not (work / "instances" / server).exists()
