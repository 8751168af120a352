"""The Image API in process: version documents, create/show/list/patch/delete,
tags, deactivation and protection, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest

from tests.image.conftest import call, create, patch, upload

pytestmark = pytest.mark.asyncio


async def test_version_documents(api):
    for path in ("/", "/v2", "/v2/"):
        resp = await api.get(path)
        assert resp.status == 300
        body = await resp.json()
        ids = [v["id"] for v in body["versions"]]
        assert "v2.0" in ids and ids[0] == "v2.17"
        assert body["versions"][0]["status"] == "CURRENT"
        assert body["versions"][0]["links"][0]["href"].endswith("/v2/")
    # Everything else needs a token.
    resp = await api.get("/v2/images")
    assert resp.status == 401


async def test_upload_download_round_trip(api):
    data = bytes(range(256)) * 4096 + b"tail"     # 1 MiB and a bit: several chunks
    image = await create(api, name="cirros", min_ram=64, hw_disk_bus="virtio",
                         kernel_id="f0b5e0fe-6c3e-4bd6-a1f4-e7b4d2d7b2a1")
    assert image["status"] == "queued"
    assert image["visibility"] == "shared"          # Glance's default since Pike
    assert image["hw_disk_bus"] == "virtio"
    assert image["self"] == f"/v2/images/{image['id']}"
    await upload(api, image["id"], data)
    _, shown = await call(api, "GET", f"/v2/images/{image['id']}", status=200)
    assert shown["status"] == "active"
    assert shown["size"] == len(data) == shown["virtual_size"]
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    resp = await api.get(f"/v2/images/{image['id']}/file", headers={"X-Auth-Token": "admin"})
    assert resp.status == 200
    assert resp.headers["Content-MD5"] == shown["checksum"]
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert await resp.read() == data
    resp = await api.get(f"/v2/images/{image['id']}/file",
                         headers={"X-Auth-Token": "admin", "Range": "bytes=10-19"})
    assert resp.status == 206 and await resp.read() == data[10:20]
    # A second upload to an active image is refused.
    await upload(api, image["id"], b"again", status=409)
    # Data that is not octet-stream is refused.
    await call(api, "PUT", f"/v2/images/{image['id']}/file", data=b"x", status=415,
               headers={"Content-Type": "text/plain"})


async def test_no_data_and_missing_formats(api):
    image = await create(api, name="empty")
    resp = await api.get(f"/v2/images/{image['id']}/file", headers={"X-Auth-Token": "admin"})
    assert resp.status == 204
    bare = await create(api, name="noformat", disk_format=None, container_format=None)
    _, err = await upload(api, bare["id"], b"abc", status=400)
    assert "must be set prior to saving data" in err["message"]
    _, shown = await call(api, "GET", f"/v2/images/{bare['id']}", status=200)
    assert shown["status"] == "queued"


async def test_create_validation(api):
    _, err = await call(api, "POST", "/v2/images", {"disk_format": "floppy"}, status=400)
    assert "does not match schema" in err["message"]
    assert err["code"] == "400 Bad Request" and err["title"] == "Bad Request"
    await call(api, "POST", "/v2/images", {"status": "active"}, status=403)
    await call(api, "POST", "/v2/images", {"self": "x"}, status=403)
    await call(api, "POST", "/v2/images", {"deleted": "1"}, status=403)
    await call(api, "POST", "/v2/images", {"os_glance_x": "1"}, status=403)
    await call(api, "POST", "/v2/images", {"min_disk": -1}, status=400)
    await call(api, "POST", "/v2/images", {"hw_x": 1}, status=400)     # not a string
    image = await create(api, id="8c3e4b5a-1a2b-4c3d-9e8f-0123456789ab", name="fixed")
    await call(api, "POST", "/v2/images", {"id": image["id"]}, status=409)
    # A plain user may not make public images, nor own another project's.
    await call(api, "POST", "/v2/images", {"visibility": "public"}, token="u:p1", status=403)
    await call(api, "POST", "/v2/images", {"owner": "p2"}, token="u:p1", status=403)
    # Without Accept: application/json the error is WebOb's text/plain.
    resp = await api.get("/v2/images/nope", headers={"X-Auth-Token": "admin"})
    assert resp.status == 404 and resp.content_type == "text/plain"
    assert "No image found with ID nope" in await resp.text()


async def test_list_filters_sort_and_paging(api):
    ids = {}
    for name, size, tags, hidden in (("alpha", 3, ["x86", "small"], False),
                                     ("bravo", 10, ["x86"], False),
                                     ("charlie", 50, [], False),
                                     ("delta", 1, [], True)):
        image = await create(api, name=name, tags=tags, os_hidden=hidden, os_distro=name)
        await upload(api, image["id"], b"z" * size)
        ids[name] = image["id"]
    queued = await create(api, name="echo", disk_format="qcow2")
    ids["echo"] = queued["id"]

    async def names(query: str) -> list[str]:
        _, body = await call(api, "GET", "/v2/images" + query, status=200)
        return [i["name"] for i in body["images"]]

    assert await names("?sort=name:asc") == ["alpha", "bravo", "charlie", "echo"]
    assert await names("?sort_key=name&sort_dir=desc") == ["echo", "charlie", "bravo", "alpha"]
    assert (await names("?sort=size:desc,name:asc"))[:3] == ["charlie", "bravo", "alpha"]
    assert await names("?os_hidden=true") == ["delta"]
    assert await names("?name=bravo") == ["bravo"]
    assert sorted(await names(f"?id=in:{ids['alpha']},{ids['charlie']}")) == \
        ["alpha", "charlie"]
    assert await names("?tag=x86&tag=small") == ["alpha"]
    assert sorted(await names("?tag=x86")) == ["alpha", "bravo"]
    assert await names("?status=queued") == ["echo"]
    assert await names("?disk_format=qcow2") == ["echo"]
    assert sorted(await names("?size_min=3&size_max=10")) == ["alpha", "bravo"]
    assert await names("?os_distro=charlie") == ["charlie"]       # a property filter
    # Paging: limit, next link with the marker, and back to the start.
    _, page = await call(api, "GET", "/v2/images?sort=name:asc&limit=2", status=200)
    assert [i["name"] for i in page["images"]] == ["alpha", "bravo"]
    assert page["first"] == "/v2/images?sort=name%3Aasc&limit=2"
    assert page["schema"] == "/v2/schemas/images"
    assert page["next"].startswith("/v2/images?") and f"marker={ids['bravo']}" in page["next"]
    _, page2 = await call(api, "GET", page["next"], status=200)
    assert [i["name"] for i in page2["images"]] == ["charlie", "echo"]
    _, page3 = await call(api, "GET", page2["next"], status=200)
    assert page3["images"] == [] and "next" not in page3
    # Bad parameters are 400s.
    for query in ("?limit=x", "?limit=-1", "?sort_key=owner", "?sort=name:up",
                  "?marker=00000000-0000-0000-0000-000000000000", "?visibility=secret",
                  "?os_hidden=maybe", "?member_status=x", "?name=like:a",
                  "?created_at=gt:yesterday", "?size_min=big"):
        await call(api, "GET", "/v2/images" + query, status=400)


async def test_patch_operations(api):
    image = await create(api, name="p", tags=["a"])
    iid = image["id"]
    _, body = await patch(api, iid, [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/kernel_id", "value": "f0b5e0fe-6c3e-4bd6-a1f4-e7b4d2d7b2a1"},
        {"op": "add", "path": "/hw_qemu_guest_agent", "value": "yes"},
        {"op": "replace", "path": "/tags", "value": ["b", "c"]},
        {"op": "replace", "path": "/min_disk", "value": 2}])
    assert body["name"] == "renamed" and body["hw_qemu_guest_agent"] == "yes"
    assert body["kernel_id"] == "f0b5e0fe-6c3e-4bd6-a1f4-e7b4d2d7b2a1"
    assert body["tags"] == ["b", "c"] and body["min_disk"] == 2
    _, body = await patch(api, iid, [{"op": "remove", "path": "/hw_qemu_guest_agent"}])
    assert "hw_qemu_guest_agent" not in body
    # Glance's refusals.
    await patch(api, iid, [{"op": "replace", "path": "/status", "value": "active"}],
                status=403)
    await patch(api, iid, [{"op": "replace", "path": "/checksum", "value": "x"}], status=403)
    await patch(api, iid, [{"op": "remove", "path": "/name"}], status=403)
    await patch(api, iid, [{"op": "remove", "path": "/nothing"}], status=409)
    await patch(api, iid, [{"op": "replace", "path": "/nothing", "value": "x"}], status=409)
    await patch(api, iid, [{"op": "add", "path": "/a/b", "value": "x"}], status=400)
    await patch(api, iid, [{"op": "move", "path": "/name", "value": "x"}], status=400)
    await patch(api, iid, [{"op": "add", "path": "/kernel_id", "value": "nope"}], status=400)
    await patch(api, iid, [{"op": "replace", "path": "/visibility", "value": "x"}],
                status=400)
    await call(api, "PATCH", f"/v2/images/{iid}", [], status=415,
               headers={"Content-Type": "application/json"})
    # draft-4 style (v2.0): add on an existing property conflicts.
    await call(api, "PATCH", f"/v2/images/{iid}", [{"add": "/name", "value": "x"}],
               status=409,
               headers={"Content-Type": "application/openstack-images-v2.0-json-patch"})
    # A failed PATCH changed nothing.
    _, shown = await call(api, "GET", f"/v2/images/{iid}", status=200)
    assert shown["name"] == "renamed" and shown["status"] == "queued"
    # disk_format is fixed once the image has data.
    await upload(api, iid, b"data")
    await patch(api, iid, [{"op": "replace", "path": "/disk_format", "value": "qcow2"}],
                status=403)


async def test_tags(api):
    image = await create(api, name="t")
    iid = image["id"]
    await call(api, "PUT", f"/v2/images/{iid}/tags/blue", status=204)
    await call(api, "PUT", f"/v2/images/{iid}/tags/blue", status=204)
    await call(api, "PUT", f"/v2/images/{iid}/tags/red", status=204)
    _, shown = await call(api, "GET", f"/v2/images/{iid}", status=200)
    assert shown["tags"] == ["blue", "red"]
    await call(api, "DELETE", f"/v2/images/{iid}/tags/blue", status=204)
    await call(api, "DELETE", f"/v2/images/{iid}/tags/blue", status=404)


async def test_protected_delete_and_file_removal(api):
    image = await create(api, name="keep", protected=True)
    await upload(api, image["id"], b"precious")
    stored = api.store_dir / image["id"]
    assert stored.read_bytes() == b"precious"
    _, err = await call(api, "DELETE", f"/v2/images/{image['id']}", status=403)
    assert "is protected" in err["message"]
    await patch(api, image["id"], [{"op": "replace", "path": "/protected", "value": False}])
    await call(api, "DELETE", f"/v2/images/{image['id']}", status=204)
    assert not stored.exists()
    await call(api, "GET", f"/v2/images/{image['id']}", status=404)
    await call(api, "DELETE", f"/v2/images/{image['id']}", status=404)


async def test_deactivate_blocks_download(api):
    image = await create(api, name="d", token="u:p1")
    await upload(api, image["id"], b"bits", token="u:p1")
    await call(api, "POST", f"/v2/images/{image['id']}/actions/deactivate", token="u:p1",
               status=204)
    _, shown = await call(api, "GET", f"/v2/images/{image['id']}", token="u:p1", status=200)
    assert shown["status"] == "deactivated"
    await call(api, "GET", f"/v2/images/{image['id']}/file", token="u:p1", status=403)
    resp = await api.get(f"/v2/images/{image['id']}/file", headers={"X-Auth-Token": "admin"})
    assert resp.status == 200 and await resp.read() == b"bits"
    await call(api, "POST", f"/v2/images/{image['id']}/actions/reactivate", token="u:p1",
               status=204)
    await call(api, "GET", f"/v2/images/{image['id']}/file", token="u:p1", status=200)
    queued = await create(api, name="q")
    await call(api, "POST", f"/v2/images/{queued['id']}/actions/deactivate", status=403)


async def test_schemas(api):
    _, image = await call(api, "GET", "/v2/schemas/image", status=200)
    assert image["name"] == "image"
    assert image["additionalProperties"] == {"type": "string"}
    assert "qcow2" in image["properties"]["disk_format"]["enum"]
    assert image["properties"]["kernel_id"]["is_base"] is False
    _, images = await call(api, "GET", "/v2/schemas/images", status=200)
    assert images["properties"]["images"]["items"]["name"] == "image"
    _, member = await call(api, "GET", "/v2/schemas/member", status=200)
    assert member["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    _, members = await call(api, "GET", "/v2/schemas/members", status=200)
    assert members["name"] == "members"
    _, info = await call(api, "GET", "/v2/info/import", status=200)
    assert info["import-methods"]["value"] == ["glance-direct"]


async def test_image_tasks_are_listed_empty_and_need_a_visible_image(api):
    """GET /v2/images/{id}/tasks (Tempest waits on it after snapshots)."""
    image = await create(api, name="tasks")
    _, body = await call(api, "GET", f"/v2/images/{image['id']}/tasks", status=200)
    assert body == {"tasks": []}
    await call(api, "GET", f"/v2/images/{image['id']}/tasks", token="bob:p2", status=404)
    await call(api, "GET", "/v2/images/0b0b0b0b-0000-4000-8000-000000000000/tasks",
               status=404)
