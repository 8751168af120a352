"""Images: create, show, delete, deactivate/reactivate (glance/api/v2/images.py)."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from cloudd.services.image import image_store, schemas_api
from cloudd.services.image.common import cloud, context, enforce, enforce_visibility, lookup
from cloudd.services.image.store import for_cloud
from cloudd.services.image.views import image_view, json_response, no_content
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

DISALLOWED = ("direct_url", "self", "file", "schema", "stores")
READONLY = ("created_at", "updated_at", "status", "checksum", "size", "virtual_size",
            "direct_url", "self", "file", "schema", "id", "os_hash_algo", "os_hash_value")
RESERVED = ("location", "deleted", "deleted_at")
RESERVED_NS = "os_glance"
BASE = ("checksum", "created_at", "container_format", "disk_format", "id", "min_disk",
        "min_ram", "name", "size", "virtual_size", "status", "tags", "owner", "updated_at",
        "visibility", "protected", "os_hidden")
FACTORY_READONLY = ("created_at", "updated_at", "status", "checksum", "os_hash_algo",
                    "os_hash_value", "size", "virtual_size")
MAX_PROPERTIES = 128     # Glance's image_property_quota
MAX_TAGS = 128           # image_tag_quota


def import_methods(request: web.Request) -> list[str]:
    raw = cloud(request).config.image.import_methods
    return [m.strip() for m in raw.split(",") if m.strip()]


def check_reserved(key: str) -> None:
    if key in RESERVED or key.startswith(RESERVED_NS):
        raise ApiError(403, f"Attribute '{key}' is reserved.")


def check_non_negative(key: str, value) -> None:
    if key in ("min_disk", "min_ram") and value and value < 0:
        raise ApiError(400, f"Invalid value '{value}' for parameter '{key}': "
                            "Cannot be a negative value.")


def check_quotas(properties: dict, tags) -> None:
    if len(properties) > MAX_PROPERTIES:
        raise ApiError(413, f"Maximum number of image properties exceeded "
                            f"({len(properties)} > {MAX_PROPERTIES}).")
    if len(set(tags)) > MAX_TAGS:
        raise ApiError(413, f"Maximum number of image tags exceeded "
                            f"({len(set(tags))} > {MAX_TAGS}).")


async def create_image(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_json(request)
    for key in DISALLOWED:
        if key in body:
            raise ApiError(403, f"Attribute '{key}' is read-only.")
    message = schemas_api.validation_error(body)
    if message:
        raise ApiError(400, message)
    props = dict(body)
    tags = props.pop("tags", [])
    base = {k: props.pop(k) for k in BASE if k in props}
    for key in props:
        if len(key) > 255:
            raise ApiError(400, "Custom property should not be greater than 255 characters.")
        check_reserved(key)
    for key in FACTORY_READONLY:
        if key in base:
            raise ApiError(403, f"Attribute '{key}' is read-only.")
    owner = base.get("owner", ctx.project_id)
    tgt = {"project_id": owner, "owner": owner,
           "visibility": base.get("visibility", "private")}
    if not ctx.can("add_image", tgt):
        if owner != ctx.project_id:
            raise ApiError(403, f"You are not permitted to create images owned by '{owner}'.")
        ctx.authorize("add_image", tgt)
    if "visibility" in base:
        enforce_visibility(request, base["visibility"], tgt)
    for key in ("min_disk", "min_ram"):
        check_non_negative(key, base.get(key))
    check_quotas(props, tags)
    now = image_store.utcnow()
    image_id = base.get("id") or str(uuid.uuid4())
    row = {"id": image_id, "name": base.get("name"), "status": "queued",
           "visibility": base.get("visibility", "shared"),
           "protected": base.get("protected", False), "os_hidden": base.get("os_hidden", False),
           "owner": owner, "disk_format": base.get("disk_format"),
           "container_format": base.get("container_format"),
           "min_disk": base.get("min_disk") or 0, "min_ram": base.get("min_ram") or 0,
           "created_at": now, "updated_at": now}
    db = cloud(request).db
    try:
        async with db.write() as conn:
            if await image_store.get(conn, image_id) is not None:
                raise ApiError(409, f"Image with identifier {image_id} already exists!")
            await image_store.insert(conn, row, props, tags)
            image = await image_store.get(conn, image_id)
    except IntegrityError:
        raise ApiError(409, f"Image with identifier {image_id} already exists!") from None
    headers = {"Location": f"/v2/images/{image_id}"}
    methods = import_methods(request)
    if methods:
        headers["OpenStack-image-import-methods"] = ",".join(methods)
    return json_response(image_view(image), 201, headers)


async def show_image(request: web.Request) -> web.Response:
    async with cloud(request).db.read() as conn:
        image, _ = await lookup(conn, request, request.match_info["image_id"])
    return json_response(image_view(image))


async def image_tasks(request: web.Request) -> web.Response:
    """GET /v2/images/{id}/tasks (2.12): the import tasks of an image. cloudd's
    imports run in the request (glance-direct), so there are never any."""
    async with cloud(request).db.read() as conn:
        await lookup(conn, request, request.match_info["image_id"])
    return json_response({"tasks": []})


async def delete_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    c = cloud(request)
    async with c.db.write() as conn:
        image, member = await lookup(conn, request, image_id, lock=True)
        enforce(request, "delete_image", image, member)
        if image["protected"]:
            raise ApiError(403, f"Image {image_id} is protected and cannot be deleted.")
        await image_store.delete(conn, image_id)
    # The row is gone first: an upload still running finds no image to
    # activate and removes its own temporary file.
    for_cloud(c).remove(image_id)
    return no_content()


async def _set_active_state(request: web.Request, rule: str, want: str,
                            allowed_from: str) -> web.Response:
    image_id = request.match_info["image_id"]
    async with cloud(request).db.write() as conn:
        image, member = await lookup(conn, request, image_id, lock=True)
        enforce(request, rule, image, member)
        if image["status"] == want:
            return no_content()
        verb = "deactivate" if want == "deactivated" else "reactivate"
        if image["status"] != allowed_from or not await image_store.update(
                conn, image_id, {"status": want}, expect_status=allowed_from):
            raise ApiError(403, f"Not allowed to {verb} image in status "
                                f"'{image['status']}'")
    return no_content()


async def deactivate(request: web.Request) -> web.Response:
    return await _set_active_state(request, "deactivate", "deactivated", "active")


async def reactivate(request: web.Request) -> web.Response:
    return await _set_active_state(request, "reactivate", "active", "deactivated")

