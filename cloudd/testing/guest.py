"""A tiny bootable test guest built from Debian packages.

The kernel comes from ``linux-image-cloud-amd64`` and the initramfs from
``busybox-static``: its init prints ``KNOWN_LINE`` and what it knows about
itself to the serial console, then idles. Both are fetched with
``apt-get download`` (no root needed) and cached under ~/.cache/cloudd/guest.
The image API gets them as a kernel (aki), a ramdisk (ari) and a small
machine image (ami) naming the two.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

KNOWN_LINE = "cloudd-test-guest: hello from the guest"
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
    """The guest's kernel and initramfs (cached after the first build)."""
    guest = Guest(cache / "vmlinuz", cache / "initrd.gz")
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
