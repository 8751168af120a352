"""/v3/users, a user's projects, and changing one's own password."""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.schemas import PasswordChange, UserCreate, UserUpdate
from cloudd.services.identity.tokens import record_revocation
from cloudd.services.identity.views import collection, identity, project_view, user_view
from cloudd.web.auth import ctx_of
from cloudd.web.errors import ApiError, conflict
from cloudd.web.middleware import read_json
from cloudd.web.validation import body_part, bool_filter, parse, referenced


def _target(row) -> dict:
    return {"user": {"id": row.id, "domain_id": row.domain_id}}


def _duplicate(name: str) -> ApiError:
    return conflict(f"Conflict occurred attempting to store user - Duplicate entry found "
                    f"with name {name} at domain ID default.")


async def list_users(request: web.Request) -> web.Response:
    query = request.query
    ctx_of(request).authorize("identity:list_users", {"domain_id": query.get("domain_id")})
    u = t.user
    q = select(u).order_by(u.c.name, u.c.id)
    for key in ("name", "domain_id"):
        if key in query:
            q = q.where(u.c[key] == query[key])
    if "enabled" in query:
        q = q.where(u.c.enabled.is_(bool_filter(query["enabled"])))
    async with identity(request).db.read() as conn:
        rows = (await conn.execute(q)).all()
    return collection(request, "users", [user_view(request, r) for r in rows], "/v3/users")


async def get_user(request: web.Request) -> web.Response:
    async with identity(request).db.read() as conn:
        row = await store.get_user(conn, request.match_info["user_id"])
    ctx_of(request).authorize("identity:get_user", _target(row))
    return web.json_response({"user": user_view(request, row)})


async def create_user(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    raw = body_part(await read_json(request), "user")
    req = parse(UserCreate, raw)
    svc = identity(request)
    domain_id = req.domain_id or ctx.token.user_domain_id
    ctx.authorize("identity:create_user", {"user": {"domain_id": domain_id}})
    password_hash = None
    if req.password is not None:
        password_hash = await store.hash_secret(req.password,
                                                svc.config.identity.password_hash_rounds)
    extra = {k: v for k, v in raw.items() if k not in UserCreate.model_fields}
    user_id = store.new_id()
    now = store.utcnow()
    try:
        async with svc.write() as conn:
            await referenced(store.get_domain(conn, domain_id))
            if req.default_project_id:
                await referenced(store.get_project(conn, req.default_project_id))
            await conn.execute(t.user.insert().values(
                id=user_id, name=req.name, domain_id=domain_id, enabled=req.enabled,
                password_hash=password_hash, password_created_at=now if password_hash else None,
                default_project_id=req.default_project_id, description=req.description or "",
                email=req.email, extra=json.dumps(extra), created_at=now))
            row = await store.get_user(conn, user_id)
    except IntegrityError:
        raise _duplicate(req.name) from None
    return web.json_response({"user": user_view(request, row)}, status=201)


async def update_user(request: web.Request) -> web.Response:
    raw = body_part(await read_json(request), "user")
    req = parse(UserUpdate, raw)
    svc = identity(request)
    user_id = request.match_info["user_id"]
    if "domain_id" in raw:
        raise ApiError(400, "Update of `domain_id` is not allowed.")
    values = req.model_dump(exclude_unset=True)
    password = values.pop("password", None)
    if password is not None:
        values["password_hash"] = await store.hash_secret(
            password, svc.config.identity.password_hash_rounds)
        values["password_created_at"] = store.utcnow()
        values["failed_auth_count"] = 0
    if values.get("description", "") is None:
        values["description"] = ""
    try:
        async with svc.write() as conn:
            row = await store.get_user(conn, user_id)
            ctx_of(request).authorize("identity:update_user", _target(row))
            extra = json.loads(row.extra)
            extra.update({k: v for k, v in raw.items()
                          if k not in UserUpdate.model_fields and k not in ("id", "links")})
            values["extra"] = json.dumps(extra)
            await conn.execute(t.user.update().where(t.user.c.id == user_id).values(**values))
            if password is not None or req.enabled is False:
                await record_revocation(conn, user_id=user_id)
            row = await store.get_user(conn, user_id)
    except IntegrityError:
        raise _duplicate(req.name or "") from None
    return web.json_response({"user": user_view(request, row)})


async def delete_user(request: web.Request) -> web.Response:
    svc = identity(request)
    user_id = request.match_info["user_id"]
    async with svc.write() as conn:
        row = await store.get_user(conn, user_id)
        ctx_of(request).authorize("identity:delete_user", _target(row))
        await conn.execute(delete(t.role_assignment).where(
            t.role_assignment.c.actor_id == user_id))
        await conn.execute(delete(t.user).where(t.user.c.id == user_id))
        await record_revocation(conn, user_id=user_id)
    return web.Response(status=204)


async def change_password(request: web.Request) -> web.Response:
    """POST /v3/users/{id}/password: a user changes its own password."""
    req = parse(PasswordChange, body_part(await read_json(request), "user"))
    svc = identity(request)
    user_id = request.match_info["user_id"]
    ctx_of(request).authorize("identity:change_password", {"user_id": user_id})
    async with svc.db.read() as conn:
        row = await store.get_user(conn, user_id)
    if not await store.check_secret(req.original_password, row.password_hash):
        raise ApiError(401, "The request you have made requires authentication.")
    new_hash = await store.hash_secret(req.password, svc.config.identity.password_hash_rounds)
    async with svc.write() as conn:
        await conn.execute(t.user.update().where(t.user.c.id == user_id).values(
            password_hash=new_hash, password_created_at=store.utcnow()))
        await record_revocation(conn, user_id=user_id)
    return web.Response(status=204)


async def list_user_projects(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    ctx_of(request).authorize("identity:list_user_projects", {"user": {"id": user_id}})
    ra = t.role_assignment
    async with identity(request).db.read() as conn:
        await store.get_user(conn, user_id)
        ids = select(ra.c.target_id).where(ra.c.actor_id == user_id,
                                           ra.c.type == "UserProject")
        rows = (await conn.execute(select(t.project).where(t.project.c.id.in_(ids))
                                   .order_by(t.project.c.name))).all()
    return collection(request, "projects", [project_view(request, r) for r in rows],
                      f"/v3/users/{user_id}/projects")
