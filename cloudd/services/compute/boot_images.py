"""The image a server boots from, checked as Nova checks it with Glance.

The image must exist and be visible to the caller (the image service's own
visibility and policy rules), be active, and fit the flavor (min_ram,
min_disk, and the image's size within the root disk). What the driver needs
is kept in the request spec: id, formats, sizes and the properties
(kernel_id, ramdisk_id, os_type, hw_*...).

The image's rows (and the caller's membership) come through the compute
service's ``image_cache`` (cloudd/db/table_cache.py: dropped whenever an
image table changes); visibility and ``get_image`` policy are checked for
every request as Image's own lookup does.
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.image import common as image_common
from cloudd.services.image import image_store
from cloudd.web.errors import ApiError

GIB = 1024 ** 3


async def for_boot(conn, request: web.Request, image_id: str, flavor: dict) -> dict:
    """The image's boot description for the request spec; 400 when unusable."""
    image = await _visible_image(conn, request, image_id)
    if image is None:
        raise ApiError(400, f"Image {image_id} could not be found.")
    if image["status"] != "active":
        raise ApiError(400, f"Image {image_id} is not active.")
    if int(image.get("min_ram") or 0) > int(flavor["memory_mb"]):
        raise ApiError(400, "Flavor's memory is too small for requested image.")
    root_gb = int(flavor["root_gb"])
    if root_gb:
        size = int(image.get("size") or 0)
        if size > root_gb * GIB:
            raise ApiError(400, "Flavor's disk is too small for requested image. Flavor "
                                f"disk is {root_gb * GIB} bytes, image is {size} bytes.")
        if int(image.get("min_disk") or 0) > root_gb:
            raise ApiError(400, "Flavor's disk is too small for requested image. Flavor "
                                f"disk is {root_gb * GIB} bytes, minimum size is "
                                f"{int(image['min_disk']) * GIB} bytes.")
    return {"id": image["id"], "name": image.get("name"),
            "disk_format": image.get("disk_format"),
            "container_format": image.get("container_format"),
            "size": image.get("size"), "min_ram": image.get("min_ram"),
            "min_disk": image.get("min_disk"), "properties": dict(image["properties"])}


async def _visible_image(conn, request: web.Request, image_id: str) -> dict | None:
    """image_common.lookup's answer (None for its 404), the rows read through
    the cache."""
    ctx = image_common.context(request)
    cache = getattr(request.config_dict["cloud"].compute, "image_cache", None)

    async def load_image(c):
        return await image_store.get(c, image_id)

    async def load_member(c):
        return await image_store.member(c, image_id, ctx.project_id)

    if cache is None:
        image = await load_image(conn)
    else:
        image = await cache.get(conn, ("image", image_id), load_image)
    if image is None:
        return None
    if cache is None:
        member = await load_member(conn)
    else:
        member = await cache.get(conn, ("member", image_id, ctx.project_id), load_member)
    if not image_common.visible(ctx, image, member) or \
            not ctx.can("get_image", image_common.target(image, member)):
        return None
    return image
