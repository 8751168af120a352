"""The file store: image data under [image] store_dir (default DATA_DIR/images).

An upload streams into a temporary file in the store directory (hashing as it
goes, in a worker thread so the event loop never waits on the disk), and only
a checked upload is renamed to its final name. Nothing is held in memory whole.

Layout: ``<root>/<image id>`` active data, ``<root>/staging/<image id>`` data
staged for import, ``<root>/.tmp-*`` uploads in flight (removed on failure and
on start-up).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cloudd.web.errors import ApiError

CHUNK = 1 << 20          # bytes handed to the worker thread at a time
READ_CHUNK = 1 << 20
TMP_PREFIX = ".tmp-"


class TooLarge(Exception):
    pass


@dataclass
class Received:
    path: Path               # the temporary file holding the data
    size: int
    md5: str
    sha512: str


class _Writer:
    """A file being written with md5 and sha512 kept up to date (thread side)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.size = 0

    def write(self, data: bytes | bytearray) -> None:
        self.md5.update(data)
        self.sha512.update(data)
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def finish(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        (self.root / "staging").mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def staging_path(self, image_id: str) -> Path:
        return self.root / "staging" / image_id

    def temp_path(self, image_id: str) -> Path:
        return self.root / f"{TMP_PREFIX}{image_id}-{uuid.uuid4().hex[:8]}"

    async def receive(self, image_id: str, stream, max_size: int) -> Received:
        """Stream ``stream`` (an aiohttp StreamReader) into a new temporary file.

        Raises TooLarge past ``max_size`` bytes; on any failure (including a
        dropped connection or cancellation) the temporary file is gone.
        """
        self.ensure()
        loop = asyncio.get_running_loop()
        path = self.temp_path(image_id)
        writer = await loop.run_in_executor(None, _Writer, path)
        try:
            buf = bytearray()
            total = 0
            async for chunk in stream.iter_chunked(CHUNK):
                total += len(chunk)
                if total > max_size:
                    raise TooLarge()
                buf += chunk
                if len(buf) >= CHUNK:
                    data, buf = bytes(buf), bytearray()
                    await loop.run_in_executor(None, writer.write, data)
            if buf:
                await loop.run_in_executor(None, writer.write, bytes(buf))
            await loop.run_in_executor(None, writer.finish)
        except BaseException:
            writer.close()
            discard(path)
            raise
        return Received(path, writer.size, writer.md5.hexdigest(), writer.sha512.hexdigest())

    async def hash_file(self, path: Path) -> Received:
        def run() -> Received:
            md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
            with open(path, "rb") as f:
                while data := f.read(READ_CHUNK):
                    md5.update(data)
                    sha512.update(data)
                    size += len(data)
            return Received(path, size, md5.hexdigest(), sha512.hexdigest())
        return await asyncio.get_running_loop().run_in_executor(None, run)

    async def commit(self, tmp: Path, final: Path) -> None:
        """Move checked data to its final name (atomic on one filesystem)."""
        def run() -> None:
            os.replace(tmp, final)
            fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        await asyncio.get_running_loop().run_in_executor(None, run)

    async def read(self, image_id: str, start: int = 0,
                   length: int | None = None) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            f = await loop.run_in_executor(None, open, self.path(image_id), "rb")
        except FileNotFoundError:
            raise ApiError(404, "Image data for this image could not be found.") from None
        try:
            if start:
                await loop.run_in_executor(None, f.seek, start)
            left = length
            while left is None or left > 0:
                want = READ_CHUNK if left is None else min(READ_CHUNK, left)
                data = await loop.run_in_executor(None, f.read, want)
                if not data:
                    break
                if left is not None:
                    left -= len(data)
                yield data
        finally:
            f.close()

    def remove(self, image_id: str) -> None:
        discard(self.path(image_id))
        discard(self.staging_path(image_id))

    def sweep(self, keep: set[str], keep_staged: set[str]) -> list[str]:
        """Remove temporary files, and data of images that no longer exist
        (or are not active): what a crash mid-upload can leave behind."""
        removed = []
        if not self.root.is_dir():
            return removed
        for entry in self.root.iterdir():
            if entry.is_file() and (entry.name.startswith(TMP_PREFIX)
                                    or entry.name not in keep):
                discard(entry)
                removed.append(entry.name)
        staging = self.root / "staging"
        if staging.is_dir():
            for entry in staging.iterdir():
                if entry.is_file() and entry.name not in keep_staged:
                    discard(entry)
                    removed.append(f"staging/{entry.name}")
        return removed


def discard(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def for_cloud(cloud) -> FileStore:
    store = getattr(cloud, "_image_store", None)
    if store is None:
        cfg = cloud.config
        root = Path(cfg.image.store_dir).expanduser() if cfg.image.store_dir \
            else cfg.data_dir / "images"
        store = FileStore(root)
        cloud._image_store = store
    return store
