"""Uploading a snapshot's disk to the controller (PUT /agent/v1/images/ID/file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from cloudd.drivers.base import DriverError
from cloudd.services.compute import protocol

CHUNK = 1 << 20


def uploader(controller: str, host: str, secret: str):
    """``upload(image_id, path, disk_format)``: stream a file into a queued
    snapshot image; DriverError when the controller refuses it."""
    base = controller.rstrip("/") + protocol.PATH + "/images/"

    async def chunks(path: Path):
        f = await asyncio.to_thread(open, path, "rb")
        try:
            while data := await asyncio.to_thread(f.read, CHUNK):
                yield data
        finally:
            await asyncio.to_thread(f.close)

    async def upload(image_id: str, path: Path, disk_format: str) -> None:
        headers = {"Authorization": f"Bearer {host}:{secret}",
                   "Content-Type": "application/octet-stream",
                   "X-Image-Disk-Format": disk_format}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.put(
                base + image_id + "/file", data=chunks(Path(path)), headers=headers) as resp:
            if resp.status >= 300:
                text = (await resp.text())[:500]
                raise DriverError(f"snapshot upload refused ({resp.status}): {text}")

    return upload
