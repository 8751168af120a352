"""The Image API (Glance v2): version documents, the route table, start-up recovery."""

from __future__ import annotations

import logging

from aiohttp import web

from cloudd.services.image import (
    image_data,
    image_list,
    image_patch,
    image_store,
    images,
    members,
    schemas_api,
    tags,
)
from cloudd.services.image.policies import POLICIES, SCOPE_TYPES
from cloudd.services.image.store import for_cloud
from cloudd.services.placement.util import accept_quality
from cloudd.web.app import ServiceSpec
from cloudd.web.auth import public
from cloudd.web.errors import image_style

log = logging.getLogger("cloudd.image")

# Glance without an image cache or multiple stores: 2.17 is current.
VERSIONS = [("2.17", "CURRENT"), ("2.15", "SUPPORTED"), ("2.9", "SUPPORTED"),
            *[(f"2.{n}", "SUPPORTED") for n in range(7, -1, -1)]]


def _versions(request: web.Request) -> list[dict]:
    href = f"{request.url.origin()}{request['prefix']}/v2/"
    forwarded = request.app["cloud"].config.server.public_url
    if forwarded:
        href = f"{forwarded.rstrip('/')}{request['prefix']}/v2/"
    return [{"id": f"v{v}", "status": s, "links": [{"rel": "self", "href": href}]}
            for v, s in VERSIONS]


@public
async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": _versions(request)}, status=300)


@public
async def versions_explicit(request: web.Request) -> web.Response:
    return web.json_response({"versions": _versions(request)})


def routes() -> list[tuple[str, str, object]]:
    img = "/v2/images/{image_id}"
    return [
        ("GET", "/", versions),
        ("GET", "/versions", versions_explicit),
        ("GET", "/v2", versions),
        ("GET", "/v2/", versions),
        ("GET", "/v2/images", image_list.list_images),
        ("POST", "/v2/images", images.create_image),
        ("GET", img, images.show_image),
        ("PATCH", img, image_patch.update_image),
        ("DELETE", img, images.delete_image),
        ("GET", img + "/tasks", images.image_tasks),
        ("PUT", img + "/file", image_data.upload),
        ("GET", img + "/file", image_data.download),
        ("PUT", img + "/stage", image_data.stage),
        ("POST", img + "/import", image_data.import_image),
        ("POST", img + "/actions/deactivate", images.deactivate),
        ("POST", img + "/actions/reactivate", images.reactivate),
        ("PUT", img + "/tags/{tag}", tags.add_tag),
        ("DELETE", img + "/tags/{tag}", tags.delete_tag),
        ("GET", img + "/members", members.list_members),
        ("POST", img + "/members", members.create_member),
        ("GET", img + "/members/{member_id}", members.show_member),
        ("PUT", img + "/members/{member_id}", members.update_member),
        ("DELETE", img + "/members/{member_id}", members.delete_member),
        ("GET", "/v2/schemas/image", schemas_api.get_image_schema),
        ("GET", "/v2/schemas/images", schemas_api.get_images_schema),
        ("GET", "/v2/schemas/member", schemas_api.get_member_schema),
        ("GET", "/v2/schemas/members", schemas_api.get_members_schema),
        ("GET", "/v2/info/import", image_data.import_info),
        ("GET", "/v2/info/stores", image_data.stores_info),
    ]


def error_media(request: web.Request) -> str:
    """WebOb's choice for an error body: text/plain unless the client prefers
    text/html or application/json."""
    accept = (request.headers.get("Accept") or "").strip()
    best, best_q = "text/plain", accept_quality(accept, "text/plain") if accept else 1.0
    for offer in ("text/html", "application/json"):
        q = accept_quality(accept, offer) if accept else 0.0
        if q > best_q:
            best, best_q = offer, q
    return best


async def on_start(cloud) -> None:
    """Recover from a crash mid-upload: an image left saving goes back to
    queued, one left importing back to uploading when its staged data is still
    there (else queued); temporary files and data without an image go."""
    store = for_cloud(cloud)
    store.ensure()
    async with cloud.db.write() as conn:
        for row in await image_store.stuck(conn):
            staged = store.staging_path(row["id"]).exists()
            back = "uploading" if row["status"] == "importing" and staged else "queued"
            values = {"status": back}
            if back == "queued":
                values.update(size=None, virtual_size=None, checksum=None,
                              os_hash_algo=None, os_hash_value=None)
            await image_store.update(conn, row["id"], values, expect_status=row["status"])
            log.warning("image %s was %s when cloudd stopped; now %s",
                        row["id"], row["status"], back)
        active = await image_store.ids_with_status(conn, ("active", "deactivated"))
        staged = await image_store.ids_with_status(conn, ("uploading",))
    removed = store.sweep(active, staged)
    if removed:
        log.info("removed %d stray image files", len(removed))


SPEC = ServiceSpec(
    name="image",
    error_style=image_style,
    forbidden_message="You are not authorized to complete {rule} action.",
    routes=routes,
    policies=POLICIES,
    on_start=on_start,
    scope_types=SCOPE_TYPES,
    error_media=error_media,
)
