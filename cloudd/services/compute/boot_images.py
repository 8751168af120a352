"""The image a server boots from, checked as Nova checks it with Glance.

The image must exist and be visible to the caller (the image service's own
visibility and policy rules), be active, and fit the flavor (min_ram,
min_disk, and the image's size within the root disk). What the driver needs
is kept in the request spec: id, formats, sizes and the properties
(kernel_id, ramdisk_id, os_type, hw_*...).
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.image import common as image_common
from cloudd.web.errors import ApiError

GIB = 1024 ** 3


async def for_boot(conn, request: web.Request, image_id: str, flavor: dict) -> dict:
    """The image's boot description for the request spec; 400 when unusable."""
    try:
        image, _ = await image_common.lookup(conn, request, image_id)
    except ApiError:
        raise ApiError(400, f"Image {image_id} could not be found.") from None
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
