"""Which virt_type this host gets: kvm when KVM really works, else qemu
(software emulation). /dev/kvm opening is not proof enough: a kernel is
booted under KVM until it prints its banner."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path


def _kvm_opens() -> bool:
    """/dev/kvm answers: a VM and a vCPU can be created."""
    import fcntl
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        vm = fcntl.ioctl(fd, 0xAE01, 0)          # KVM_CREATE_VM
        try:
            os.close(fcntl.ioctl(vm, 0xAE41, 0))  # KVM_CREATE_VCPU
        finally:
            os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def probe_kernel_path(configured: str = "") -> Path | None:
    """The kernel the probe boots: the configured one, else the host's own."""
    if configured:
        return Path(configured)
    found = sorted(Path("/boot").glob("vmlinuz-*"))
    return found[-1] if found else None


async def kvm_boots(kernel: Path, timeout: float = 30.0) -> bool:
    """Boot ``kernel`` under KVM until it prints its banner.

    /dev/kvm can open and still be unusable (nested hosts whose KVM hangs
    when a guest enters long mode): only a kernel that really starts proves
    it works.
    """
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return False
    proc = await asyncio.create_subprocess_exec(
        qemu, "-accel", "kvm", "-M", "pc", "-m", "128", "-nographic", "-nodefaults",
        "-no-reboot", "-serial", "stdio", "-kernel", str(kernel),
        "-append", "console=ttyS0 panic=-1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    seen = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await proc.stdout.read(4096):
                seen = (seen + chunk)[-8192:]
                if b"Linux version" in seen:
                    return True
    except TimeoutError:
        pass
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return False


async def detect_virt_type(wanted: str = "auto", probe_kernel: str = "") -> str:
    """kvm when KVM really works here, else qemu (software emulation)."""
    if wanted in ("kvm", "qemu", "test"):
        return wanted
    if not await asyncio.to_thread(_kvm_opens):
        return "qemu"
    kernel = probe_kernel_path(probe_kernel)
    if kernel is None or not kernel.exists():
        return "kvm"        # nothing to boot: trust /dev/kvm
    return "kvm" if await kvm_boots(kernel) else "qemu"
