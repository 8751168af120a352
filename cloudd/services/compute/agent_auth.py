"""Host credentials: what ``cloudd host add NAME`` issues and the agent hub checks.

A credential is a random secret shown once; the database keeps only its
bcrypt hash (``agent_credential``). An agent presents it on the websocket
upgrade as ``Authorization: Bearer HOST:SECRET``. bcrypt runs in a thread;
a successful check is remembered in memory (keyed by the stored hash, so a
re-issued or removed credential is never served from the cache).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import delete, select

from cloudd.db import tables as t
from cloudd.services.compute.tasks import utcnow
from cloudd.services.identity.store import check_secret, hash_secret

MAX_HOST_LENGTH = 255


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def valid_host_name(name: str) -> bool:
    return bool(name) and len(name) <= MAX_HOST_LENGTH and ":" not in name \
        and name.isprintable() and name.strip() == name


async def issue(db, host: str, rounds: int) -> tuple[str, str]:
    """Create or replace ``host``'s credential; returns (plaintext secret, its hash)."""
    if not valid_host_name(host):
        raise ValueError(f"invalid host name {host!r}: use up to {MAX_HOST_LENGTH} "
                         "printable characters, no colon, no surrounding spaces")
    secret = new_secret()
    hashed = await hash_secret(secret, rounds)
    cred = t.agent_credential
    async with db.write() as conn:
        await conn.execute(delete(cred).where(cred.c.host == host))
        await conn.execute(cred.insert().values(host=host, secret_hash=hashed,
                                                created_at=utcnow()))
    return secret, hashed


async def remove(db, host: str) -> bool:
    cred = t.agent_credential
    async with db.write() as conn:
        result = await conn.execute(delete(cred).where(cred.c.host == host))
    return result.rowcount > 0


async def listing(db) -> list:
    """Every credential's host and creation time, with its nova-compute service (if any)."""
    cred, svc = t.agent_credential, t.compute_service
    async with db.read() as conn:
        return (await conn.execute(
            select(cred.c.host, cred.c.created_at, svc.c.last_seen_at, svc.c.forced_down,
                   svc.c.updated_at, svc.c.created_at.label("service_created_at"))
            .select_from(cred.outerjoin(svc, (svc.c.host == cred.c.host)
                                        & (svc.c.binary_name == "nova-compute")))
            .order_by(cred.c.host))).all()


def parse_authorization(header: str | None) -> tuple[str, str] | None:
    """``Bearer HOST:SECRET`` -> (host, secret), or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    host, sep, secret = value.strip().rpartition(":")
    if not sep or not host or not secret:
        return None
    return host, secret


class CredentialChecker:
    """Checks host secrets against the database, remembering successes."""

    def __init__(self, db) -> None:
        self.db = db
        self._good: dict[str, tuple[str, bytes]] = {}     # host -> (hash, sha256(secret))

    def remember(self, host: str, secret: str, hashed: str) -> None:
        self._good[host] = (hashed, hashlib.sha256(secret.encode()).digest())

    async def stored_hash(self, host: str) -> str | None:
        cred = t.agent_credential
        async with self.db.read() as conn:
            return (await conn.execute(select(cred.c.secret_hash)
                                       .where(cred.c.host == host))).scalar()

    async def check(self, host: str, secret: str) -> bool:
        hashed = await self.stored_hash(host)
        if hashed is None:
            self._good.pop(host, None)
            return False
        digest = hashlib.sha256(secret.encode()).digest()
        known = self._good.get(host)
        if known and known[0] == hashed and hmac.compare_digest(known[1], digest):
            return True
        if await check_secret(secret, hashed):
            self._good[host] = (hashed, digest)
            return True
        return False

    async def still_valid(self, hosts: list[str]) -> set[str]:
        """Which of ``hosts`` still have a credential."""
        if not hosts:
            return set()
        cred = t.agent_credential
        async with self.db.read() as conn:
            rows = await conn.execute(select(cred.c.host).where(cred.c.host.in_(hosts)))
            return {r.host for r in rows}
