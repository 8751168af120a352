"""`cloudd serve` with its local libvirt agent, for the tests of real guests.

``libvirt_cloud`` starts the cloud with its own directories under SHARED
(QEMU's own user, and dnsmasq's, must reach them), its own subnet, nftables
tables and metadata port (other runs share this host), uploads the test
guest (kernel, ramdisk and a machine image named ``guest``), and afterwards
removes everything the cloud left on the host: its guests, bridges, dnsmasq
and nftables tables. On CI a missing libvirt, tool or root fails the test;
elsewhere it skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudd.testing import guest as test_guest
from cloudd.testing import poll
from cloudd.testing.libvirtd import LibvirtUnavailable, ensure_running
from cloudd.testing.postgres import free_port
from cloudd.testing.process import CloudProcess
from tests.conftest import FAST, Osc

SHARED = Path("/var/lib/cloudd-tests")
TOOLS = ("dnsmasq", "nft", "ip", "ping")      # make network-system-deps


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True,
                          text=True, check=False).stdout.strip()


def wait(check, what: str, timeout: float = 180.0):
    """``check()``'s first true result, polled each second (guests are slow)."""
    return poll.wait(check, what, timeout, interval=1.0)


def unavailable(msg: str):
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def console(osc: Osc, sid: str) -> str:
    return osc.run("console", "log", "show", sid).stdout


@contextlib.contextmanager
def libvirt_cloud(base: Path, *, cmdline: str = "console=ttyS0", shutdown_timeout: int = 15
                  ) -> Iterator[tuple[Osc, CloudProcess, Path]]:
    """(osc, cloud, work directory) of a running cloud whose image ``guest``
    boots the test guest with kernel command line ``cmdline``."""
    try:
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not installed "
                               "(make network-system-deps)")
        if os.geteuid() != 0:
            raise RuntimeError("the agent's host networking needs root")
        ensure_running()
        guest = test_guest.build()
    except (LibvirtUnavailable, RuntimeError, subprocess.CalledProcessError) as e:
        unavailable(f"libvirt tests cannot run: {e}")
    work = SHARED / uuid.uuid4().hex[:12]
    work.mkdir(parents=True, mode=0o711)
    SHARED.chmod(0o711)
    cloud = CloudProcess(base / "data", env={
        **FAST, "CLOUDD_COMPUTE__LOCAL_AGENT": "libvirt",
        "CLOUDD_LIBVIRT__INSTANCES_DIR": str(work / "instances"),
        "CLOUDD_LIBVIRT__IMAGE_CACHE_DIR": str(work / "images"),
        "CLOUDD_LIBVIRT__PROBE_KERNEL": str(guest.kernel),
        "CLOUDD_LIBVIRT__SHUTDOWN_TIMEOUT": str(shutdown_timeout),
        "CLOUDD_AGENT__RESERVED_HOST_MEMORY_MB": "0",
        "CLOUDD_HOST_NETWORK__METADATA_PORT": str(free_port()),
        "CLOUDD_HOST_NETWORK__STATE_DIR": str(work / "network")})
    table = cloud.env()["CLOUDD_HOST_NETWORK__NFT_TABLE"]
    cloud.start(timeout=120)
    osc = Osc(cloud)
    bridges: list[str] = []
    try:
        wait(lambda: any(s["State"] == "up" for s in osc.json(
            "compute", "service", "list", "--service", "nova-compute")), "libvirt host up")
        bridges = ["cdbr-" + n["ID"][:10] for n in osc.json("network", "list")]
        kernel = osc.json("image", "create", "--disk-format", "aki", "--container-format",
                          "aki", "--file", str(guest.kernel), "guest-kernel")
        ramdisk = osc.json("image", "create", "--disk-format", "ari", "--container-format",
                           "ari", "--file", str(guest.ramdisk), "guest-ramdisk")
        machine = base / "machine.img"
        machine.write_bytes(b"\0" * 1024 * 1024)
        osc.json("image", "create", "--disk-format", "ami", "--container-format", "ami",
                 "--file", str(machine), "--property", f"kernel_id={kernel['id']}",
                 "--property", f"ramdisk_id={ramdisk['id']}",
                 "--property", f"os_command_line={cmdline}", "guest")
        yield osc, cloud, work
        bridges = ["cdbr-" + n["ID"][:10] for n in osc.json("network", "list")]
    finally:
        code = cloud.stop()
        _clean_host(work, bridges, table)
    assert code == 0, cloud.log_text()[-3000:]


def _clean_host(work: Path, bridges: list[str], table: str) -> None:
    """This cloud's guests, bridges, dnsmasq and nftables tables: only its
    own, other runs may share the host."""
    for name in virsh("list", "--all", "--name").split():
        if name.startswith("cloudd-") and str(work) in virsh("dumpxml", name):
            virsh("destroy", name)
            virsh("undefine", name, "--managed-save")
    for pidfile in (work / "network").glob("dnsmasq/*/pid"):
        try:
            os.kill(int(pidfile.read_text()), 15)
        except (OSError, ValueError):
            pass
    for bridge in bridges:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    for family, name in (("bridge", table), ("ip", f"{table}_nat")):
        subprocess.run(["nft", "delete", "table", family, name], capture_output=True,
                       check=False)
    shutil.rmtree(work, ignore_errors=True)
