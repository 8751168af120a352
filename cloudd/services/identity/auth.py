"""POST/GET/HEAD/DELETE /v3/auth/tokens and the /v3/auth/* lists."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t
from cloudd.services.identity import catalog, store
from cloudd.services.identity.schemas import (
    AppCredMethod,
    AuthRequest,
    PasswordMethod,
    ScopeRef,
    UserRef,
)
from cloudd.services.identity.tokens import (
    SYSTEM_TARGET,
    Scope,
    Token,
    new_audit_id,
    record_revocation,
)
from cloudd.services.identity.views import (
    collection,
    domain_view,
    identity,
    link_self,
    project_view,
)
from cloudd.web.auth import ctx_of, public
from cloudd.web.errors import ApiError, unauthorized
from cloudd.web.middleware import read_json
from cloudd.web.validation import parse


def _unauthorized(message: str | None = None) -> ApiError:
    return unauthorized(message) if message else unauthorized()


async def _user_from_ref(conn: AsyncConnection, ref: UserRef) -> object:
    """The user an auth request names (by id, or by name within a domain)."""
    if ref.id:
        row = (await conn.execute(select(t.user).where(t.user.c.id == ref.id))).first()
    elif ref.name and ref.domain and (ref.domain.id or ref.domain.name):
        domain = await store.find_domain(conn, id=ref.domain.id, name=ref.domain.name)
        row = (await conn.execute(select(t.user).where(
            t.user.c.name == ref.name, t.user.c.domain_id == domain.id))).first()
    else:
        raise ApiError(400, "Expecting to find domain in user. The server could not comply "
                            "with the request since it is either malformed or otherwise "
                            "incorrect.")
    if row is None:
        raise _unauthorized()
    return row


async def _password_auth(request: web.Request, method: PasswordMethod | None) -> str:
    svc = identity(request)
    cfg = svc.config.identity
    if method is None or method.user.password is None:
        raise ApiError(400, "Invalid input for field 'identity/password/user/password'.")
    async with svc.db.read() as conn:
        user = await _user_from_ref(conn, method.user)
        domain = await store.get_domain(conn, user.domain_id)
    now = store.utcnow()
    locked = (cfg.lockout_failure_attempts and user.failed_auth_count >= cfg.lockout_failure_attempts
              and user.failed_auth_at is not None
              and now - user.failed_auth_at < dt.timedelta(seconds=cfg.lockout_duration))
    if locked:
        raise _unauthorized(f"The account is locked for user: {user.id}.")
    if not await store.check_secret(method.user.password, user.password_hash):
        # The lockout counters are not something a token depends on: plain
        # db.write(), so failed logins do not empty the validation caches.
        async with svc.db.write() as conn:
            count = user.failed_auth_count + 1
            if user.failed_auth_at and now - user.failed_auth_at >= dt.timedelta(
                    seconds=cfg.lockout_duration):
                count = 1
            await conn.execute(t.user.update().where(t.user.c.id == user.id).values(
                failed_auth_count=count, failed_auth_at=now))
        raise _unauthorized()
    if not user.enabled or not domain.enabled:
        raise _unauthorized()
    if user.failed_auth_count:
        async with svc.db.write() as conn:
            await conn.execute(t.user.update().where(t.user.c.id == user.id).values(
                failed_auth_count=0, failed_auth_at=None))
    return user.id


async def _app_cred_auth(request: web.Request, method: AppCredMethod | None) -> tuple:
    svc = identity(request)
    if method is None:
        raise ApiError(400, "Invalid input for field 'identity/application_credential'.")
    ac = t.application_credential
    async with svc.db.read() as conn:
        if method.id:
            cred = (await conn.execute(select(ac).where(ac.c.id == method.id))).first()
        elif method.name and method.user:
            user = await _user_from_ref(conn, method.user)
            cred = (await conn.execute(select(ac).where(
                ac.c.name == method.name, ac.c.user_id == user.id))).first()
        else:
            raise ApiError(400, "Could not find application credential: an id, or a name "
                                "and a user, is required.")
    if cred is None or not await store.check_secret(method.secret, cred.secret_hash):
        raise _unauthorized()
    if cred.expires_at is not None and cred.expires_at <= store.utcnow():
        raise _unauthorized()
    return cred


async def _resolve_scope(conn: AsyncConnection, ref: ScopeRef | str | None,
                         user_id: str) -> Scope:
    if ref is None or ref == "unscoped":
        if ref is None:
            user = await store.get_user(conn, user_id)
            if user.default_project_id:
                project = (await conn.execute(select(t.project).where(
                    t.project.c.id == user.default_project_id))).first()
                if project is not None and project.enabled and \
                        await store.direct_role_ids(conn, user_id, project.id):
                    return Scope("project", project.id)
        return Scope()
    if ref.project is not None:
        p = ref.project
        if p.id:
            row = (await conn.execute(select(t.project).where(t.project.c.id == p.id))).first()
        elif p.name and p.domain:
            domain = await store.find_domain(conn, id=p.domain.id, name=p.domain.name)
            row = (await conn.execute(select(t.project).where(
                t.project.c.name == p.name, t.project.c.domain_id == domain.id))).first()
        else:
            raise ApiError(400, "Expecting to find domain in project.")
        if row is None or not row.enabled:
            raise _unauthorized()
        return Scope("project", row.id)
    if ref.domain is not None:
        domain = await store.find_domain(conn, id=ref.domain.id, name=ref.domain.name)
        return Scope("domain", domain.id)
    if ref.system is not None and ref.system.all:
        return Scope("system", SYSTEM_TARGET)
    raise ApiError(400, "Invalid scope.")


def token_body(tok: Token, cfg, with_catalog: bool) -> dict:
    body: dict = {
        "methods": tok.methods,
        "user": {"id": tok.user_id, "name": tok.user_name,
                 "domain": {"id": tok.user_domain_id, "name": tok.user_domain_name},
                 "password_expires_at": None},
        "audit_ids": tok.audit_ids,
        "expires_at": store.isotime(tok.expires_at),
        "issued_at": store.isotime(tok.issued_at),
    }
    if tok.scope.kind is not None:
        body["roles"] = tok.roles
    if tok.project:
        body["project"] = tok.project
        body["is_domain"] = False
    elif tok.domain:
        body["domain"] = tok.domain
    elif tok.scope.kind == "system":
        body["system"] = {"all": True}
    if tok.app_cred:
        body["application_credential"] = tok.app_cred
    if with_catalog and tok.scope.kind is not None:
        body["catalog"] = catalog.token_catalog(cfg)
    return {"token": body}


@public
async def issue_token(request: web.Request) -> web.Response:
    req = parse(AuthRequest, await read_json(request))
    svc = identity(request)
    ident = req.auth.identity
    methods = list(dict.fromkeys(ident.methods))
    audit_ids = [new_audit_id()]
    expires_at = None
    cred = None
    if "application_credential" in methods:
        if req.auth.scope not in (None, "unscoped"):
            raise _unauthorized("Application credentials cannot request a scope.")
        cred = await _app_cred_auth(request, ident.application_credential)
        user_id = cred.user_id
        scope = Scope("project", cred.project_id)
        expires_at = cred.expires_at
    elif "token" in methods:
        if ident.token is None:
            raise ApiError(400, "Invalid input for field 'identity/token/id'.")
        try:
            old = await svc.validate(ident.token.id, use_cache=False)
        except ApiError:
            raise _unauthorized() from None
        if old.app_cred:
            raise _unauthorized("Application credential tokens cannot be rescoped.")
        user_id = old.user_id
        audit_ids = [new_audit_id(), old.audit_ids[0]]
        expires_at = old.expires_at
        methods = list(dict.fromkeys(old.methods + ["token"]))
        async with svc.db.read() as conn:
            scope = await _resolve_scope(conn, req.auth.scope, user_id)
    else:
        user_id = await _password_auth(request, ident.password)
        async with svc.db.read() as conn:
            scope = await _resolve_scope(conn, req.auth.scope, user_id)
    token, _, _ = svc.tokens.encode(user_id, methods, scope, audit_ids, expires_at,
                                    cred.id if cred else None)
    try:
        tok = await svc.validate(token, use_cache=False)
    except ApiError:
        # The user holds no role on the scope asked for.
        raise _unauthorized() from None
    body = token_body(tok, svc.config, "nocatalog" not in request.query)
    return web.json_response(body, status=201, headers={"X-Subject-Token": token})


async def _subject(request: web.Request) -> tuple[Token, str]:
    ctx = ctx_of(request)
    subject = request.headers.get("X-Subject-Token")
    if not subject:
        raise ApiError(400, "X-Subject-Token header is required.")
    svc = identity(request)
    try:
        tok = await svc.validate(subject, use_cache=False)
    except ApiError:
        ctx.authorize("identity:validate_token", {"token": {"user_id": None}})
        raise ApiError(404, f"Could not find token: {subject[:12]}...") from None
    return tok, subject


async def validate_token(request: web.Request) -> web.Response:
    tok, subject = await _subject(request)
    ctx_of(request).authorize("identity:validate_token", {"token": {"user_id": tok.user_id}})
    body = token_body(tok, identity(request).config, "nocatalog" not in request.query)
    return web.json_response(body, headers={"X-Subject-Token": subject})


async def check_token(request: web.Request) -> web.Response:
    tok, subject = await _subject(request)
    ctx_of(request).authorize("identity:check_token", {"token": {"user_id": tok.user_id}})
    return web.Response(status=200, headers={"X-Subject-Token": subject})


async def revoke_token(request: web.Request) -> web.Response:
    tok, _ = await _subject(request)
    ctx_of(request).authorize("identity:revoke_token", {"token": {"user_id": tok.user_id}})
    svc = identity(request)
    async with svc.write() as conn:
        await record_revocation(conn, audit_id=tok.audit_ids[0])
    return web.Response(status=204)


async def auth_catalog(request: web.Request) -> web.Response:
    tok = ctx_of(request).token
    if tok.scope.kind is None:
        raise ApiError(403, "A scoped token is required to read the catalog.")
    return web.json_response({"catalog": catalog.token_catalog(identity(request).config),
                              "links": link_self(request, "/v3/auth/catalog")})


async def _granted(request: web.Request, atype: str, table, view, key: str) -> web.Response:
    """The enabled projects or domains the caller holds a role on."""
    ra = t.role_assignment
    ids = select(ra.c.target_id).where(ra.c.actor_id == ctx_of(request).user_id,
                                       ra.c.type == atype)
    async with identity(request).db.read() as conn:
        rows = (await conn.execute(select(table).where(
            table.c.id.in_(ids), table.c.enabled.is_(True)).order_by(table.c.name))).all()
    return collection(request, key, [view(request, r) for r in rows], f"/v3/auth/{key}")


async def auth_projects(request: web.Request) -> web.Response:
    return await _granted(request, "UserProject", t.project, project_view, "projects")


async def auth_domains(request: web.Request) -> web.Response:
    return await _granted(request, "UserDomain", t.domain, domain_view, "domains")


async def auth_system(request: web.Request) -> web.Response:
    tok = ctx_of(request).token
    async with identity(request).db.read() as conn:
        roles = await store.direct_role_ids(conn, tok.user_id, SYSTEM_TARGET)
    return web.json_response({"system": [{"all": True}] if roles else [],
                              "links": link_self(request, "/v3/auth/system")})
