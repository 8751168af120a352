"""Console tokens (Nova's ConsoleAuthToken): random, stored hashed, used once.

A console URL carries the token itself; the database keeps only its SHA-256
with the instance, the console type, the agent's host and where the guest's
console listens. ``consume`` deletes the row as the proxy connects, so a
token opens one session; a row past its expiry is never honoured and is
purged whenever a token is issued.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid as uuidlib
from datetime import timedelta

from sqlalchemy import delete, select

from cloudd.db import tables as t
from cloudd.services.compute.tasks import utcnow

T = t.console_auth_token


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def purge_expired(conn) -> int:
    res = await conn.execute(delete(T).where(T.c.expires_at <= utcnow()))
    return res.rowcount or 0


async def issue(conn, *, instance_uuid: str, console_type: str, compute_host: str,
                host: str, port: int, ttl: int,
                internal_access_path: str | None = None) -> str:
    """A new token for one console session; returns the token (never stored)."""
    await purge_expired(conn)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await conn.execute(T.insert().values(
        id=str(uuidlib.uuid4()), token_hash=digest(token), instance_uuid=instance_uuid,
        console_type=console_type, compute_host=compute_host, host=host, port=int(port),
        internal_access_path=internal_access_path, created_at=now,
        expires_at=now + timedelta(seconds=ttl)))
    return token


async def lookup(conn, token: str):
    """The live (unexpired) row of ``token``, or None. Does not use it up."""
    if not token:
        return None
    row = (await conn.execute(select(T).where(
        T.c.token_hash == digest(token), T.c.expires_at > utcnow()))).first()
    return row


async def consume(conn, token: str, console_types: tuple[str, ...]):
    """Use ``token`` up: its row if it was live and of one of ``console_types``
    (then deleted, so a second use finds nothing), else None."""
    row = await lookup(conn, token)
    if row is None or row.console_type not in console_types:
        return None
    res = await conn.execute(delete(T).where(T.c.id == row.id))
    return row if res.rowcount == 1 else None        # a racing connection won


async def delete_for_instance(conn, instance_uuid: str) -> None:
    """Forget an instance's tokens (Nova's clean_console_auths_for_instance)."""
    await conn.execute(delete(T).where(T.c.instance_uuid == instance_uuid))
