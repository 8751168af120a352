"""Image data for agents: GET /agent/v1/images/{id} (metadata) and .../file,
and PUT .../file for snapshots.

An agent's image cache fetches the base images of the guests it builds
from here, with its host credential (``Authorization: Bearer HOST:SECRET``),
so agents need no Keystone account. Only active images are served; the
file is streamed from the image store (sendfile where the OS has it).

A PUT uploads a snapshot: only into a queued image whose ``instance_uuid``
names an instance on the agent's own host that is being snapshotted; the
data goes through the image service's checks like any upload.
"""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import select

from cloudd.db import tables as t
from cloudd.services.compute import states
from cloudd.services.compute.agent_auth import parse_authorization
from cloudd.services.compute.protocol import PATH
from cloudd.services.image import image_data, image_store, store
from cloudd.web.auth import public


async def _host(request: web.Request) -> str:
    cloud = request.config_dict["cloud"]
    creds = parse_authorization(request.headers.get("Authorization"))
    if creds is None or not await cloud.compute.hub.auth.check(*creds):
        raise web.HTTPUnauthorized(text="The host credential is not valid.")
    return creds[0]


async def _image(request: web.Request) -> dict:
    cloud = request.config_dict["cloud"]
    await _host(request)
    image_id = request.match_info["image_id"]
    async with cloud.db.read() as conn:
        image = await image_store.get(conn, image_id)
    if image is None or image["status"] != "active":
        raise web.HTTPNotFound(text=f"No active image {image_id}.")
    return image


@public
async def image_meta(request: web.Request) -> web.Response:
    image = await _image(request)
    return web.json_response({
        "id": image["id"], "disk_format": image["disk_format"],
        "container_format": image["container_format"], "size": image["size"],
        "checksum": image["checksum"], "properties": image["properties"]})


@public
async def image_file(request: web.Request) -> web.StreamResponse:
    image = await _image(request)
    path = store.for_cloud(request.config_dict["cloud"]).path(image["id"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


SNAPSHOT_FORMATS = ("qcow2", "raw")


@public
async def upload_snapshot(request: web.Request) -> web.Response:
    cloud = request.config_dict["cloud"]
    host = await _host(request)
    image_id = request.match_info["image_id"]
    disk_format = request.headers.get("X-Image-Disk-Format", "qcow2")
    if disk_format not in SNAPSHOT_FORMATS:
        raise web.HTTPBadRequest(text=f"snapshots are {' or '.join(SNAPSHOT_FORMATS)}")
    async with cloud.db.write() as conn:
        image = await image_store.get(conn, image_id, lock=True)
        owner = (image or {}).get("properties", {}).get("instance_uuid")
        inst = None
        if owner:
            inst = (await conn.execute(select(t.instance).where(
                t.instance.c.uuid == owner))).first()
        if (image is None or image["status"] != "queued" or inst is None
                or inst.host != host or inst.task_state not in (
                    states.IMAGE_SNAPSHOT, states.IMAGE_UPLOADING)):
            raise web.HTTPConflict(text=f"Image {image_id} is not a snapshot this host is "
                                        "taking.")
        await image_store.update(conn, image_id, {"status": "saving",
                                                  "disk_format": disk_format},
                                 expect_status="queued")
    await image_data.store_data(cloud, image_id, request.content, request.content_length,
                                disk_format)
    return web.json_response({"id": image_id, "status": "active"}, dumps=json.dumps)


def mount(app: web.Application) -> None:
    app.router.add_get(PATH + "/images/{image_id}", image_meta)
    app.router.add_get(PATH + "/images/{image_id}/file", image_file)
    app.router.add_put(PATH + "/images/{image_id}/file", upload_snapshot)
