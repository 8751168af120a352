"""PATCH /v2/images/{id}: JSON-patch changes (openstack-images-v2.1-json-patch,
and the draft-4 style v2.0), as Glance's RequestDeserializer.update and
ImagesController.update apply them."""

from __future__ import annotations

import json
import re

from aiohttp import web

from cloudd.services.image import image_store, schemas_api
from cloudd.services.image.common import (
    cloud,
    context,
    enforce,
    enforce_visibility,
    is_admin,
    lookup,
    target,
)
from cloudd.services.image.images import (
    READONLY,
    RESERVED,
    RESERVED_NS,
    check_non_negative,
    check_quotas,
)
from cloudd.services.image.views import image_view, json_response
from cloudd.web.errors import ApiError

PATCH_TYPES = {"application/openstack-images-v2.0-json-patch": 4,
               "application/openstack-images-v2.1-json-patch": 10}
OPERATIONS = ("add", "remove", "replace")
# Base attributes a PATCH may set (the rest are read-only or reserved).
MUTABLE = ("name", "visibility", "protected", "os_hidden", "min_ram", "min_disk",
           "disk_format", "container_format", "owner")
BASE_ATTRS = (*MUTABLE, "tags", "id", "status", "checksum", "size", "virtual_size",
              "created_at", "updated_at", "os_hash_algo", "os_hash_value")


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _decode_pointer(pointer) -> list[str]:
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        raise _bad(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise _bad(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise _bad(f'Pointer `{pointer}` end with "/".')
    if pointer[1:].strip() == "/":
        raise _bad(f"Pointer `{pointer}` does not contains valid token.")
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise _bad(f'Pointer `{pointer}` contains "~" not part of a recognized escape '
                   "sequence.")
    return [part.replace("~1", "/").replace("~0", "~").strip()
            for part in pointer.lstrip("/").split("/")]


def parse_changes(raw: list, draft: int) -> list[dict]:
    changes = []
    for item in raw:
        if not isinstance(item, dict):
            raise _bad("Operations must be JSON objects.")
        if draft == 10:
            op = item.get("op")
            if op is None:
                raise _bad("Unable to find `op` in JSON Schema change. It must be one of "
                           f"the following: {', '.join(OPERATIONS)}.")
            if op not in OPERATIONS:
                raise _bad(f"Invalid operation: `{op}`. It must be one of the following: "
                           f"{', '.join(OPERATIONS)}.")
            if "path" not in item:
                raise _bad("Unable to find 'path' in JSON Schema change")
            pointer = item["path"]
        else:
            found = [k for k in OPERATIONS if k in item]
            if len(found) != 1:
                raise _bad('Operation objects must contain exactly one member named "add", '
                           '"remove", or "replace".')
            op, pointer = found[0], item[found[0]]
        path = _decode_pointer(pointer)
        if len(path) != 1:
            raise _bad(f"Invalid JSON pointer for this resource: '/{'/'.join(path)}'")
        root = path[0]
        change = {"op": op, "path": root}
        if op != "remove":
            if "value" not in item:
                raise _bad(f'Operation "{op}" requires a member named "value".')
            change["value"] = item["value"]
        if root in READONLY:
            raise ApiError(403, f"Attribute '{root}' is read-only.")
        if root in RESERVED or root.startswith(RESERVED_NS):
            raise ApiError(403, f"Attribute '{root}' is reserved.")
        if op != "remove":
            message = schemas_api.validation_error({root: change["value"]})
            if message:
                raise _bad(message)
        changes.append(change)
    return changes


def _apply(request: web.Request, image: dict, member: dict | None, change: dict,
           draft: int) -> None:
    """Apply one change to ``image`` (in memory), with Glance's checks."""
    ctx = context(request)
    op, root = change["op"], change["path"]
    value = change.get("value")
    props = image["properties"]
    if root == "locations":
        raise ApiError(403, "It's not allowed to update locations if locations are "
                            "invisible.")
    if root == "owner" and op != "remove" and not is_admin(ctx):
        raise ApiError(403, "Owner can't be updated by non admin.")
    if root == "visibility" and op != "remove":
        enforce_visibility(request, value, target(image, member))
    enforce(request, "modify_image", image, member)
    if op == "remove":
        if root in BASE_ATTRS:
            raise ApiError(403, f"Property {root} may not be removed.")
        if root not in props:
            raise ApiError(409, f"Property {root} does not exist.")
        del props[root]
        return
    exists = root in BASE_ATTRS or root in props
    if op == "add" and draft == 4 and exists:
        raise ApiError(409, f"Property {root} already present.")
    if op == "replace" and not exists:
        raise ApiError(409, f"Property {root} does not exist.")
    if root == "tags":
        image["tags"] = sorted(set(value))
    elif root in BASE_ATTRS:
        if root in ("disk_format", "container_format") and \
                image["status"] not in ("queued", "importing"):
            raise ApiError(403, f"Attribute {root} can be only replaced for a queued image.")
        check_non_negative(root, value)
        image[root] = value
    else:
        props[root] = value


async def update_image(request: web.Request) -> web.Response:
    if request.content_type not in PATCH_TYPES:
        allowed = ", ".join(sorted(PATCH_TYPES))
        raise ApiError(415, f"Image PATCH expects Content-Type one of: {allowed}",
                       headers={"Accept-Patch": allowed})
    draft = PATCH_TYPES[request.content_type]
    raw = await request.read()
    if not raw:
        raise _bad("Body expected in request.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad("Malformed JSON in request body.") from None
    if not isinstance(body, list):
        raise _bad("Request body must be a JSON array of operation objects.")
    changes = parse_changes(body, draft)
    image_id = request.match_info["image_id"]
    async with cloud(request).db.write() as conn:
        image, member = await lookup(conn, request, image_id, lock=True)
        before = {k: v for k, v in image.items() if k not in ("properties", "tags")}
        old_props, old_tags = dict(image["properties"]), list(image["tags"])
        for change in changes:
            _apply(request, image, member, change, draft)
        check_quotas(image["properties"], image["tags"])
        if changes:
            values = {k: image[k] for k in before if image[k] != before[k]}
            if values.get("min_disk") is None and "min_disk" in values:
                values["min_disk"] = 0
            if values.get("min_ram") is None and "min_ram" in values:
                values["min_ram"] = 0
            if not await image_store.update(conn, image_id, values,
                                            expect_status=before["status"]):
                raise ApiError(409, f"Image {image_id} changed while it was being updated; "
                                    "try again.")
            if image["properties"] != old_props:
                await image_store.replace_properties(conn, image_id, image["properties"])
            if image["tags"] != old_tags:
                await image_store.replace_tags(conn, image_id, image["tags"])
            image = await image_store.get(conn, image_id)
    return json_response(image_view(image))
