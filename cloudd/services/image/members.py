"""Image members: sharing an image with other projects (image_members.py).

Only ``shared`` images have members. The owner adds and removes members; a
member project accepts or rejects the share; a shared image is listed for a
member once accepted (or with ?member_status=).
"""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.image import image_store
from cloudd.services.image.common import cloud, context, is_admin, lookup, target
from cloudd.services.image.views import json_response, member_view, no_content
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

MAX_MEMBERS = 128        # Glance's image_member_quota
STATUSES = ("pending", "accepted", "rejected")


def _shared(image: dict, message: str) -> None:
    if image["visibility"] != "shared":
        raise ApiError(403, message)


def _check(request: web.Request, rule: str, image: dict, member_id: str | None,
           message: str) -> None:
    tgt = target(image, {"member": member_id} if member_id else None)
    if not context(request).can(rule, tgt):
        raise ApiError(403, message)


async def _body(request: web.Request, key: str, example: str):
    body = await read_json(request)
    if key not in body:
        raise ApiError(400, "Member to be added not specified" if key == "member"
                       else "Status not specified")
    return body[key]


def _visible_members(request: web.Request, image: dict, rows: list[dict]) -> list[dict]:
    """The owner (and an admin) sees every member; a member only itself."""
    ctx = context(request)
    if is_admin(ctx) or ctx.project_id == image["owner"]:
        return rows
    return [r for r in rows if r["member"] == ctx.project_id]


async def list_members(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    async with cloud(request).db.read() as conn:
        image, member = await lookup(conn, request, image_id)
        msg = f"Not allowed to list members for image {image_id}: "
        _shared(image, msg + "Only shared images have members.")
        _check(request, "get_members", image, member and member["member"],
               msg + "You are not authorized to complete get_members action.")
        rows = _visible_members(request, image, await image_store.members(conn, image_id))
    return json_response({"members": [member_view(r) for r in rows],
                          "schema": "/v2/schemas/members"})


async def show_member(request: web.Request) -> web.Response:
    image_id, member_id = request.match_info["image_id"], request.match_info["member_id"]
    async with cloud(request).db.read() as conn:
        image, _ = await lookup(conn, request, image_id)
        if image["visibility"] != "shared":
            raise ApiError(404, "Only shared images have members.")
        rows = _visible_members(request, image,
                                await image_store.members(conn, image_id, member_id))
        if not rows or not context(request).can("get_member", target(image, rows[0])):
            raise ApiError(404, f"{member_id} not found in the member list of the image "
                                f"{image_id}.")
    return json_response(member_view(rows[0]))


async def create_member(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    member_id = await _body(request, "member", "member")
    if not isinstance(member_id, str) and member_id is not None:
        raise ApiError(400, 'Expected a member in the form: {"member": "image_id"}')
    if not member_id:
        raise ApiError(400, "Member can't be empty")
    refused = f"Not allowed to create members for image {image_id}."
    now = image_store.utcnow()
    try:
        async with cloud(request).db.write() as conn:
            image, _ = await lookup(conn, request, image_id, lock=True)
            _shared(image, refused)
            _check(request, "add_member", image, None, refused)
            if await image_store.member(conn, image_id, member_id):
                raise ApiError(409, f"Member {member_id} is duplicated for image "
                                    f"{image_id}")
            if await image_store.count_members(conn, image_id) >= MAX_MEMBERS:
                raise ApiError(413, f"Image member limit exceeded for image {image_id}: "
                                    f"{MAX_MEMBERS}")
            row = {"image_id": image_id, "member": member_id, "status": "pending",
                   "created_at": now, "updated_at": now}
            await conn.execute(t.image_member.insert().values(**row))
    except IntegrityError:
        raise ApiError(409, f"Member {member_id} is duplicated for image {image_id}") \
            from None
    return json_response(member_view(row))


async def update_member(request: web.Request) -> web.Response:
    image_id, member_id = request.match_info["image_id"], request.match_info["member_id"]
    status = await _body(request, "status", "status")
    if status not in STATUSES:
        raise ApiError(400, f"Incorrect request: Status must be one of "
                            f"{', '.join(STATUSES)}")
    refused = f"Not allowed to update members for image {image_id}."
    async with cloud(request).db.write() as conn:
        image, _ = await lookup(conn, request, image_id, lock=True)
        _shared(image, refused)
        rows = _visible_members(request, image,
                                await image_store.members(conn, image_id, member_id))
        if not rows:
            raise ApiError(404, f"{member_id} not found in the member list of the image "
                                f"{image_id}.")
        _check(request, "modify_member", image, member_id, refused)
        await conn.execute(t.image_member.update().where(sa.and_(
            t.image_member.c.image_id == image_id, t.image_member.c.member == member_id))
            .values(status=status, updated_at=image_store.utcnow()))
        row = (await image_store.members(conn, image_id, member_id))[0]
    return json_response(member_view(row))


async def delete_member(request: web.Request) -> web.Response:
    image_id, member_id = request.match_info["image_id"], request.match_info["member_id"]
    refused = f"Not allowed to delete members for image {image_id}."
    async with cloud(request).db.write() as conn:
        image, _ = await lookup(conn, request, image_id, lock=True)
        _shared(image, refused)
        rows = _visible_members(request, image,
                                await image_store.members(conn, image_id, member_id))
        if not rows:
            raise ApiError(404, f"{member_id} not found in the member list of the image "
                                f"{image_id}.")
        _check(request, "delete_member", image, None, refused)
        await conn.execute(t.image_member.delete().where(sa.and_(
            t.image_member.c.image_id == image_id, t.image_member.c.member == member_id)))
    return no_content()
