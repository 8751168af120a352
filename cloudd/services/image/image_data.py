"""Image data: upload (PUT file), download (GET file), stage and import
(glance/api/v2/image_data.py and images.py import_image).

Upload: queued -> saving (compare-and-swap, committed), stream to a temporary
file hashing as it goes, inspect the format (beside the final fsync), rename
into place, then saving ->
active with size and hashes (compare-and-swap). Any failure on the way (bad
data, too large, a dropped connection) removes the temporary file and puts the
image back to queued, as Glance's _restore does; an active image therefore
always has its whole, checked data in the store.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from cloudd.services.image import image_store, inspect
from cloudd.services.image.common import cloud, context, enforce, is_admin, lookup
from cloudd.services.image.images import import_methods
from cloudd.services.image.store import UNSET, Received, TooLarge, discard, for_cloud
from cloudd.services.image.views import json_response, no_content
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

log = logging.getLogger("cloudd.image")
_IMPORTS: set[asyncio.Task] = set()


def _content_type_ok(request: web.Request) -> None:
    if request.content_type != "application/octet-stream":
        raise ApiError(415, f"Unsupported Content-Type {request.content_type or 'none'}; "
                            "send application/octet-stream.")


def _check_formats_set(image: dict) -> None:
    missing = [k for k in ("disk_format", "container_format") if not image[k]]
    if len(missing) == 1:
        raise ApiError(400, f"Property {missing[0]} must be set prior to saving data.")
    if missing:
        raise ApiError(400, f"Properties {', '.join(missing)} must be set prior to saving "
                            "data.")


async def _begin(request: web.Request, image_id: str, new_status: str) -> dict:
    """Check the caller may upload and move queued -> new_status (committed)."""
    async with cloud(request).db.write() as conn:
        image, member = await lookup(conn, request, image_id, lock=True)
        enforce(request, "upload_image" if new_status == "saving" else "modify_image",
                image, member)
        _check_formats_set(image)
        if image["status"] != "queued" or not await image_store.update(
                conn, image_id, {"status": new_status}, expect_status="queued"):
            raise ApiError(409, f"Image status transition from {image['status']} to "
                                f"{new_status} is not allowed")
    return image


async def _restore(c, image_id: str, from_status: str) -> None:
    """Back to queued after a failed upload (shielded: runs even when the
    request task is being cancelled)."""
    async def run() -> None:
        async with c.db.write() as conn:
            await image_store.update(conn, image_id, {
                "status": "queued", "size": None, "virtual_size": None, "checksum": None,
                "os_hash_algo": None, "os_hash_value": None}, expect_status=from_status)
    try:
        await asyncio.shield(run())
    except Exception:
        log.exception("could not restore image %s to queued", image_id)


async def _receive(request: web.Request, image_id: str) -> Received:
    c = cloud(request)
    max_size = c.config.image.max_image_size
    if request.content_length is not None and request.content_length > max_size:
        raise TooLarge()
    return await for_cloud(c).receive(image_id, request.content, max_size)


def _too_large(c) -> ApiError:
    return ApiError(413, "The incoming image is too large: the limit is "
                         f"{c.config.image.max_image_size} bytes.")


async def _inspect(c, path: Path, disk_format: str) -> int | None:
    cfg = c.config.image
    try:
        return await inspect.check(path, disk_format, timeout=cfg.inspect_timeout,
                                   memory_mb=cfg.inspect_memory_mb)
    except inspect.FormatError as e:
        raise ApiError(400, str(e)) from None


async def _activate(c, image_id: str, data: Received, disk_format: str,
                    from_status: str) -> None:
    """Inspect, rename into place, then mark active; cleans up on failure."""
    store = for_cloud(c)
    final = store.path(image_id)
    try:
        virtual_size = data.inspected if data.inspected is not UNSET \
            else await _inspect(c, data.path, disk_format)
        await store.commit(data.path, final)
    except BaseException:
        discard(data.path)
        raise
    async with c.db.write() as conn:
        ok = await image_store.update(conn, image_id, {
            "status": "active", "size": data.size, "virtual_size": virtual_size,
            "checksum": data.md5, "os_hash_algo": "sha512", "os_hash_value": data.sha512},
            expect_status=from_status)
    if not ok:
        discard(final)
        raise ApiError(410, f"Image {image_id} could not be found after upload. The image "
                            "may have been deleted during the upload, cleaning up the "
                            "chunks uploaded.")


async def store_data(c, image_id: str, stream, content_length: int | None,
                     disk_format: str) -> None:
    """Receive, inspect and activate the data of an image already moved to
    ``saving`` (for in-cloud uploaders such as a compute agent's snapshot);
    any failure puts the image back to queued and leaves no file."""
    max_size = c.config.image.max_image_size
    try:
        if content_length is not None and content_length > max_size:
            raise TooLarge()
        data = await for_cloud(c).receive(
            image_id, stream, max_size, inspect=lambda p: _inspect(c, p, disk_format))
        await _activate(c, image_id, data, disk_format, "saving")
    except TooLarge:
        await _restore(c, image_id, "saving")
        raise _too_large(c) from None
    except ApiError as e:
        if e.status != 410:
            await _restore(c, image_id, "saving")
        raise
    except BaseException:
        await _restore(c, image_id, "saving")
        raise


async def upload(request: web.Request) -> web.Response:
    _content_type_ok(request)
    image_id = request.match_info["image_id"]
    image = await _begin(request, image_id, "saving")
    await store_data(cloud(request), image_id, request.content, request.content_length,
                     image["disk_format"])
    return no_content()


async def download(request: web.Request) -> web.StreamResponse:
    image_id = request.match_info["image_id"]
    c = cloud(request)
    ctx = context(request)
    async with c.db.read() as conn:
        image, member = await lookup(conn, request, image_id)
    enforce(request, "download_image", image, member)
    if image["status"] == "deactivated" and not is_admin(ctx):
        raise ApiError(403, "The requested image has been deactivated. Image data download "
                            "is forbidden.")
    if image["status"] not in ("active", "deactivated") or image["size"] is None:
        return no_content()
    if not for_cloud(c).path(image_id).is_file():
        raise ApiError(404, f"Image data for image {image_id} could not be found.")
    size = image["size"]
    start, end = 0, size - 1
    status = 200
    headers = {"Content-Type": "application/octet-stream",
               "Content-MD5": image["checksum"] or ""}
    rng = request.headers.get("Range") or request.headers.get("Content-Range")
    if rng:
        start, end = _range(rng, size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    resp = web.StreamResponse(status=status, headers=headers)
    await resp.prepare(request)
    async for chunk in for_cloud(c).read(image_id, start, end - start + 1):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


def _range(header: str, size: int) -> tuple[int, int]:
    bad = ApiError(416, "Requested range not satisfiable",
                   headers={"Content-Range": f"bytes */{size}"})
    unit, _, spec = header.partition("=") if "=" in header else header.partition(" ")
    if unit.strip() != "bytes" or "," in spec:
        raise bad
    first, _, last = spec.split("/")[0].strip().partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        raise bad from None
    if start > end or start >= size:
        raise bad
    return start, end


async def stage(request: web.Request) -> web.Response:
    _content_type_ok(request)
    image_id = request.match_info["image_id"]
    c = cloud(request)
    store = for_cloud(c)
    await _begin(request, image_id, "uploading")
    try:
        data = await _receive(request, image_id)
        await store.commit(data.path, store.staging_path(image_id))
        async with c.db.write() as conn:
            ok = await image_store.update(conn, image_id, {"size": data.size},
                                          expect_status="uploading")
        if not ok:
            discard(store.staging_path(image_id))
            raise ApiError(410, f"Image {image_id} could not be found after upload.")
    except TooLarge:
        await _restore(c, image_id, "uploading")
        raise _too_large(c) from None
    except ApiError as e:
        if e.status != 410:
            await _restore(c, image_id, "uploading")
        raise
    except BaseException:
        discard(store.staging_path(image_id))
        await _restore(c, image_id, "uploading")
        raise
    return no_content()


async def import_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    c = cloud(request)
    body = await read_json(request)
    method = body.get("method")
    if not isinstance(method, dict):
        raise ApiError(400, "Import request requires a 'method' field.")
    name = method.get("name")
    if name is None:
        raise ApiError(400, "Import request requires a 'name' field.")
    if name not in import_methods(request):
        raise ApiError(400, f"Unknown import method name '{name}'.")
    for key in ("all_stores_must_succeed", "all_stores"):
        if key in body and not isinstance(body[key], bool):
            raise ApiError(400, f"'{key}' must be boolean value only")
    async with c.db.write() as conn:
        image, member = await lookup(conn, request, image_id, lock=True)
        enforce(request, "modify_image", image, member)
        if image["status"] != "uploading":
            raise ApiError(409, f"Image {image_id} is not in a valid state for import: "
                                f"{image['status']} (glance-direct needs staged data).")
        if not for_cloud(c).staging_path(image_id).exists():
            raise ApiError(409, f"Image {image_id} has no staged data to import.")
        await image_store.update(conn, image_id, {"status": "importing"},
                                 expect_status="uploading")
    task = asyncio.get_running_loop().create_task(
        finish_import(c, image_id, image["disk_format"]))
    _IMPORTS.add(task)
    task.add_done_callback(_IMPORTS.discard)
    return web.Response(status=202)


async def finish_import(c, image_id: str, disk_format: str) -> None:
    """glance-direct: hash and check the staged data, then activate the image;
    on failure the image goes back to queued and the staged data is removed."""
    store = for_cloud(c)
    staged = store.staging_path(image_id)
    tmp = store.temp_path(image_id)
    try:
        await store.commit(staged, tmp)
        data = await store.hash_file(tmp)
        await _activate(c, image_id, data, disk_format, "importing")
    except Exception as e:  # noqa: BLE001 - any failure kills the import, logged
        discard(tmp)
        log.warning("import of image %s failed: %s", image_id,
                    e.message if isinstance(e, ApiError) else e)
        await _restore(c, image_id, "importing")


async def import_info(request: web.Request) -> web.Response:
    return json_response({"import-methods": {"description": "Import methods available.",
                                             "type": "array",
                                             "value": import_methods(request)}})


async def stores_info(request: web.Request) -> web.Response:
    raise ApiError(404, "Multi backend is not supported at this site.")
