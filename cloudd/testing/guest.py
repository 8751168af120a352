"""A tiny bootable test guest built from Debian packages.

The kernel comes from ``linux-image-cloud-amd64`` and the initramfs from
``busybox-static``: its init prints ``KNOWN_LINE`` and what it knows about
itself to the serial console, then idles. In the background it brings up eth0
with udhcpc (virtio-net's modules are copied from the kernel package) and
prints ``IP_LINE``, mounts the config drive and prints its uuid and key, asks
the metadata service for its uuid, and runs the drive's ``#!`` user data.
Both are fetched with
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
PREFIX = "cloudd-test-guest: "
IP_LINE = PREFIX + "ip "
# the config drive's meta_data.json uuid and first public key, the metadata
# service's uuid (through 169.254.169.254)
DRIVE_UUID_LINE = PREFIX + "uuid "
DRIVE_KEY_LINE = PREFIX + "key "
METADATA_UUID_LINE = PREFIX + "metadata uuid "
# The kernel modules the guest loads, with what they depend on: the virtio NIC,
# and the IDE CD-ROM with ISO 9660 for the config drive.
MODULES = ["virtio_pci", "virtio_net", "ata_piix", "sr_mod", "isofs"]
UDHCPC_SCRIPT = f"""#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    [ -n "$router" ] && ip route replace default via "${{router%% *}}"
    echo "{IP_LINE}$ip"
    ;;
esac
"""
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cloudd" / "guest"

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /etc/acpi/PWRF /mnt/config /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "{KNOWN_LINE}"
echo "{PREFIX}kernel $(uname -r)"
echo "{PREFIX}cmdline $(cat /proc/cmdline)"
echo "{PREFIX}memory $(grep MemTotal /proc/meminfo)"
echo "{PREFIX}cpus $(grep -c ^processor /proc/cpuinfo)"
# ACPI power button: shut down cleanly, so a graceful power-off works.
printf '#!/bin/sh\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
acpid -c /etc/acpi 2>/dev/null
/bin/netinit &
while true; do sleep 3600; done
"""

# In the background: the NIC over DHCP, the config drive (config-2), the
# metadata service, then #! user data from the drive.
NETINIT = f"""#!/bin/sh
dmesg -n 1
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko 2>/dev/null; done
ip link set lo up
if ip link show eth0 >/dev/null 2>&1; then
  ip link set eth0 up
  udhcpc -i eth0 -n -q -t 20 -T 3 -O mtu -s /etc/udhcpc.script || echo "{PREFIX}no dhcp"
fi
field() {{ grep -o "\\"$1\\": *\\"[^\\"]*\\"" | head -1 | sed 's/.*: *"\\(.*\\)"/\\1/'; }}
for i in 1 2 3 4 5; do
  for d in /dev/sr0 /dev/hdc /dev/hdd; do
    [ -b $d ] && mount -t iso9660 -o ro $d /mnt/config 2>/dev/null && break 2
  done
  sleep 1
done
drive=/mnt/config/openstack/latest
if [ -f $drive/meta_data.json ]; then
  echo "{DRIVE_UUID_LINE}$(field uuid < $drive/meta_data.json)"
  key=$(grep -o '"public_keys": *{{[^}}]*}}' $drive/meta_data.json \\
        | sed 's/^[^{{]*{{ *"[^"]*": *"\\([^"]*\\)".*/\\1/; s/\\\\n$//')
  echo "{DRIVE_KEY_LINE}$key"
else
  echo "{PREFIX}no config drive"
fi
if ip -4 addr show eth0 2>/dev/null | grep -q inet; then
  for i in 1 2 3 4 5 6 7 8 9 10; do
    # stdin stays open: busybox nc half-closes at its end, and a web server
    # takes that for a client gone (a real client sends no FIN first)
    out=$( (printf 'GET /openstack/latest/meta_data.json HTTP/1.0\\r\\n\\r\\n'; sleep 5) \\
          | nc 169.254.169.254 80)
    [ -n "$out" ] && echo "{METADATA_UUID_LINE}$(echo "$out" | field uuid)" && break
    sleep 2
  done
fi
if [ -f $drive/user_data ] && [ "$(head -c 2 $drive/user_data)" = "#!" ]; then
  cp $drive/user_data /tmp/user_data && chmod +x /tmp/user_data && /tmp/user_data
fi
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


def _modules(tree: Path, root: Path) -> None:
    """MODULES and what they depend on (read from each module's modinfo
    ``depends=``), into the initramfs with the order to load them in."""
    found = {p.name.removesuffix(".ko"): p for p in (tree / "lib" / "modules").rglob("*.ko")}
    if not found:
        raise RuntimeError("the kernel package has no uncompressed modules")
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in found:
            return                       # loaded already, or built into the kernel
        data = found[name].read_bytes()
        start = data.find(b"depends=")
        deps = data[start + 8:data.index(b"\0", start)].decode() if start >= 0 else ""
        for dep in filter(None, deps.split(",")):
            visit(dep)
        order.append(name)

    for name in MODULES:
        visit(name)
    target = root / "lib" / "modules"
    target.mkdir(parents=True)
    for name in order:
        shutil.copy2(found[name], target / f"{name}.ko")
    (target / "order").write_text("\n".join(order) + "\n")


def build(cache: Path = CACHE) -> Guest:
    """The guest's kernel and initramfs (cached after the first build, by the
    hash of what the initramfs holds; the kernel goes with its modules)."""
    tag = hashlib.sha256((INIT + NETINIT + UDHCPC_SCRIPT + "".join(MODULES)).encode()).hexdigest()[:12]
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
        (root / "bin" / "netinit").write_text(NETINIT)
        (root / "bin" / "netinit").chmod(0o755)
        _modules(tree, root)
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
