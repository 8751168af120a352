"""The file store: image data under [image] store_dir (default DATA_DIR/images).

An upload streams into a temporary file in the store directory (writing, md5
and sha512 each on a worker thread, side by side, so the event loop never
waits on the disk or the hashes), and only a checked upload is renamed to its
final name. Nothing is held in memory whole.

Layout: ``<root>/<image id>`` active data, ``<root>/staging/<image id>`` data
staged for import, ``<root>/.tmp-*`` uploads in flight (removed on failure and
on start-up).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudd.web.errors import ApiError

CHUNK = 8 << 20          # bytes gathered before they go to the workers
READ_CHUNK = 1 << 20
DEPTH = 3                # chunks in flight at once (memory bound: DEPTH * CHUNK)
TMP_PREFIX = ".tmp-"
UNSET = object()


class TooLarge(Exception):
    pass


@dataclass
class Received:
    path: Path               # the temporary file holding the data
    size: int
    md5: str
    sha512: str
    inspected: Any = UNSET  # what ``inspect`` returned, when one was given


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Pipeline:
    """Writes and hashes chunks of one upload, each on its own worker thread.

    md5, sha512 and the file write run concurrently (hashlib and os.write
    release the GIL on big buffers), each worker in chunk order; the event loop
    only gathers the socket's data into CHUNK-sized buffers and hands the same
    immutable ``bytes`` to all three, no copies. At most DEPTH chunks are in
    flight, so memory stays bounded whatever the image size.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.pools = [ThreadPoolExecutor(1, thread_name_prefix=f"image-{n}")
                      for n in ("write", "md5", "sha512")]
        self.inflight: deque[asyncio.Future] = deque()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                          0o600)

    def _write(self, data: bytes) -> None:
        _write_all(self.fd, data)

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pools[0], self._open)

    async def feed(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.size += len(data)
        self.inflight.append(asyncio.gather(
            loop.run_in_executor(self.pools[0], self._write, data),
            loop.run_in_executor(self.pools[1], self.md5.update, data),
            loop.run_in_executor(self.pools[2], self.sha512.update, data)))
        while len(self.inflight) >= DEPTH:
            await self.inflight.popleft()

    async def drain(self) -> None:
        """Every chunk fed so far is written (not yet durable) and hashed."""
        while self.inflight:
            await self.inflight.popleft()

    async def sync(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pools[0], os.fsync, self.fd)

    def _close(self, remove: bool) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if remove:
            discard(self.path)

    async def close(self, remove: bool = False) -> None:
        """Close (and remove) the file after every queued write; the workers go.

        Queued on the write worker, so it runs even when the caller is
        cancelled again while waiting for it.
        """
        for pending in self.inflight:      # abandoned: their errors are not news
            pending.add_done_callback(_retrieved)
        fut = asyncio.get_running_loop().run_in_executor(self.pools[0], self._close, remove)
        for pool in self.pools:
            pool.shutdown(wait=False)
        await asyncio.shield(fut)


def _retrieved(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


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

    async def receive(self, image_id: str, stream, max_size: int,
                      inspect: Callable[[Path], Awaitable[Any]] | None = None) -> Received:
        """Stream ``stream`` (an aiohttp StreamReader) into a new temporary file.

        ``inspect(path)``, when given, runs once every byte is written, beside
        the final fsync; its result is ``Received.inspected``. Raises TooLarge
        past ``max_size`` bytes; on any failure (including a dropped
        connection, cancellation or a failed inspection) the temporary file
        is gone.
        """
        self.ensure()
        pipe = _Pipeline(self.temp_path(image_id))
        try:
            await pipe.start()
            parts: list[bytes] = []
            pending = total = 0
            while chunk := await stream.readany():
                total += len(chunk)
                if total > max_size:
                    raise TooLarge()
                parts.append(chunk)
                pending += len(chunk)
                if pending >= CHUNK:
                    await pipe.feed(parts[0] if len(parts) == 1 else b"".join(parts))
                    parts, pending = [], 0
            if parts:
                await pipe.feed(b"".join(parts))
            await pipe.drain()
            inspected = UNSET
            if inspect is None:
                await pipe.sync()
            else:
                inspected, _ = await asyncio.gather(inspect(pipe.path), pipe.sync())
        except BaseException:
            await pipe.close(remove=True)
            raise
        await pipe.close()
        return Received(pipe.path, pipe.size, pipe.md5.hexdigest(), pipe.sha512.hexdigest(),
                        inspected)

    async def hash_file(self, path: Path) -> Received:
        def run() -> Received:
            md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
            with open(path, "rb") as f, ThreadPoolExecutor(1) as helper:
                while data := f.read(CHUNK):
                    side = helper.submit(md5.update, data)     # both hashes at once
                    sha512.update(data)
                    side.result()
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
