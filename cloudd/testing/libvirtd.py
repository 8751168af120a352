"""Make sure a libvirtd (with virtlogd) answers on qemu:///system for the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import time


class LibvirtUnavailable(Exception):
    pass


def _answers() -> bool:
    res = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True,
                         timeout=30, check=False)
    return res.returncode == 0


def ensure_running() -> None:
    """Start libvirtd and virtlogd (as root) unless they already answer."""
    if shutil.which("virsh") is None or shutil.which("libvirtd") is None:
        raise LibvirtUnavailable("libvirt is not installed (make test installs "
                                 "libvirt-daemon-system and qemu-system-x86)")
    if _answers():
        return
    if os.geteuid() != 0:
        raise LibvirtUnavailable("libvirtd is not running and only root can start it")
    for daemon in ("virtlogd", "libvirtd"):
        running = subprocess.run(["pgrep", "-x", daemon], capture_output=True, check=False)
        if running.returncode != 0:
            subprocess.run([daemon, "-d"], check=True, timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _answers():
            return
        time.sleep(0.5)
    raise LibvirtUnavailable("libvirtd did not answer on qemu:///system")
