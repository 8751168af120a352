"""Image data in process: format inspection, uploads cut off halfway, size
limits, stage + import, and start-up recovery, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from cloudd.db import tables as t
from tests.image.conftest import call, create, upload

pytestmark = pytest.mark.asyncio
needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                    reason="qemu-img (Debian's qemu-utils) not installed")


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def stray_files(api) -> list[str]:
    return sorted(p.name for p in api.store_dir.rglob("*") if p.is_file())


async def status_of(api, image_id: str) -> str:
    _, body = await call(api, "GET", f"/v2/images/{image_id}", status=200)
    return body["status"]


@needs_qemu_img
async def test_qcow2_upload_gets_virtual_size(api, tmp_path):
    qemu_img("create", "-f", "qcow2", str(tmp_path / "disk.qcow2"), "64M")
    image = await create(api, name="q", disk_format="qcow2")
    await upload(api, image["id"], (tmp_path / "disk.qcow2").read_bytes())
    _, shown = await call(api, "GET", f"/v2/images/{image['id']}", status=200)
    assert shown["status"] == "active"
    assert shown["virtual_size"] == 64 * 1024 * 1024
    assert shown["size"] == (tmp_path / "disk.qcow2").stat().st_size


@needs_qemu_img
async def test_data_not_matching_disk_format_is_refused(api, tmp_path):
    qemu_img("create", "-f", "qcow2", str(tmp_path / "disk.qcow2"), "1M")
    qcow2 = (tmp_path / "disk.qcow2").read_bytes()
    # A qcow2 claiming to be raw (qemu-img -f raw alone would not notice), raw
    # bytes claiming to be qcow2, a qcow2 claiming to be a kernel.
    for disk_format, data in (("raw", qcow2), ("qcow2", b"\0" * 4096), ("aki", qcow2),
                              ("vmdk", b"plain text"), ("iso", b"\0" * 70000)):
        image = await create(api, name=f"bad-{disk_format}", disk_format=disk_format)
        _, err = await upload(api, image["id"], data, status=400)
        assert "does not match" in err["message"], err
        assert await status_of(api, image["id"]) == "queued"
    assert stray_files(api) == []


@needs_qemu_img
async def test_qcow2_with_backing_file_is_refused(api, tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    qemu_img("create", "-f", "qcow2", str(base), "1M")
    qemu_img("create", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(top))
    image = await create(api, name="layered", disk_format="qcow2")
    _, err = await upload(api, image["id"], top.read_bytes(), status=400)
    assert "backing file" in err["message"]
    assert await status_of(api, image["id"]) == "queued"
    # An external data file (qcow2 v3 incompatible feature) likewise.
    data_file = tmp_path / "ext.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", f"data_file={tmp_path / 'ext.raw'}",
             str(data_file), "1M")
    image2 = await create(api, name="external", disk_format="qcow2")
    _, err = await upload(api, image2["id"], data_file.read_bytes(), status=400)
    assert "data file" in err["message"]
    assert stray_files(api) == []


async def test_kernel_and_ramdisk_blobs_are_accepted(api):
    for disk_format, container in (("aki", "aki"), ("ari", "ari"), ("ami", "ami")):
        image = await create(api, name=disk_format, disk_format=disk_format,
                             container_format=container)
        await upload(api, image["id"], b"\x7fELF" + b"k" * 1000)
        assert await status_of(api, image["id"]) == "active"


async def test_upload_over_the_size_limit(make_api):
    api = await make_api({"max_image_size": 1000})
    image = await create(api, name="big")
    await upload(api, image["id"], b"x" * 1001, status=413)
    assert await status_of(api, image["id"]) == "queued"
    assert stray_files(api) == []
    await upload(api, image["id"], b"x" * 1000)
    assert await status_of(api, image["id"]) == "active"


async def _wait_for(api, image_id: str, status: str) -> None:
    for _ in range(200):
        if await status_of(api, image_id) == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"image never became {status}: {await status_of(api, image_id)}")


async def test_upload_cut_off_halfway(api):
    """A client that sends half a chunked body and hangs up: no active image,
    no temporary file left, and the image can be uploaded again."""
    image = await create(api, name="cut")
    iid = image["id"]
    _reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
    writer.write((f"PUT /v2/images/{iid}/file HTTP/1.1\r\nHost: x\r\n"
                  "X-Auth-Token: admin\r\nContent-Type: application/octet-stream\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n").encode())
    chunk = b"y" * 65536
    for _ in range(8):
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    await writer.drain()
    await _wait_for(api, iid, "saving")
    writer.close()              # hang up without the last chunk
    await _wait_for(api, iid, "queued")
    for _ in range(100):
        if not stray_files(api):
            break
        await asyncio.sleep(0.02)
    assert stray_files(api) == []
    await upload(api, iid, b"whole")
    assert await status_of(api, iid) == "active"


async def test_stage_and_import(api):
    image = await create(api, name="staged")
    iid = image["id"]
    await call(api, "PUT", f"/v2/images/{iid}/stage", data=b"s" * 5000, status=204,
               headers={"Content-Type": "application/octet-stream"})
    assert await status_of(api, iid) == "uploading"
    await call(api, "POST", f"/v2/images/{iid}/import", {"method": {"name": "web-download"}},
               status=400)
    await call(api, "POST", f"/v2/images/{iid}/import",
               {"method": {"name": "glance-direct"}}, status=202)
    await _wait_for(api, iid, "active")
    _, shown = await call(api, "GET", f"/v2/images/{iid}", status=200)
    assert shown["size"] == 5000 and shown["os_hash_algo"] == "sha512"
    resp = await api.get(f"/v2/images/{iid}/file", headers={"X-Auth-Token": "admin"})
    assert await resp.read() == b"s" * 5000
    assert stray_files(api) == [iid]
    # Importing with nothing staged is a conflict.
    other = await create(api, name="nothing")
    await call(api, "POST", f"/v2/images/{other['id']}/import",
               {"method": {"name": "glance-direct"}}, status=409)


@needs_qemu_img
async def test_import_of_bad_data_leaves_image_queued(api):
    image = await create(api, name="badimport", disk_format="qcow2")
    iid = image["id"]
    await call(api, "PUT", f"/v2/images/{iid}/stage", data=b"not qcow2", status=204,
               headers={"Content-Type": "application/octet-stream"})
    await call(api, "POST", f"/v2/images/{iid}/import",
               {"method": {"name": "glance-direct"}}, status=202)
    await _wait_for(api, iid, "queued")
    assert stray_files(api) == []


async def test_restart_recovers_interrupted_uploads(make_api):
    """A crash mid-upload leaves a saving image and a temporary file: the next
    start puts the image back to queued and removes the file."""
    api = await make_api()
    image = await create(api, name="crashed")
    async with api.cloud.db.write() as conn:
        await conn.execute(t.image.update().where(t.image.c.id == image["id"])
                           .values(status="saving"))
    tmp = api.store_dir / f".tmp-{image['id']}-deadbeef"
    tmp.write_bytes(b"partial")
    orphan = api.store_dir / "0b1c2d3e-0000-4000-8000-000000000000"
    orphan.write_bytes(b"no image row")
    from cloudd.services.image.api import on_start
    await on_start(api.cloud)
    assert await status_of(api, image["id"]) == "queued"
    assert not tmp.exists() and not orphan.exists()
