"""Identity lookups shared by the handlers: domains, projects, users, roles."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import bcrypt
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t
from cloudd.web.errors import ApiError, not_found

DEFAULT_DOMAIN_ID = "default"


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def isotime(value: dt.datetime | None) -> str | None:
    """Keystone's timestamp form: 2026-01-01T00:00:00.000000Z."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def hash_secret(secret: str, rounds: int) -> str:
    """bcrypt off the event loop (a hash costs a quarter second by design)."""
    data = secret.encode()[:72]
    hashed = await asyncio.to_thread(bcrypt.hashpw, data, bcrypt.gensalt(rounds))
    return hashed.decode()


async def check_secret(secret: str, hashed: str | None) -> bool:
    if not hashed:
        return False
    return await asyncio.to_thread(bcrypt.checkpw, secret.encode()[:72], hashed.encode())


async def _get(conn: AsyncConnection, table, row_id: str, what: str) -> Row:
    row = (await conn.execute(select(table).where(table.c.id == row_id))).first()
    if row is None:
        raise not_found(f"Could not find {what}: {row_id}.")
    return row


async def get_domain(conn: AsyncConnection, domain_id: str) -> Row:
    return await _get(conn, t.domain, domain_id, "domain")


async def find_domain(conn: AsyncConnection, *, id: str | None = None,
                      name: str | None = None) -> Row:
    """A domain by id or by name (as auth requests name them)."""
    if id:
        return await get_domain(conn, id)
    row = (await conn.execute(select(t.domain).where(t.domain.c.name == name))).first()
    if row is None:
        raise ApiError(401, "The request you have made requires authentication.")
    return row


async def get_project(conn: AsyncConnection, project_id: str) -> Row:
    return await _get(conn, t.project, project_id, "project")


async def get_user(conn: AsyncConnection, user_id: str) -> Row:
    return await _get(conn, t.user, user_id, "user")


async def get_role(conn: AsyncConnection, role_id: str) -> Row:
    return await _get(conn, t.role, role_id, "role")


async def implication_map(conn: AsyncConnection) -> dict[str, set[str]]:
    rows = (await conn.execute(select(t.implied_role))).all()
    out: dict[str, set[str]] = {}
    for prior, implied in rows:
        out.setdefault(prior, set()).add(implied)
    return out


def expand_implied(role_ids: set[str], implies: dict[str, set[str]]) -> set[str]:
    """Every role reachable from role_ids through implications (cycle-safe)."""
    seen = set(role_ids)
    todo = list(role_ids)
    while todo:
        for nxt in implies.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


async def direct_role_ids(conn: AsyncConnection, user_id: str, target_id: str) -> set[str]:
    """Roles granted to a user on a target, with inherited grants from parents.

    A project also receives grants made on its domain or ancestors with
    ``inherited`` set (Keystone's OS-INHERIT).
    """
    ra = t.role_assignment
    rows = (await conn.execute(
        select(ra.c.role_id).where(ra.c.actor_id == user_id, ra.c.target_id == target_id,
                                   ra.c.inherited.is_(False)))).scalars().all()
    found = set(rows)
    ancestors = await _ancestors(conn, target_id)
    if ancestors:
        rows = (await conn.execute(
            select(ra.c.role_id).where(ra.c.actor_id == user_id,
                                       ra.c.target_id.in_(ancestors),
                                       ra.c.inherited.is_(True)))).scalars().all()
        found.update(rows)
    return found


async def _ancestors(conn: AsyncConnection, project_id: str) -> list[str]:
    out: list[str] = []
    current = project_id
    for _ in range(32):
        row = (await conn.execute(select(t.project.c.parent_id, t.project.c.domain_id)
                                  .where(t.project.c.id == current))).first()
        if row is None:
            break
        if row.domain_id not in out:
            out.append(row.domain_id)
        if row.parent_id is None:
            break
        out.append(row.parent_id)
        current = row.parent_id
    return out


async def effective_roles(conn: AsyncConnection, user_id: str,
                          target_id: str) -> list[Row]:
    """The role rows a user holds on a target, implied roles included."""
    direct = await direct_role_ids(conn, user_id, target_id)
    if not direct:
        return []
    ids = expand_implied(direct, await implication_map(conn))
    return list((await conn.execute(
        select(t.role).where(t.role.c.id.in_(ids)).order_by(t.role.c.name))).all())


def role_domain(row: Row) -> str | None:
    return None if row.domain_id == t.GLOBAL_ROLE_DOMAIN else row.domain_id
