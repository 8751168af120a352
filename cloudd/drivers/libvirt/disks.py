"""Instance disks on the host, made with qemu-img, mkfs and mkswap in subprocesses.

Each instance has a directory ``INSTANCES/UUID`` holding ``disk`` (a qcow2
overlay on the cached base image, sized to the flavor's root disk),
``disk.eph0`` (the flavor's ephemeral disk, formatted for the guest's
os_type), ``disk.swap`` and ``console.log``. Deleting the directory removes
every file of the instance.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

# mkfs per ephemeral filesystem (Nova's _DEFAULT_MKFS_COMMAND and virt_mkfs),
# labelled as Nova labels them.
MKFS = {
    "ext4": ["mkfs.ext4", "-F", "-q", "-L", "ephemeral0"],
    "ext3": ["mkfs.ext3", "-F", "-q", "-L", "ephemeral0"],
    "xfs": ["mkfs.xfs", "-f", "-q", "-L", "ephemeral0"],
    "vfat": ["mkfs.vfat", "-n", "EPHEMERAL0"],
    "ntfs": ["mkfs.ntfs", "-F", "-Q", "-q", "-L", "ephemeral0"],
}
# The filesystem per image os_type ([libvirt] ephemeral_formats); anything
# else gets DEFAULT_EPHEMERAL (ext4, Nova's default_ephemeral_format).
EPHEMERAL_FORMATS = {"linux": "ext4", "windows": "ntfs"}
DEFAULT_EPHEMERAL = "ext4"


class DiskError(Exception):
    pass


async def run(*cmd: str, timeout: float = 600) -> str:
    """Run a command off the event loop; its stdout, or DiskError with stderr."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DiskError(f"{cmd[0]} timed out after {timeout}s") from None
    if proc.returncode != 0:
        raise DiskError(f"{' '.join(cmd)}: {err.decode(errors='replace').strip()}")
    return out.decode()


async def info(path: str | Path, fmt: str | None = None) -> dict:
    """qemu-img info as JSON (format forced when given)."""
    args = ["qemu-img", "info", "--output=json"]
    if fmt:
        args += ["-f", fmt]
    return json.loads(await run(*args, str(path)))


async def check_base(path: str | Path, fmt: str) -> dict:
    """Check a cached base image again before use: the format it claims, no
    backing file, no external data file."""
    data = await info(path, fmt)
    if data.get("backing-filename"):
        raise DiskError(f"image {path} has a backing file")
    specific = (data.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise DiskError(f"image {path} has an external data file")
    probed = await info(path)
    if fmt == "raw" and probed.get("format") not in ("raw", None):
        raise DiskError(f"image {path} claims raw but is {probed.get('format')}")
    return data


async def overlay(base: str | Path, base_format: str, path: str | Path,
                  size_gb: int, virtual_size: int | None = None) -> None:
    """A qcow2 overlay on ``base``; grown to ``size_gb`` when that is larger.
    ``virtual_size`` is the base's, when known (saves a qemu-img run)."""
    virtual = virtual_size if virtual_size is not None \
        else (await info(base, base_format))["virtual-size"]
    size = max(virtual, size_gb * 1024 ** 3)
    await run("qemu-img", "create", "-q", "-f", "qcow2", "-F", base_format, "-b",
              str(base), str(path), str(size))


async def grow(path: str | Path, size_gb: int) -> None:
    """Grow a disk (resize up); never shrinks."""
    current = (await info(path, "qcow2"))["virtual-size"]
    if size_gb * 1024 ** 3 > current:
        await run("qemu-img", "resize", "-q", "-f", "qcow2", str(path), f"{size_gb}G")


def ephemeral_command(os_type: str | None, formats: dict[str, str] | None = None,
                      default: str = DEFAULT_EPHEMERAL) -> list[str]:
    """The mkfs command line (without the target) for an image's os_type."""
    table = EPHEMERAL_FORMATS if formats is None else formats
    fs = table.get((os_type or "").lower(), default)
    if fs not in MKFS:
        raise DiskError(f"unknown ephemeral filesystem {fs!r} (known: {', '.join(MKFS)})")
    return list(MKFS[fs])


async def ephemeral(path: str | Path, size_gb: int, os_type: str | None,
                    formats: dict[str, str] | None = None,
                    default: str = DEFAULT_EPHEMERAL, *, size: int | None = None) -> None:
    """The flavor's ephemeral disk: a raw file with a filesystem, as a qcow2
    (``size`` in bytes overrides ``size_gb``)."""
    await _formatted(path, size_gb * 1024 ** 3 if size is None else size,
                     ephemeral_command(os_type, formats, default))


async def swap(path: str | Path, size_mb: int) -> None:
    await _formatted(path, size_mb * 1024 ** 2, ["mkswap", "-L", "swap0"])


async def _formatted(path: str | Path, size: int, mkfs: list[str]) -> None:
    if not shutil.which(mkfs[0]):
        raise DiskError(f"{mkfs[0]} is not installed on this host")
    directory = Path(path).parent
    fd, raw = tempfile.mkstemp(dir=directory, prefix=".raw-")
    os.close(fd)
    try:
        os.truncate(raw, size)
        await run(*mkfs, raw)
        await run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, str(path))
    finally:
        os.unlink(raw)


async def snapshot(path: str | Path, target: str | Path) -> None:
    """A standalone qcow2 copy of a (possibly overlaid) disk."""
    # -U: the running guest's QEMU holds the image lock; the caller pauses it.
    await run("qemu-img", "convert", "-q", "-U", "-O", "qcow2", str(path), str(target))


def console_tail(path: str | Path, lines: int | None) -> str:
    """The last ``lines`` lines of a console log (all of it for None)."""
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    if lines is None:
        return text
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""
