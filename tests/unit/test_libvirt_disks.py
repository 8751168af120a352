"""The flavor's ephemeral disk: which filesystem each image os_type gets, and
real mkfs runs (ext4, vfat, ntfs) checked by reading the filesystem back."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid as uuidlib

import pytest

from cloudd.drivers.base import InstanceSpec
from cloudd.drivers.libvirt import disks


def test_ephemeral_filesystem_per_os_type():
    assert disks.ephemeral_command(None)[0] == "mkfs.ext4"            # Nova's default
    assert disks.ephemeral_command("linux")[0] == "mkfs.ext4"
    assert disks.ephemeral_command("Windows")[0] == "mkfs.ntfs"
    assert disks.ephemeral_command("freebsd")[0] == "mkfs.ext4"       # unknown: default
    formats = {"linux": "vfat", "windows": "ntfs"}
    assert disks.ephemeral_command("linux", formats)[:2] == ["mkfs.vfat", "-n"]
    assert disks.ephemeral_command("plan9", formats, "xfs")[0] == "mkfs.xfs"
    with pytest.raises(disks.DiskError, match="unknown ephemeral filesystem"):
        disks.ephemeral_command("linux", {"linux": "zfs"})


def _tool_or_skip(tool: str, package: str) -> None:
    for needed, pkg in ((tool, package), ("qemu-img", "qemu-utils")):
        if shutil.which(needed) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{needed} is missing (Debian's {pkg}; make test installs it)")
            pytest.skip(f"{needed} is not installed (Debian's {pkg})")


def _filesystem_of(qcow2, tmp_path) -> tuple[str, str]:
    """(TYPE, LABEL) blkid reads from a qcow2 disk, converted back to raw."""
    raw = tmp_path / f"check-{uuidlib.uuid4().hex[:6]}.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(raw)],
                   check=True)
    out = subprocess.run(["blkid", "-p", "-o", "export", str(raw)], capture_output=True,
                         text=True, check=False).stdout
    raw.unlink()
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return found.get("TYPE", ""), found.get("LABEL", "")


@pytest.mark.asyncio
@pytest.mark.parametrize(("os_type", "fs", "tool", "package", "label"), [
    ("linux", "ext4", "mkfs.ext4", "e2fsprogs", "ephemeral0"),
    ("windows", "ntfs", "mkfs.ntfs", "ntfs-3g", "ephemeral0"),
    ("dos", "vfat", "mkfs.vfat", "dosfstools", "EPHEMERAL0"),
])
async def test_a_real_ephemeral_disk_is_formatted(tmp_path, os_type, fs, tool, package,
                                                  label):
    _tool_or_skip(tool, package)
    disk = tmp_path / "disk.eph0"
    await disks.ephemeral(disk, 0, os_type, {"linux": "ext4", "windows": "ntfs",
                                             "dos": "vfat"}, size=64 * 1024 ** 2)
    info = await disks.info(disk)
    assert info["format"] == "qcow2" and info["virtual-size"] == 64 * 1024 ** 2
    assert _filesystem_of(disk, tmp_path) == (fs, label)
    assert [p.name for p in tmp_path.iterdir()] == ["disk.eph0"]    # no raw left behind


@pytest.mark.asyncio
async def test_the_driver_formats_the_flavors_ephemeral_disk_as_configured(tmp_path):
    pytest.importorskip("libvirt", reason="libvirt-python is not installed "
                        "(make test installs cloudd[libvirt])")
    _tool_or_skip("mkfs.vfat", "dosfstools")
    from cloudd.drivers.libvirt.driver import LibvirtDriver
    driver = LibvirtDriver("host1", uri="test:///default", virt_type="test",
                           instances_dir=tmp_path / "instances",
                           ephemeral_formats={"linux": "vfat"})
    await driver.connect()
    try:
        spec = InstanceSpec(uuid=str(uuidlib.uuid4()), name="vm", vcpus=1, memory_mb=128,
                            root_gb=0, ephemeral_gb=1,
                            image={"properties": {"os_type": "linux"}})
        await driver.spawn(spec)
        eph = tmp_path / "instances" / spec.uuid / "disk.eph0"
        assert _filesystem_of(eph, tmp_path) == ("vfat", "EPHEMERAL0")
        await driver.destroy(spec.uuid)
        assert not eph.parent.exists()
    finally:
        await driver.close()


def test_ephemeral_formats_are_configurable_and_checked():
    from cloudd.config import ConfigError, load
    cfg = load(None, {"CLOUDD_LIBVIRT__EPHEMERAL_FORMATS": "linux=vfat, Windows=ntfs"})
    assert cfg.libvirt.ephemeral_format_map() == {"linux": "vfat", "windows": "ntfs"}
    assert load(None, {}).libvirt.ephemeral_format_map() == {"linux": "ext4",
                                                            "windows": "ntfs"}
    with pytest.raises(ConfigError, match="linux=zfs"):
        load(None, {"CLOUDD_LIBVIRT__EPHEMERAL_FORMATS": "linux=zfs"})
