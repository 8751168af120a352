"""The per-host image cache: each base image fetched once, checked, then shared.

``download(image_id, dest)`` (supplied by the agent) writes the image's
bytes to ``dest`` and returns its metadata (``disk_format`` at least). A
fetched file is checked (qemu-img, as on upload) before it is renamed into
the cache, so a half-fetched or unsafe file is never used. Concurrent
spawns of one image wait for a single fetch.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from cloudd.drivers.libvirt import disks

Download = Callable[[str, Path], Awaitable[dict]]
QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc",
                "vhdx": "vhdx", "iso": "raw", "aki": "raw", "ari": "raw", "ami": "raw"}


class ImageCache:
    def __init__(self, directory: Path, download: Download) -> None:
        self.directory = Path(directory)
        self.download = download
        self._locks: dict[str, asyncio.Lock] = {}

    def _paths(self, image_id: str) -> tuple[Path, Path]:
        return self.directory / image_id, self.directory / f"{image_id}.json"

    async def get(self, image_id: str) -> tuple[Path, str]:
        """The cached file of an image and its qemu format, fetching it if needed."""
        lock = self._locks.setdefault(image_id, asyncio.Lock())
        async with lock:
            path, meta_path = self._paths(image_id)
            if path.exists() and meta_path.exists():
                return path, json.loads(meta_path.read_text())["qemu_format"]
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = self.directory / f".{image_id}.part"
            try:
                meta = await self.download(image_id, partial)
                fmt = QEMU_FORMATS.get(meta.get("disk_format") or "raw")
                if fmt is None:
                    raise disks.DiskError(
                        f"image {image_id}: disk_format {meta.get('disk_format')} "
                        "cannot be used")
                checked = await disks.check_base(partial, fmt)
                os.replace(partial, path)
            finally:
                if partial.exists():
                    partial.unlink()
            meta_path.write_text(json.dumps({"qemu_format": fmt,
                                             "disk_format": meta.get("disk_format"),
                                             "virtual_size": checked.get("virtual-size")}))
            return path, fmt

    def virtual_size(self, image_id: str) -> int | None:
        """The checked virtual size of a cached image (None when not recorded)."""
        try:
            return json.loads(self._paths(image_id)[1].read_text()).get("virtual_size")
        except (OSError, ValueError):
            return None
