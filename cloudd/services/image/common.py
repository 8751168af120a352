"""What every Image API handler needs: the caller, the cloud, image lookup with
Glance's visibility rules, and policy checks that hide what a caller cannot see."""

from __future__ import annotations

from aiohttp import web

from cloudd.policy import PolicyNotAuthorized
from cloudd.services.image import image_store
from cloudd.web.auth import RequestContext, ctx_of
from cloudd.web.errors import ApiError


def cloud(request: web.Request):
    return request.config_dict["cloud"]


def context(request: web.Request) -> RequestContext:
    return ctx_of(request)


def is_admin(ctx: RequestContext) -> bool:
    return ctx.can("context_is_admin", {})


def not_found(image_id: str) -> ApiError:
    return ApiError(404, f"No image found with ID {image_id}")


def target(image: dict, member: dict | None = None) -> dict:
    """The policy target: the image's attributes (project_id is its owner) and,
    for a project the image is shared with, member_id."""
    out = {k: v for k, v in image.items() if k not in ("properties", "tags")}
    out.update({k: v for k, v in image.get("properties", {}).items() if k not in out})
    out["project_id"] = image.get("owner")
    out["member_id"] = member["member"] if member else None
    return out


def visible(ctx: RequestContext, image: dict, member: dict | None) -> bool:
    """Glance's is_image_visible (the database layer's check)."""
    if is_admin(ctx) or image["owner"] is None:
        return True
    if image["visibility"] in ("public", "community"):
        return True
    if ctx.project_id is not None:
        if ctx.project_id == image["owner"]:
            return True
        if image["visibility"] == "shared" and member is not None:
            return True
    return False


async def lookup(conn, request: web.Request, image_id: str,
                 lock: bool = False) -> tuple[dict, dict | None]:
    """The image and the caller's membership of it; 404 when it does not exist,
    is not visible, or get_image does not allow it."""
    ctx = context(request)
    image = await image_store.get(conn, image_id, lock=lock)
    if image is None:
        raise not_found(image_id)
    member = await image_store.member(conn, image_id, ctx.project_id)
    if not visible(ctx, image, member) or not ctx.can("get_image", target(image, member)):
        raise not_found(image_id)
    return image, member


def enforce(request: web.Request, rule: str, image: dict, member: dict | None,
            message: str | None = None) -> None:
    """As Glance's ImageAPIPolicy._enforce: a refusal is 403 for an image the
    caller can see (with ``message`` if given) and 404 for one it cannot."""
    ctx = context(request)
    tgt = target(image, member)
    if ctx.can(rule, tgt):
        return
    if not ctx.can("get_image", tgt):
        raise ApiError(404, "The resource could not be found.")
    if message is not None:
        raise ApiError(403, message)
    raise PolicyNotAuthorized(rule)


def enforce_visibility(request: web.Request, visibility: str | None, tgt: dict) -> None:
    ctx = context(request)
    if visibility == "public":
        ctx.authorize("publicize_image", tgt)
    elif visibility == "community":
        ctx.authorize("communitize_image", tgt)
