"""Image tags: PUT and DELETE /v2/images/{id}/tags/{tag} (image_tags.py)."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web

from cloudd.db import tables as t
from cloudd.services.image import image_store
from cloudd.services.image.common import cloud, enforce, lookup
from cloudd.services.image.images import MAX_TAGS
from cloudd.services.image.views import no_content
from cloudd.web.errors import ApiError


async def add_tag(request: web.Request) -> web.Response:
    image_id, tag = request.match_info["image_id"], request.match_info["tag"]
    if len(tag) > 255:
        raise ApiError(400, "Provided object does not match schema 'image': "
                            f"'{tag}' is too long")
    async with cloud(request).db.write() as conn:
        image, member = await lookup(conn, request, image_id, lock=True)
        enforce(request, "modify_image", image, member)
        if tag in image["tags"]:
            return no_content()
        if len(image["tags"]) + 1 > MAX_TAGS:
            raise ApiError(413, f"Maximum number of image tags exceeded "
                                f"({len(image['tags']) + 1} > {MAX_TAGS}).")
        await conn.execute(t.image_tag.insert().values(image_id=image_id, value=tag))
        await image_store.update(conn, image_id, {})
    return no_content()


async def delete_tag(request: web.Request) -> web.Response:
    image_id, tag = request.match_info["image_id"], request.match_info["tag"]
    async with cloud(request).db.write() as conn:
        image, member = await lookup(conn, request, image_id, lock=True)
        enforce(request, "modify_image", image, member)
        res = await conn.execute(t.image_tag.delete().where(
            sa.and_(t.image_tag.c.image_id == image_id, t.image_tag.c.value == tag)))
        if res.rowcount == 0:
            raise ApiError(404, f"Tag {tag} not found.")
        await image_store.update(conn, image_id, {})
    return no_content()
