"""A tiny bootable test guest built from Debian packages.

The kernel comes from ``linux-image-cloud-amd64`` and the initramfs from
``busybox-static``: its init prints ``KNOWN_LINE`` and what it knows about
itself to the serial console, brings up eth0 with udhcpc (virtio-net's modules
are copied from the kernel package) and prints ``cloudd-test-guest: ip ADDR``,
then idles. Both are fetched with
``apt-get download`` (no root needed) and cached under ~/.cache/cloudd/guest.
The image API gets them as a kernel (aki), a ramdisk (ari) and a small
machine image (ami) naming the two.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

KNOWN_LINE = "cloudd-test-guest: hello from the guest"
IP_LINE = "cloudd-test-guest: ip "
# virtio-net and what it needs, in load order (modules in Debian's cloud kernel)
MODULES = ["drivers/virtio/virtio_ring", "drivers/virtio/virtio",
           "drivers/virtio/virtio_pci_modern_dev", "drivers/virtio/virtio_pci_legacy_dev",
           "drivers/virtio/virtio_pci", "net/core/failover", "drivers/net/net_failover",
           "drivers/net/virtio_net"]
UDHCPC_SCRIPT = f"""#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${{router%% *}}"
    echo "{IP_LINE}$ip"
    ;;
esac
"""
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cloudd" / "guest"

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /etc/acpi/PWRF
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "{KNOWN_LINE}"
echo "cloudd-test-guest: kernel $(uname -r)"
echo "cloudd-test-guest: cmdline $(cat /proc/cmdline)"
echo "cloudd-test-guest: memory $(grep MemTotal /proc/meminfo)"
echo "cloudd-test-guest: cpus $(grep -c ^processor /proc/cpuinfo)"
# ACPI power button: shut down cleanly, so a graceful power-off works.
printf '#!/bin/sh\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
acpid -c /etc/acpi 2>/dev/null
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then
  ip link set eth0 up
  udhcpc -i eth0 -n -q -t 20 -T 3 -s /etc/udhcpc.script || echo "cloudd-test-guest: no dhcp"
fi
while true; do sleep 3600; done
"""


@dataclass(frozen=True)
class Guest:
    kernel: Path
    ramdisk: Path


def _kernel_package() -> str:
    out = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split(":", 1)[1].strip()
    raise RuntimeError("linux-image-cloud-amd64 names no kernel package")


def _download(packages: list[str], into: Path) -> list[Path]:
    subprocess.run(["apt-get", "download", "-q", *packages], cwd=into, check=True,
                   capture_output=True)
    return sorted(into.glob("*.deb"))


def build(cache: Path = CACHE) -> Guest:
    """The guest's kernel and initramfs (cached after the first build, by the
    hash of what the initramfs holds; the kernel goes with its modules)."""
    tag = hashlib.sha256((INIT + UDHCPC_SCRIPT + "".join(MODULES)).encode()).hexdigest()[:12]
    guest = Guest(cache / f"vmlinuz-{tag}", cache / f"initrd-{tag}.gz")
    if guest.kernel.exists() and guest.ramdisk.exists():
        return guest
    if shutil.which("cpio") is None:
        raise RuntimeError("cpio is needed to build the test guest (Debian's cpio package)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        debs = _download(["busybox-static", _kernel_package()], work)
        tree = work / "x"
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        kernel = next((tree / "boot").glob("vmlinuz-*"))
        root = work / "root"
        (root / "bin").mkdir(parents=True)
        shutil.copy2(tree / "bin" / "busybox", root / "bin" / "busybox")
        (root / "init").write_text(INIT)
        (root / "init").chmod(0o755)
        (root / "etc").mkdir()
        (root / "etc" / "udhcpc.script").write_text(UDHCPC_SCRIPT)
        (root / "etc" / "udhcpc.script").chmod(0o755)
        (root / "lib" / "modules").mkdir(parents=True)
        moddir = next((tree / "lib" / "modules").iterdir()) / "kernel"
        for i, mod in enumerate(MODULES):
            src = next(moddir.parent.glob(f"kernel/{mod}.ko*"))
            if src.suffix != ".ko":
                raise RuntimeError(f"{src.name}: compressed modules are not supported")
            # numbered so the init's glob loads them in dependency order
            shutil.copy2(src, root / "lib" / "modules" / f"{i:02d}-{src.name}")
        files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True)
        archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                                 input=files.stdout, capture_output=True, check=True)
        initrd = work / "initrd.gz"
        with open(initrd, "wb") as out:
            subprocess.run(["gzip", "-9"], input=archive.stdout, stdout=out, check=True)
        shutil.copy2(kernel, work / "vmlinuz")
        os.replace(work / "vmlinuz", guest.kernel)
        os.replace(initrd, guest.ramdisk)
    return guest
