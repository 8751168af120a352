"""Fernet tokens: what a token carries, issuing one, and validating one.

The token itself holds only who, how, which scope and when (msgpack inside
Fernet); everything else — names, roles, whether anything was disabled or
revoked since — is looked up when the token is validated, so a revoked
token, a removed role or a disabled user takes effect at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from dataclasses import dataclass, field

import msgpack
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.fernet import KeyRepository
from cloudd.web.errors import ApiError

PAYLOAD_VERSION = 1
SYSTEM_TARGET = "system"


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


@dataclass
class Scope:
    kind: str | None = None      # "project", "domain", "system" or None (unscoped)
    id: str | None = None


@dataclass
class Token:
    """A validated token, with everything the APIs and policy need."""

    user_id: str
    user_name: str
    user_domain_id: str
    user_domain_name: str
    methods: list[str]
    scope: Scope
    issued_at: dt.datetime
    expires_at: dt.datetime
    audit_ids: list[str]
    roles: list[dict] = field(default_factory=list)
    project: dict | None = None      # {"id","name","domain":{"id","name"}}
    domain: dict | None = None       # {"id","name"}
    app_cred: dict | None = None     # {"id","name","restricted"}

    @property
    def project_id(self) -> str | None:
        return self.project["id"] if self.project else None

    @property
    def role_names(self) -> list[str]:
        return [r["name"] for r in self.roles]

    def policy_creds(self) -> dict:
        """The credentials dict policy rules are checked against (oslo.context's)."""
        return {
            "user_id": self.user_id,
            "user_domain_id": self.user_domain_id,
            "project_id": self.project_id,
            "project_domain_id": self.project["domain"]["id"] if self.project else None,
            "domain_id": self.domain["id"] if self.domain else None,
            "system_scope": "all" if self.scope.kind == "system" else None,
            "roles": [r.lower() for r in self.role_names],
            "is_admin_project": True,
            "service_roles": [],
        }


def _ts(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.timezone.utc).timestamp()


def _from_ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.timezone.utc).replace(tzinfo=None)


class TokenProvider:
    def __init__(self, keys: KeyRepository, expiration: int, cache_seconds: float) -> None:
        self.keys = keys
        self.expiration = expiration
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Token]] = {}

    def invalidate_cache(self) -> None:
        """Forget every cached validation (after a revocation or a grant change)."""
        self._cache.clear()

    def encode(self, user_id: str, methods: list[str], scope: Scope,
               audit_ids: list[str], expires_at: dt.datetime | None = None,
               app_cred_id: str | None = None) -> tuple[str, dt.datetime, dt.datetime]:
        issued = store.utcnow()
        expires = expires_at or issued + dt.timedelta(seconds=self.expiration)
        payload = [PAYLOAD_VERSION, user_id, methods, scope.kind, scope.id,
                   _ts(issued), _ts(expires), audit_ids, app_cred_id]
        return self.keys.encrypt(msgpack.packb(payload)), issued, expires

    def _decode(self, token: str) -> list | None:
        raw = self.keys.decrypt(token) if token and len(token) < 1024 else None
        if raw is None:
            return None
        try:
            payload = msgpack.unpackb(raw)
        except (ValueError, msgpack.ExtraData):
            return None
        if not isinstance(payload, list) or payload[:1] != [PAYLOAD_VERSION]:
            return None
        return payload

    async def validate(self, conn_factory, token: str, *, use_cache: bool = True) -> Token:
        """The Token for this string, or ApiError 401/404 if it is not valid now."""
        now = time.monotonic()
        if use_cache:
            hit = self._cache.get(token)
            if hit and hit[0] > now and hit[1].expires_at > store.utcnow():
                return hit[1]
        payload = self._decode(token)
        if payload is None:
            raise ApiError(404, "Failed to validate token")
        async with conn_factory() as conn:
            tok = await self._load(conn, payload)
        if self.cache_seconds and len(self._cache) < 10_000:
            self._cache[token] = (now + self.cache_seconds, tok)
        return tok

    async def _load(self, conn: AsyncConnection, payload: list) -> Token:
        _, user_id, methods, scope_kind, scope_id, issued, expires, audit_ids, cred_id = payload
        issued_at, expires_at = _from_ts(issued), _from_ts(expires)
        invalid = ApiError(404, "Failed to validate token")
        if expires_at <= store.utcnow():
            raise invalid
        try:
            user = await store.get_user(conn, user_id)
            user_domain = await store.get_domain(conn, user.domain_id)
        except ApiError:
            raise invalid from None
        if not user.enabled or not user_domain.enabled:
            raise invalid
        scope = Scope(scope_kind, scope_id)
        if await _revoked(conn, user_id, scope, audit_ids, issued_at):
            raise invalid
        tok = Token(user_id=user.id, user_name=user.name, user_domain_id=user_domain.id,
                    user_domain_name=user_domain.name, methods=list(methods), scope=scope,
                    issued_at=issued_at, expires_at=expires_at, audit_ids=list(audit_ids))
        if scope.kind is None:
            return tok
        target = SYSTEM_TARGET if scope.kind == "system" else scope.id
        try:
            await self._fill_scope(conn, tok)
        except ApiError:
            raise invalid from None
        roles = await store.effective_roles(conn, user_id, target)
        if cred_id:
            roles = await _app_cred_roles(conn, cred_id, user_id, roles, tok)
            if roles is None:
                raise invalid
        if not roles:
            raise invalid
        tok.roles = [{"id": r.id, "name": r.name} for r in roles]
        return tok

    async def _fill_scope(self, conn: AsyncConnection, tok: Token) -> None:
        if tok.scope.kind == "project":
            project = await store.get_project(conn, tok.scope.id)
            domain = await store.get_domain(conn, project.domain_id)
            if not project.enabled or not domain.enabled:
                raise ApiError(404, "project disabled")
            tok.project = {"id": project.id, "name": project.name,
                           "domain": {"id": domain.id, "name": domain.name}}
        elif tok.scope.kind == "domain":
            domain = await store.get_domain(conn, tok.scope.id)
            if not domain.enabled:
                raise ApiError(404, "domain disabled")
            tok.domain = {"id": domain.id, "name": domain.name}


async def _revoked(conn: AsyncConnection, user_id: str, scope: Scope,
                   audit_ids: list[str], issued_at: dt.datetime) -> bool:
    ev = t.revocation_event
    project_id = scope.id if scope.kind == "project" else None
    conditions = [and_(ev.c.audit_id == audit_ids[0], ev.c.user_id.is_(None))] \
        if audit_ids else []
    conditions.append(and_(ev.c.audit_id.is_(None), ev.c.user_id == user_id,
                           or_(ev.c.project_id.is_(None), ev.c.project_id == project_id)))
    if project_id:
        conditions.append(and_(ev.c.audit_id.is_(None), ev.c.user_id.is_(None),
                               ev.c.project_id == project_id))
    row = (await conn.execute(select(ev.c.id).where(
        ev.c.issued_before >= issued_at, or_(*conditions)).limit(1))).first()
    return row is not None


async def _app_cred_roles(conn: AsyncConnection, cred_id: str, user_id: str,
                          user_roles: list, tok: Token) -> list | None:
    """The application credential's roles, each still held by its user."""
    ac = t.application_credential
    cred = (await conn.execute(select(ac).where(ac.c.id == cred_id))).first()
    if cred is None or cred.user_id != user_id:
        return None
    if cred.expires_at is not None and cred.expires_at <= store.utcnow():
        return None
    acr = t.application_credential_role
    wanted = set((await conn.execute(select(acr.c.role_id).where(
        acr.c.application_credential_id == cred_id))).scalars().all())
    held = {r.id for r in user_roles}
    if not wanted <= held:
        return None
    implies = await store.implication_map(conn)
    allowed = store.expand_implied(wanted, implies)
    tok.app_cred = {"id": cred.id, "name": cred.name, "restricted": not cred.unrestricted}
    return [r for r in user_roles if r.id in allowed]


async def record_revocation(conn: AsyncConnection, *, audit_id: str | None = None,
                            user_id: str | None = None,
                            project_id: str | None = None) -> None:
    now = store.utcnow()
    await conn.execute(t.revocation_event.insert().values(
        id=store.new_id(), audit_id=audit_id, user_id=user_id, project_id=project_id,
        issued_before=now, revoked_at=now))
