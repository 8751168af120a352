"""Fernet tokens: what a token carries, issuing one, and validating one.

The token itself holds only who, how, which scope and when (msgpack inside
Fernet); everything else — names, roles, whether anything was disabled or
revoked since — is looked up when the token is validated, so a revoked
token, a removed role or a disabled user takes effect at once. The lookups
come from an in-memory IdentityCache (cache.py) that every identity write
clears, so a validation usually runs no SQL at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from dataclasses import dataclass, field

import msgpack
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.cache import (
    INVALID,
    IdentityCache,
    Principal,
    Revocations,
)
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
    return value.replace(tzinfo=dt.UTC).timestamp()


def _from_ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)


class TokenProvider:
    def __init__(self, keys: KeyRepository, expiration: int, cache_seconds: float,
                 identity_cache: IdentityCache | None = None) -> None:
        self.keys = keys
        self.expiration = expiration
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Token]] = {}
        self.identity_cache = identity_cache or IdentityCache()

    def invalidate_cache(self) -> None:
        """Forget every cached validation and every cached identity row (after a
        revocation, a grant change, or any other identity write)."""
        self._cache.clear()
        self.identity_cache.clear()

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
        if not isinstance(payload, list) or payload[:1] != [PAYLOAD_VERSION] \
                or len(payload) != 9:
            return None
        return payload

    async def validate(self, conn_factory, token: str, *, use_cache: bool = True) -> Token:
        """The Token for this string, or ApiError 401/404 if it is not valid now.

        ``use_cache`` lets a recently validated token string skip decryption for
        ``cache_seconds``; either way the identity rows behind it come from the
        IdentityCache, which every identity write clears.
        """
        now = time.monotonic()
        if use_cache:
            hit = self._cache.get(token)
            if hit and hit[0] > now and hit[1].expires_at > store.utcnow():
                return hit[1]
        generation = self.identity_cache.generation
        payload = self._decode(token)
        if payload is None:
            raise ApiError(404, "Failed to validate token")
        tok = await self._resolve(conn_factory, payload)
        if self.cache_seconds and generation == self.identity_cache.generation:
            if len(self._cache) >= 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) < 10_000:
                self._cache[token] = (now + self.cache_seconds, tok)
        return tok

    async def _resolve(self, conn_factory, payload: list) -> Token:
        _, user_id, methods, scope_kind, scope_id, issued, expires, audit_ids, cred_id = payload
        issued_at, expires_at = _from_ts(issued), _from_ts(expires)
        invalid = ApiError(404, "Failed to validate token")
        utcnow = store.utcnow()
        if expires_at <= utcnow:
            raise invalid
        cache = self.identity_cache
        generation = cache.generation
        key = (user_id, scope_kind, scope_id, cred_id)
        revocations = cache.revocations()
        principal = cache.principal(key)
        if revocations is None or principal is None:
            async with conn_factory() as conn:
                if revocations is None:
                    revocations = await load_revocations(conn)
                if principal is None:
                    principal = await load_principal(conn, user_id, scope_kind, scope_id,
                                                     cred_id)
            cache.put_revocations(revocations, generation)
            cache.put_principal(key, principal, generation)
        if principal is INVALID:
            raise invalid
        project_id = scope_id if scope_kind == "project" else None
        if revocations.revoked(user_id, project_id, audit_ids, issued_at):
            raise invalid
        if principal.cred_expires_at is not None and principal.cred_expires_at <= utcnow:
            raise invalid
        return Token(user_id=user_id, user_name=principal.user_name,
                     user_domain_id=principal.user_domain_id,
                     user_domain_name=principal.user_domain_name, methods=list(methods),
                     scope=Scope(scope_kind, scope_id), issued_at=issued_at,
                     expires_at=expires_at, audit_ids=list(audit_ids),
                     roles=principal.roles if scope_kind is not None else [],
                     project=principal.project, domain=principal.domain,
                     app_cred=principal.app_cred)


async def load_principal(conn: AsyncConnection, user_id: str, scope_kind: str | None,
                         scope_id: str | None, cred_id: str | None):
    """What a token of this user, scope and credential resolves to now (a
    Principal), or INVALID when such a token does not validate."""
    try:
        user = await store.get_user(conn, user_id)
        user_domain = await store.get_domain(conn, user.domain_id)
    except ApiError:
        return INVALID
    if not user.enabled or not user_domain.enabled:
        return INVALID
    base = {"user_name": user.name, "user_domain_id": user_domain.id,
            "user_domain_name": user_domain.name}
    if scope_kind is None:
        return Principal(roles=[], **base)
    project = domain = None
    if scope_kind == "project":
        row = (await conn.execute(select(t.project).where(t.project.c.id == scope_id))).first()
        if row is None or not row.enabled:
            return INVALID
        pdomain = (await conn.execute(select(t.domain).where(
            t.domain.c.id == row.domain_id))).first()
        if pdomain is None or not pdomain.enabled:
            return INVALID
        project = {"id": row.id, "name": row.name,
                   "domain": {"id": pdomain.id, "name": pdomain.name}}
        target = row.id
    elif scope_kind == "domain":
        row = (await conn.execute(select(t.domain).where(t.domain.c.id == scope_id))).first()
        if row is None or not row.enabled:
            return INVALID
        domain = {"id": row.id, "name": row.name}
        target = row.id
    else:
        target = SYSTEM_TARGET
    roles = await store.effective_roles(conn, user_id, target)
    app_cred = expires = None
    if cred_id:
        found = await _app_cred_roles(conn, cred_id, user_id, roles)
        if found is None:
            return INVALID
        roles, app_cred, expires = found
    if not roles:
        return INVALID
    return Principal(roles=[{"id": r.id, "name": r.name} for r in roles], project=project,
                     domain=domain, app_cred=app_cred, cred_expires_at=expires, **base)


async def load_revocations(conn: AsyncConnection) -> Revocations:
    ev = t.revocation_event
    rows = (await conn.execute(select(ev.c.audit_id, ev.c.user_id, ev.c.project_id,
                                      ev.c.issued_before))).all()
    return Revocations(rows)


async def _app_cred_roles(conn: AsyncConnection, cred_id: str, user_id: str,
                          user_roles: list) -> tuple[list, dict, dt.datetime | None] | None:
    """The application credential's roles, each still held by its user; its
    description for the token; and when it expires."""
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
    info = {"id": cred.id, "name": cred.name, "restricted": not cred.unrestricted}
    return [r for r in user_roles if r.id in allowed], info, cred.expires_at


async def record_revocation(conn: AsyncConnection, *, audit_id: str | None = None,
                            user_id: str | None = None,
                            project_id: str | None = None) -> None:
    now = store.utcnow()
    await conn.execute(t.revocation_event.insert().values(
        id=store.new_id(), audit_id=audit_id, user_id=user_id, project_id=project_id,
        issued_before=now, revoked_at=now))
