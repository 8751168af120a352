"""The config drive: an ISO 9660 image labelled ``config-2`` holding the
instance's metadata documents, as Nova's nova/virt/configdrive.py makes it
with ``genisoimage -V config-2 -J -r -l``.

Built with pycdlib (pure Python, no genisoimage needed): Joliet and Rock
Ridge carry the real names (``meta_data.json``, ``2012-08-10``), the plain
ISO 9660 names are upper-cased 8-bit-safe stand-ins as mkisofs makes them.
cloud-init finds the drive by its label and reads it through Rock Ridge.

``await build_from_spec(spec.config_drive, path)`` builds the drive a spawn
spec describes ({"files": {path: base64}}); ``await build_iso(files, path)``
takes {relative path: content}. Both run the build in a thread.
The image is written beside ``path`` and renamed into place, mode 0600 (it
can hold user data and the admin password; libvirt gives QEMU the file).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import os
import re
from pathlib import Path, PurePosixPath

import pycdlib
import pycdlib.pycdlibexception

LABEL = "config-2"
PUBLISHER = "cloudd"
_BAD = re.compile(r"[^A-Z0-9_]")


class ConfigDriveError(Exception):
    """The files cannot make a config drive (a bad path)."""


def _check(path: str) -> PurePosixPath:
    parts = path.split("/")
    if any(part in ("", ".", "..") or "\0" in part for part in parts):
        raise ConfigDriveError(f"not a relative path inside the drive: {path!r}")
    if any(len(part.encode()) > 255 or len(part) > 64 for part in parts):
        raise ConfigDriveError(f"a name in {path!r} is too long for a config drive")
    return PurePosixPath(path)


class _Names:
    """Unique ISO 9660 level-3 identifiers per directory (d-characters only)."""

    def __init__(self) -> None:
        self.used: dict[str, dict[str, str]] = {}        # iso dir -> real name -> iso name

    def name(self, iso_dir: str, real: str, is_dir: bool) -> str:
        taken = self.used.setdefault(iso_dir, {})
        if real in taken:
            return taken[real]
        if is_dir:
            stem, ext = _BAD.sub("_", real.upper())[:31], ""
        else:
            base, _, suffix = real.rpartition(".") if "." in real else (real, "", "")
            stem = _BAD.sub("_", base.upper())[:26] or "_"
            ext = _BAD.sub("_", suffix.upper())[:3]
        candidate = stem + ("." + ext if ext or not is_dir else "")
        n = 0
        while candidate in taken.values():
            n += 1
            tail = f"_{n}"
            candidate = stem[:(31 if is_dir else 26) - len(tail)] + tail + (
                "." + ext if ext or not is_dir else "")
        taken[real] = candidate
        return candidate


def write_iso(files: dict[str, bytes], path: str | os.PathLike) -> None:
    """Write the config drive image (blocking: call it through build_iso)."""
    checked = {str(_check(p)): data for p, data in files.items()}
    dirs = {str(parent) for p in checked for parent in PurePosixPath(p).parents}
    clash = sorted(set(checked) & dirs)
    if clash:
        raise ConfigDriveError(f"{clash[0]!r} is both a file and a directory")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=LABEL, sys_ident="LINUX",
            pub_ident_str=PUBLISHER, app_ident_str=PUBLISHER, joliet=3, rock_ridge="1.09")
    try:
        _lay_out(iso, checked)
        _write(iso, Path(path))
    except pycdlib.pycdlibexception.PyCdlibException as e:
        raise ConfigDriveError(f"cannot make the config drive: {e}") from None
    finally:
        iso.close()


def _lay_out(iso: pycdlib.PyCdlib, files: dict[str, bytes]) -> None:
    names = _Names()
    made: dict[str, str] = {".": "/"}                    # real dir -> iso dir

    def directory(real: PurePosixPath) -> str:
        key = str(real)
        if key in made:
            return made[key]
        parent = directory(real.parent)
        iso_dir = parent.rstrip("/") + "/" + names.name(parent, real.name, True)
        iso.add_directory(iso_dir, rr_name=real.name, joliet_path="/" + key)
        made[key] = iso_dir
        return iso_dir

    for real, data in sorted(files.items()):
        p = PurePosixPath(real)
        parent = directory(p.parent)
        iso_path = parent.rstrip("/") + "/" + names.name(parent, p.name, False) + ";1"
        iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=p.name,
                   joliet_path="/" + real)


def _write(iso: pycdlib.PyCdlib, target: Path) -> None:
    """Into a 0600 temporary file beside ``target``, then renamed over it."""
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            iso.write_fp(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def build_iso(files: dict[str, bytes], path: str | os.PathLike) -> None:
    """Build the config drive at ``path`` in a thread (never on the event loop)."""
    await asyncio.to_thread(write_iso, files, path)


def files_from_spec(config_drive: dict) -> dict[str, bytes]:
    """The spawn spec's ``config_drive`` ({"files": {path: base64}}) as files."""
    files = config_drive.get("files") if isinstance(config_drive, dict) else None
    if not isinstance(files, dict):
        raise ConfigDriveError("the spec's config_drive has no files")
    try:
        return {str(p): base64.b64decode(data, validate=True) for p, data in files.items()}
    except (binascii.Error, TypeError, ValueError):
        raise ConfigDriveError("the spec's config drive files are not base64") from None


async def build_from_spec(config_drive: dict, path: str | os.PathLike) -> Path:
    """Build the config drive the spawn spec describes at ``path``; returns it."""
    await build_iso(files_from_spec(config_drive), path)
    return Path(path)


def read_iso(path: str | os.PathLike) -> tuple[str, dict[str, bytes]]:
    """(volume label, {path: content}) of a config drive, read through Rock Ridge
    (tests and diagnostics)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().rstrip()
        out: dict[str, bytes] = {}
        for dirname, _dirs, filelist in iso.walk(rr_path="/"):
            for name in filelist:
                full = dirname.rstrip("/") + "/" + name
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=full)
                out[full.lstrip("/")] = buf.getvalue()
        return label, out
    finally:
        iso.close()
