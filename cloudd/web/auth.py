"""Who is calling: token validation for every API, and the request context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cloudd.web.errors import ApiError


@dataclass
class RequestContext:
    """The caller of one request, as policy and handlers see it."""

    token: Any                      # cloudd.services.identity.tokens.Token
    request_id: str
    enforcer: Any                   # cloudd.policy.Enforcer

    @property
    def user_id(self) -> str:
        return self.token.user_id

    @property
    def project_id(self) -> str | None:
        return self.token.project_id

    @property
    def creds(self) -> dict:
        return self.token.policy_creds()

    def can(self, rule: str, target: dict | None = None) -> bool:
        return self.enforcer.enforce(rule, _both(target), self.creds)

    def authorize(self, rule: str, target: dict | None = None) -> None:
        """Raise PolicyNotAuthorized (rendered as the API's 403) unless allowed."""
        self.enforcer.authorize(rule, _both(target), self.creds)


def _both(target: dict | None) -> dict:
    """The target as Nova's rules read it (%(project_id)s) and as Keystone's do
    (%(target.project.id)s).

    Unknown (None) values are left out: oslo.policy would compare them as the
    string "None", so a caller with no domain would "match" a target with none.
    """
    target = _known(target or {})
    return {**target, "target": target}


def _known(value: dict) -> dict:
    return {k: _known(v) if isinstance(v, dict) else v
            for k, v in value.items() if v is not None}


def public(handler: Callable) -> Callable:
    """Mark a handler that answers without a token (version documents, login)."""
    handler.public = True  # type: ignore[attr-defined]
    return handler


def ctx_of(request: web.Request) -> RequestContext:
    return request["ctx"]


@web.middleware
async def auth_middleware(request: web.Request, handler):
    """Validate X-Auth-Token for every route not marked @public."""
    match = request.match_info
    if match.http_exception is None and not getattr(match.handler, "public", False):
        request["ctx"] = await authenticate(request)
    return await handler(request)


async def authenticate(request: web.Request) -> RequestContext:
    cloud = request.config_dict["cloud"]
    token = request.headers.get("X-Auth-Token")
    if cloud.config.auth.strategy == "noauth2":
        if not token:
            raise ApiError(401, "The request you have made requires authentication.")
        return RequestContext(noauth_token(request, token), request["request_id"],
                              cloud.enforcer)
    if not token:
        raise ApiError(401, "The request you have made requires authentication.",
                       headers=_www_authenticate(cloud))
    try:
        tok = await cloud.identity.validate(token)
    except ApiError:
        raise ApiError(401, "The request you have made requires authentication.",
                       headers=_www_authenticate(cloud)) from None
    return RequestContext(tok, request["request_id"], cloud.enforcer)


def noauth_token(request: web.Request, token: str):
    """The caller a noauth2 token names, as Placement's NoAuthMiddleware reads it."""
    from cloudd.services.identity.store import utcnow
    from cloudd.services.identity.tokens import Scope, Token
    user_id, _, project_id = token.partition(":")
    # An X-Project-Id header wins, as oslo.context reads the headers that
    # Placement's NoAuthMiddleware leaves (HTTP_X_PROJECT_ID before X_TENANT_ID).
    project_id = request.headers.get("X-Project-Id") or project_id or user_id
    if "X-Roles" in request.headers:
        roles = [r.strip() for r in request.headers["X-Roles"].split(",") if r.strip()]
    else:
        roles = ["admin"] if user_id == "admin" else []
    system = bool(request.headers.get("OpenStack-System-Scope"))
    now = utcnow()
    tok = Token(user_id=user_id, user_name=user_id, user_domain_id="default",
                user_domain_name="Default", methods=["noauth"],
                scope=Scope("system", "system") if system else Scope("project", project_id),
                issued_at=now, expires_at=now, audit_ids=[],
                roles=[{"id": r, "name": r} for r in roles])
    if not system:
        tok.project = {"id": project_id, "name": project_id,
                       "domain": {"id": "default", "name": "Default"}}
    return tok


def _www_authenticate(cloud) -> dict[str, str]:
    return {"WWW-Authenticate": f'Keystone uri="{cloud.config.public_url}/identity"'}
