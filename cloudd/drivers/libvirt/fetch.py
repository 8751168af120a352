"""Fetching base images from the controller with the agent's host credential."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import aiohttp

from cloudd.drivers.libvirt.disks import DiskError

CHUNK = 1 << 20


def downloader(controller: str, host: str, secret: str):
    """``download(image_id, dest) -> metadata`` for an ImageCache: streams the
    image to ``dest`` and checks its md5 against the image's checksum."""
    base = controller.rstrip("/") + "/agent/v1/images/"
    headers = {"Authorization": f"Bearer {host}:{secret}"}

    async def download(image_id: str, dest: Path) -> dict:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            async with session.get(base + image_id) as resp:
                if resp.status != 200:
                    raise DiskError(f"image {image_id}: controller answered {resp.status}")
                meta = await resp.json()
            md5 = hashlib.md5(usedforsecurity=False)
            async with session.get(base + image_id + "/file") as resp:
                if resp.status != 200:
                    raise DiskError(f"image {image_id}: controller answered {resp.status}")
                out = await asyncio.to_thread(open, dest, "wb")
                try:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        md5.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
                finally:
                    await asyncio.to_thread(out.close)
        if meta.get("checksum") and md5.hexdigest() != meta["checksum"]:
            raise DiskError(f"image {image_id}: checksum mismatch after download")
        return meta

    return download
