"""Format inspection: is the uploaded data what its disk_format says, and safe?

Two looks, as Glance's format_inspector and Nova's image checks take:

1. A probe of the file's headers in Python (no external tools): the format the
   data really is (qcow2, vmdk, vdi, vhd, vhdx, iso, qed, luks, else raw), and
   for qcow2 whether it names a backing file or an external data file.
2. ``qemu-img info -f FORMAT --output=json`` in a subprocess under resource
   limits (``prlimit`` address space and CPU time, plus a wall-clock timeout):
   the virtual size, and qemu's own view of backing files, data files and
   VMDK create types.

A mismatch (including rich-format data claiming to be raw, which qemu-img
with ``-f raw`` cannot see) or anything unsafe raises FormatError; the caller
refuses the upload with 400 and activates nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import struct
from pathlib import Path

log = logging.getLogger("cloudd.image")

# disk_format -> the name qemu-img uses for it.
QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc",
                "vhdx": "vhdx", "iso": "raw"}
# Kernel, ramdisk and machine blobs (and ploop): not inspectable; accepted as
# long as they are not a recognisable disk format.
OPAQUE = ("aki", "ari", "ami", "ploop")
VMDK_ALLOWED_TYPES = ("streamOptimized", "monolithicSparse")
_QCOW2_EXTERNAL_DATA_FILE = 1 << 2


class FormatError(Exception):
    """The data is not what disk_format says, or is unsafe to use."""


def probe(path: Path) -> dict:
    """The format the file's headers show, with qcow2 safety facts."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(512)
        found: dict = {"format": "raw", "size": size}
        if head[:4] == b"QFI\xfb" and len(head) >= 32:
            found.update(_qcow2(head, f))
        elif head[:4] == b"KDMV" or head.startswith(b"# Disk DescriptorFile"):
            found["format"] = "vmdk"
        elif len(head) >= 68 and head[64:68] == b"\x7f\x10\xda\xbe":
            found["format"] = "vdi"
        elif head[:8] == b"vhdxfile":
            found["format"] = "vhdx"
        elif head[:8] == b"conectix":
            found["format"] = "vhd"
        elif head[:4] == b"QED\x00":
            found["format"] = "qed"
        elif head[:6] == b"LUKS\xba\xbe":
            found["format"] = "luks"
        else:
            for offset in (0x8001, 0x8801, 0x9001):
                if size >= offset + 5:
                    f.seek(offset)
                    if f.read(5) == b"CD001":
                        found["format"] = "iso"
                        break
            if found["format"] == "raw" and size >= 512:
                f.seek(size - 512)
                if f.read(8) == b"conectix":       # a fixed VHD: raw data + footer
                    found["format"] = "vhd"
    return found


def _qcow2(head: bytes, f) -> dict:
    version, backing_offset, backing_size = struct.unpack(">IQI", head[4:20])
    virtual_size = struct.unpack(">Q", head[24:32])[0]
    out = {"format": "qcow2", "virtual_size": virtual_size,
           "backing_file": bool(backing_offset or backing_size), "data_file": False}
    if version >= 3 and len(head) >= 80:
        incompatible = struct.unpack(">Q", head[72:80])[0]
        out["data_file"] = bool(incompatible & _QCOW2_EXTERNAL_DATA_FILE)
    return out


def _expected(disk_format: str) -> str:
    return "vhd" if disk_format == "vhd" else disk_format


async def check(path: Path, disk_format: str, *, timeout: float = 30.0,
                memory_mb: int = 1024) -> int | None:
    """Raise FormatError unless ``path`` holds ``disk_format`` data that is safe;
    return its virtual size (None where Glance leaves it unset)."""
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, probe, path)
    detected = found["format"]
    if disk_format in OPAQUE:
        if detected != "raw":
            raise FormatError(f"Image disk_format {disk_format} does not match stream "
                              f"data {detected}")
        return None
    if disk_format not in QEMU_FORMATS:
        raise FormatError(f"Image disk_format {disk_format} cannot be inspected")
    if detected != _expected(disk_format):
        raise FormatError(f"Image disk_format {disk_format} does not match stream "
                          f"data {detected}")
    if detected == "qcow2":
        if found["backing_file"]:
            raise FormatError("Image failed safety checks: a qcow2 image may not "
                              "name a backing file")
        if found["data_file"]:
            raise FormatError("Image failed safety checks: a qcow2 image may not "
                              "use an external data file")
    info = await qemu_info(path, QEMU_FORMATS[disk_format], timeout=timeout,
                           memory_mb=memory_mb)
    if info is None:        # no qemu-img here: the headers are all we have
        return found.get("virtual_size", found["size"]) if detected in (
            "raw", "qcow2", "iso") else None
    _check_info(info, disk_format, path)
    if detected in ("raw", "iso"):
        return found["size"]        # qemu-img rounds raw sizes up to whole sectors
    return int(info.get("virtual-size", 0)) or None


def _check_info(info: dict, disk_format: str, path: Path) -> None:
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise FormatError("Image failed safety checks: it names a backing file")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise FormatError("Image failed safety checks: it uses an external data file")
    if disk_format == "vmdk":
        create_type = specific.get("create-type")
        if create_type not in VMDK_ALLOWED_TYPES:
            raise FormatError(f"Image failed safety checks: VMDK create-type "
                              f"{create_type!r} is not allowed")
        for extent in specific.get("extents") or []:
            name = extent.get("filename")
            if name and os.path.basename(name) != path.name:
                raise FormatError("Image failed safety checks: a VMDK may not use "
                                  "external extents")


_warned = False


async def qemu_info(path: Path, fmt: str, *, timeout: float, memory_mb: int) -> dict | None:
    """``qemu-img info`` under limits; None when qemu-img is not installed."""
    global _warned
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        if not _warned:
            log.warning("qemu-img not found (Debian's qemu-utils): image uploads are "
                        "checked by their headers only")
            _warned = True
        return None
    cmd = [qemu_img, "info", "-f", fmt, "--output=json", str(path)]
    prlimit = shutil.which("prlimit")
    if prlimit:
        cmd = [prlimit, f"--as={memory_mb * 1024 * 1024}", f"--cpu={int(timeout)}", *cmd]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={"LC_ALL": "C", "PATH": os.defpath})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise FormatError("Image format inspection timed out") from None
    except asyncio.CancelledError:
        proc.kill()
        raise
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise FormatError("Image format inspection failed: "
                          + (detail[-1] if detail else f"qemu-img exit {proc.returncode}"))
    try:
        return json.loads(out)
    except ValueError:
        raise FormatError("Image format inspection failed: unreadable qemu-img output") \
            from None
