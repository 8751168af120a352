"""Image and member bodies as Glance's ResponseSerializers write them."""

from __future__ import annotations

import datetime as dt
import json

from aiohttp import web

# Internal properties never shown (as Glance's _hidden_properties).
HIDDEN = ("os_glance_stage_host", "os_glance_hash_op_host")
ATTRIBUTES = ("name", "disk_format", "container_format", "visibility", "size",
              "virtual_size", "status", "checksum", "protected", "min_ram", "min_disk",
              "owner", "os_hidden", "os_hash_algo", "os_hash_value")


def isotime(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def image_view(image: dict) -> dict:
    view = {k: v for k, v in image["properties"].items() if k not in HIDDEN}
    for key in ATTRIBUTES:
        view[key] = image[key]
    view["id"] = image["id"]
    view["created_at"] = isotime(image["created_at"])
    view["updated_at"] = isotime(image["updated_at"])
    view["tags"] = list(image["tags"])
    view["self"] = f"/v2/images/{image['id']}"
    view["file"] = f"/v2/images/{image['id']}/file"
    view["schema"] = "/v2/schemas/image"
    return view


def member_view(member: dict) -> dict:
    return {"member_id": member["member"], "image_id": member["image_id"],
            "status": member["status"], "created_at": isotime(member["created_at"]),
            "updated_at": isotime(member["updated_at"]), "schema": "/v2/schemas/member"}


def json_response(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode(), status=status,
                        content_type="application/json", headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)
