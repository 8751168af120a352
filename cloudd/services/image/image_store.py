"""The SQL the Image API runs: images with their properties, tags and members.

An image is handled as a dict: the ``image`` row's columns plus
``properties`` (name -> string) and ``tags`` (a sorted list).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cloudd.db import tables as t


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def _attach(conn: AsyncConnection, rows: list) -> list[dict]:
    images = [dict(r._mapping) for r in rows]
    if not images:
        return images
    ids = [i["id"] for i in images]
    props: dict[str, dict] = {i: {} for i in ids}
    tags: dict[str, list] = {i: [] for i in ids}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for r in await conn.execute(sa.select(t.image_property).where(
                t.image_property.c.image_id.in_(part))):
            props[r.image_id][r.name] = r.value
        for r in await conn.execute(sa.select(t.image_tag).where(
                t.image_tag.c.image_id.in_(part))):
            tags[r.image_id].append(r.value)
    for i in images:
        i["properties"] = props[i["id"]]
        i["tags"] = sorted(tags[i["id"]])
    return images


async def get(conn: AsyncConnection, image_id: str, *, lock: bool = False) -> dict | None:
    """The image, or None; ``lock`` holds its row until the transaction ends
    (PostgreSQL; SQLite's write transactions are serialised anyway)."""
    q = sa.select(t.image).where(t.image.c.id == image_id)
    if lock:
        q = q.with_for_update()
    rows = (await conn.execute(q)).all()
    found = await _attach(conn, rows)
    return found[0] if found else None


async def member(conn: AsyncConnection, image_id: str, project: str | None) -> dict | None:
    if not project:
        return None
    row = (await conn.execute(sa.select(t.image_member).where(
        t.image_member.c.image_id == image_id,
        t.image_member.c.member == project))).first()
    return dict(row._mapping) if row else None


async def members(conn: AsyncConnection, image_id: str,
                  only: str | None = None) -> list[dict]:
    q = sa.select(t.image_member).where(t.image_member.c.image_id == image_id)
    if only is not None:
        q = q.where(t.image_member.c.member == only)
    rows = await conn.execute(q.order_by(t.image_member.c.created_at,
                                         t.image_member.c.member))
    return [dict(r._mapping) for r in rows]


async def insert(conn: AsyncConnection, image: dict, properties: dict[str, str],
                 tags: list[str]) -> None:
    await conn.execute(t.image.insert().values(**image))
    if properties:
        await conn.execute(t.image_property.insert(), [
            {"image_id": image["id"], "name": k, "value": v} for k, v in properties.items()])
    if tags:
        await conn.execute(t.image_tag.insert(), [
            {"image_id": image["id"], "value": v} for v in sorted(set(tags))])


async def update(conn: AsyncConnection, image_id: str, values: dict[str, Any],
                 expect_status: str | tuple[str, ...] | None = None) -> bool:
    """Change columns (updated_at too); with ``expect_status``, only from that
    status (compare-and-swap). True when the row changed."""
    q = t.image.update().where(t.image.c.id == image_id)
    if expect_status is not None:
        allowed = (expect_status,) if isinstance(expect_status, str) else expect_status
        q = q.where(t.image.c.status.in_(allowed))
    res = await conn.execute(q.values(**values, updated_at=utcnow()))
    return res.rowcount == 1


async def replace_properties(conn: AsyncConnection, image_id: str,
                             properties: dict[str, str]) -> None:
    await conn.execute(t.image_property.delete().where(
        t.image_property.c.image_id == image_id))
    if properties:
        await conn.execute(t.image_property.insert(), [
            {"image_id": image_id, "name": k, "value": v} for k, v in properties.items()])


async def replace_tags(conn: AsyncConnection, image_id: str, tags: list[str]) -> None:
    await conn.execute(t.image_tag.delete().where(t.image_tag.c.image_id == image_id))
    if tags:
        await conn.execute(t.image_tag.insert(), [
            {"image_id": image_id, "value": v} for v in sorted(set(tags))])


async def delete(conn: AsyncConnection, image_id: str) -> bool:
    res = await conn.execute(t.image.delete().where(t.image.c.id == image_id))
    return res.rowcount == 1


# --- listing ------------------------------------------------------------------------

_NULLABLE_SORT = {"name": "", "size": -1, "disk_format": "", "container_format": ""}


def sort_column(key: str):
    col = t.image.c[key]
    if key in _NULLABLE_SORT:
        return sa.func.coalesce(col, _NULLABLE_SORT[key])
    return col


def sort_value(image: dict, key: str):
    value = image[key]
    return _NULLABLE_SORT.get(key) if value is None else value


def visible_clause(project: str | None, member_status: str):
    """Glance's _select_images_query for a regular user: public and community
    images, the project's own, and shared images it is a member of."""
    clauses = [t.image.c.visibility.in_(("public", "community"))]
    if project:
        clauses.append(t.image.c.owner == project)
        member = sa.select(t.image_member.c.image_id).where(
            t.image_member.c.image_id == t.image.c.id,
            t.image_member.c.member == project)
        if member_status != "all":
            member = member.where(t.image_member.c.status == member_status)
        clauses.append(sa.and_(t.image.c.visibility == "shared", member.exists()))
    return sa.or_(*clauses)


async def list_images(conn: AsyncConnection, conditions: list, sort: list[tuple[str, str]],
                      marker: dict | None, limit: int) -> list[dict]:
    q = sa.select(t.image).where(*conditions)
    if marker is not None:
        q = q.where(_after(marker, sort))
    order = [sort_column(k).asc() if d == "asc" else sort_column(k).desc() for k, d in sort]
    rows = (await conn.execute(q.order_by(*order).limit(limit))).all()
    return await _attach(conn, rows)


def _after(marker: dict, sort: list[tuple[str, str]]):
    """Rows after the marker in the sort order (keyset pagination)."""
    ors = []
    for i, (key, direction) in enumerate(sort):
        ands = [sort_column(k) == sort_value(marker, k) for k, _ in sort[:i]]
        col, value = sort_column(key), sort_value(marker, key)
        ands.append(col > value if direction == "asc" else col < value)
        ors.append(sa.and_(*ands))
    return sa.or_(*ors)


def tag_clause(tag: str):
    return sa.select(t.image_tag.c.image_id).where(
        t.image_tag.c.image_id == t.image.c.id, t.image_tag.c.value == tag).exists()


def property_clause(name: str, value: str):
    return sa.select(t.image_property.c.image_id).where(
        t.image_property.c.image_id == t.image.c.id, t.image_property.c.name == name,
        t.image_property.c.value == value).exists()


async def count_members(conn: AsyncConnection, image_id: str) -> int:
    return (await conn.execute(sa.select(sa.func.count()).select_from(t.image_member).where(
        t.image_member.c.image_id == image_id))).scalar_one()


async def stuck(conn: AsyncConnection) -> list[dict]:
    """Images a previous run left mid-upload or mid-import."""
    rows = await conn.execute(sa.select(t.image.c.id, t.image.c.status).where(
        t.image.c.status.in_(("saving", "importing"))))
    return [dict(r._mapping) for r in rows]


async def ids_with_status(conn: AsyncConnection, statuses: tuple[str, ...]) -> set[str]:
    return set((await conn.execute(sa.select(t.image.c.id).where(
        t.image.c.status.in_(statuses)))).scalars())
