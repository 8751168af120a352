"""/v3/users/{user_id}/application_credentials."""

from __future__ import annotations

import base64
import datetime as dt
import os

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.schemas import AppCredCreate, RoleRef
from cloudd.services.identity.views import collection, identity, url
from cloudd.web.auth import ctx_of
from cloudd.web.errors import ApiError, bad_request, conflict, forbidden, not_found
from cloudd.web.middleware import read_json
from cloudd.web.validation import body_part, parse


def _view(request: web.Request, cred, roles: list) -> dict:
    return {"id": cred.id, "name": cred.name, "description": cred.description,
            "user_id": cred.user_id, "project_id": cred.project_id,
            "roles": [{"id": r.id, "name": r.name, "domain_id": store.role_domain(r)}
                      for r in roles],
            "unrestricted": bool(cred.unrestricted),
            "expires_at": store.isotime(cred.expires_at), "access_rules": [],
            "links": {"self": url(request, f"/v3/users/{cred.user_id}/application_credentials/"
                                           f"{cred.id}")}}


async def _roles_of(conn, cred_id: str) -> list:
    acr = t.application_credential_role
    ids = select(acr.c.role_id).where(acr.c.application_credential_id == cred_id)
    return list((await conn.execute(select(t.role).where(t.role.c.id.in_(ids))
                                    .order_by(t.role.c.name))).all())


def _parse_expiry(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid input for field 'expires_at': {value!r} is not a "
                          f"date-time.") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    if parsed <= store.utcnow():
        raise bad_request("The expiration time of an application credential must be in "
                          "the future.")
    return parsed


async def create_app_cred(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    user_id = request.match_info["user_id"]
    ctx.authorize("identity:create_application_credential", {"user_id": user_id})
    tok = ctx.token
    if tok.app_cred and tok.app_cred["restricted"]:
        raise forbidden("Using method 'application_credential' is not allowed for managing "
                        "additional application credentials.")
    if tok.project_id is None:
        raise bad_request("An application credential needs a project-scoped token.")
    req = parse(AppCredCreate, body_part(await read_json(request), "application_credential"))
    if req.access_rules:
        raise bad_request("Access rules are not supported by this cloud.")
    expires_at = _parse_expiry(req.expires_at)
    held = {r["id"]: r for r in tok.roles}
    by_name = {r["name"]: r for r in tok.roles}
    wanted = []
    # No roles named means all of the token's roles, as in Keystone.
    refs = req.roles or [RoleRef(id=i) for i in held]
    for ref in refs:
        role = held.get(ref.id) if ref.id else by_name.get(ref.name or "")
        if role is None:
            raise ApiError(404, f"Could not find role: {ref.id or ref.name}.")
        wanted.append(role["id"])
    secret = req.secret or base64.urlsafe_b64encode(os.urandom(64)).decode().rstrip("=")
    secret_hash = await store.hash_secret(secret, identity(request).config.identity
                                          .password_hash_rounds)
    cred_id = store.new_id()
    try:
        async with identity(request).write() as conn:
            await conn.execute(t.application_credential.insert().values(
                id=cred_id, name=req.name, user_id=user_id, project_id=tok.project_id,
                secret_hash=secret_hash, description=req.description or "",
                unrestricted=req.unrestricted, expires_at=expires_at,
                created_at=store.utcnow()))
            for role_id in dict.fromkeys(wanted):
                await conn.execute(t.application_credential_role.insert().values(
                    application_credential_id=cred_id, role_id=role_id))
            cred = (await conn.execute(select(t.application_credential).where(
                t.application_credential.c.id == cred_id))).first()
            roles = await _roles_of(conn, cred_id)
    except IntegrityError:
        raise conflict(f"Conflict occurred attempting to store application_credential - "
                       f"Duplicate entry found with name {req.name}.") from None
    body = _view(request, cred, roles)
    body["secret"] = secret
    return web.json_response({"application_credential": body}, status=201)


async def list_app_creds(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    ctx_of(request).authorize("identity:list_application_credentials", {"user_id": user_id})
    ac = t.application_credential
    q = select(ac).where(ac.c.user_id == user_id).order_by(ac.c.name)
    if "name" in request.query:
        q = q.where(ac.c.name == request.query["name"])
    async with identity(request).db.read() as conn:
        await store.get_user(conn, user_id)
        items = [_view(request, c, await _roles_of(conn, c.id))
                 for c in (await conn.execute(q)).all()]
    return collection(request, "application_credentials", items,
                      f"/v3/users/{user_id}/application_credentials")


async def _load(conn, request: web.Request):
    ac = t.application_credential
    cred_id = request.match_info["cred_id"]
    cred = (await conn.execute(select(ac).where(
        ac.c.id == cred_id, ac.c.user_id == request.match_info["user_id"]))).first()
    if cred is None:
        raise not_found(f"Could not find application credential: {cred_id}.")
    return cred


async def get_app_cred(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    ctx_of(request).authorize("identity:get_application_credential", {"user_id": user_id})
    async with identity(request).db.read() as conn:
        cred = await _load(conn, request)
        roles = await _roles_of(conn, cred.id)
    return web.json_response({"application_credential": _view(request, cred, roles)})


async def delete_app_cred(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    user_id = request.match_info["user_id"]
    ctx.authorize("identity:delete_application_credential", {"user_id": user_id})
    if ctx.token.app_cred and ctx.token.app_cred["restricted"]:
        raise forbidden("Using method 'application_credential' is not allowed for managing "
                        "additional application credentials.")
    svc = identity(request)
    async with svc.write() as conn:
        cred = await _load(conn, request)
        await conn.execute(delete(t.application_credential).where(
            t.application_credential.c.id == cred.id))
    return web.Response(status=204)
