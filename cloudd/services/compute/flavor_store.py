"""Flavor SQL: lookups with Nova's visibility rule, the seed flavors, access.

For other compute modules (servers, resize):

    async def get_visible(conn, flavor_id, project_id, is_admin) -> Row | None
        The flavor row if the caller may see it: admins see every flavor,
        others public ones and private ones their project was given access to.
    async def snapshot(conn, flavor_id) -> dict
        The flavor as ``instance.flavor`` JSON holds it (docs/compute-design.md):
        {"id", "name", "vcpus", "memory_mb", "root_gb", "ephemeral_gb", "swap",
         "rxtx_factor", "is_public", "description", "extra_specs"}.
    async def extra_specs(conn, flavor_id) -> dict[str, str]

Not found is ``None`` here; handlers turn it into Nova's 404
"Flavor X could not be found." (``not_found(flavor_id)``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError

# DevStack's flavors (id, name, ram MB, vcpus, disk GB).
SEED = [("1", "m1.tiny", 512, 1, 1), ("2", "m1.small", 2048, 1, 20),
        ("3", "m1.medium", 4096, 2, 40), ("4", "m1.large", 8192, 4, 80),
        ("5", "m1.xlarge", 16384, 8, 160)]


def not_found(flavor_id: str) -> ApiError:
    return ApiError(404, f"Flavor {flavor_id} could not be found.")


async def seed(db) -> None:
    """Create the DevStack flavors on first start; nothing if any flavor exists."""
    async with db.write() as conn:
        if (await conn.execute(select(t.flavor.c.id).limit(1))).first():
            return
        now = utcnow()
        for fid, name, ram, vcpus, disk in SEED:
            await conn.execute(t.flavor.insert().values(
                id=fid, name=name, memory_mb=ram, vcpus=vcpus, root_gb=disk,
                ephemeral_gb=0, swap=0, rxtx_factor=1.0, is_public=True,
                disabled=False, description=None, created_at=now))


def visible_clause(project_id: str | None, is_admin: bool):
    """Nova's filter for non-admins: public, or the project has access."""
    if is_admin:
        return None
    access = exists().where(and_(t.flavor_project.c.flavor_id == t.flavor.c.id,
                                 t.flavor_project.c.project_id == (project_id or "")))
    return or_(t.flavor.c.is_public.is_(True), access)


async def get(conn, flavor_id: str):
    return (await conn.execute(t.flavor.select().where(t.flavor.c.id == flavor_id))).first()


async def get_visible(conn, flavor_id: str, project_id: str | None, is_admin: bool):
    query = t.flavor.select().where(t.flavor.c.id == flavor_id)
    clause = visible_clause(project_id, is_admin)
    if clause is not None:
        query = query.where(clause)
    return (await conn.execute(query)).first()


async def extra_specs(conn, flavor_id: str) -> dict[str, str]:
    rows = await conn.execute(select(t.flavor_extra_spec.c.spec_key,
                                     t.flavor_extra_spec.c.spec_value)
                              .where(t.flavor_extra_spec.c.flavor_id == flavor_id)
                              .order_by(t.flavor_extra_spec.c.spec_key))
    return {k: v for k, v in rows}


async def extra_specs_of(conn, flavor_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {fid: {} for fid in flavor_ids}
    if not flavor_ids:
        return out
    rows = await conn.execute(select(t.flavor_extra_spec)
                              .where(t.flavor_extra_spec.c.flavor_id.in_(flavor_ids)))
    for row in rows:
        out[row.flavor_id][row.spec_key] = row.spec_value
    return out


async def snapshot(conn, flavor_id: str) -> dict:
    """The instance.flavor JSON of one flavor (KeyError-free: 404 if missing)."""
    row = await get(conn, flavor_id)
    if row is None:
        raise not_found(flavor_id)
    return {"id": row.id, "name": row.name, "vcpus": row.vcpus,
            "memory_mb": row.memory_mb, "root_gb": row.root_gb,
            "ephemeral_gb": row.ephemeral_gb, "swap": row.swap,
            "rxtx_factor": row.rxtx_factor, "is_public": bool(row.is_public),
            "description": row.description,
            "extra_specs": await extra_specs(conn, flavor_id)}


async def list_flavors(conn, *, project_id: str | None, is_admin: bool,
                       is_public: bool | None, min_ram: int | None,
                       min_disk: int | None, only_enabled: bool) -> list:
    """Rows matching Nova's FlavorList.get_all filters (unsorted)."""
    query = t.flavor.select()
    clause = visible_clause(project_id, is_admin)
    if clause is not None:
        query = query.where(clause)
    if min_ram is not None:
        query = query.where(t.flavor.c.memory_mb >= min_ram)
    if min_disk is not None:
        query = query.where(t.flavor.c.root_gb >= min_disk)
    if only_enabled:
        query = query.where(t.flavor.c.disabled.is_(False))
    if is_public is not None:
        if is_public and project_id is not None:
            has_access = exists().where(and_(
                t.flavor_project.c.flavor_id == t.flavor.c.id,
                t.flavor_project.c.project_id == project_id))
            query = query.where(or_(t.flavor.c.is_public.is_(True), has_access))
        else:
            query = query.where(t.flavor.c.is_public.is_(is_public))
    return list(await conn.execute(query))


async def create(conn, *, flavor_id: str | None, name: str, memory_mb: int, vcpus: int,
                 root_gb: int, ephemeral_gb: int, swap: int, rxtx_factor: float,
                 is_public: bool, description: str | None):
    """Insert a flavor; 409 on a taken name or id (Nova's messages)."""
    flavor_id = flavor_id or str(uuid.uuid4())
    if (await conn.execute(select(t.flavor.c.id).where(t.flavor.c.name == name))).first():
        raise ApiError(409, f"Flavor with name {name} already exists.")
    if await get(conn, flavor_id):
        raise ApiError(409, f"Flavor with ID {flavor_id} already exists.")
    try:
        async with conn.begin_nested():
            await conn.execute(t.flavor.insert().values(
                id=flavor_id, name=name, memory_mb=memory_mb, vcpus=vcpus,
                root_gb=root_gb, ephemeral_gb=ephemeral_gb, swap=swap,
                rxtx_factor=rxtx_factor, is_public=is_public, disabled=False,
                description=description, created_at=utcnow()))
    except IntegrityError:
        raise ApiError(409, f"Flavor with name {name} already exists.") from None
    return await get(conn, flavor_id)


async def projects(conn, flavor_id: str) -> list[str]:
    rows = await conn.execute(select(t.flavor_project.c.project_id)
                              .where(t.flavor_project.c.flavor_id == flavor_id)
                              .order_by(t.flavor_project.c.project_id))
    return [r[0] for r in rows]
