"""Quota limits, usage counted from live rows, and enforcement.

Public interface (``cfg`` is the cloud's Config or its QuotaConfig):

    async def limits_for(conn, cfg, project_id) -> dict[str, int]
        Each resource's limit: the project's override (table ``quota``), else
        the class "default" (table ``quota_class``), else ``[quota]`` in
        config. -1 is unlimited.
    async def defaults(conn, cfg) -> dict[str, int]
        The class "default" over config (what a project without overrides gets).
    async def usage(conn, project_id, user_id=None) -> dict[str, int]
        Counted now: instances, cores and ram of the project's live instances
        (cores/ram from ``instance.flavor`` JSON), server_groups of the project,
        key_pairs of ``user_id`` (0 without one); other resources 0.
    async def enforce(conn, cfg, project_id, user_id, deltas, *, message=None,
                      limits=None) -> None
        Call inside the write transaction that creates the resources. When
        some positive delta has a limit (not -1), first touches the
        project's ``quota_lock`` row (insert if missing, then UPDATE; on
        PostgreSQL the row lock serialises racing transactions until commit,
        on SQLite the writer lock already does), then counts the usage of
        the limited resources and raises ApiError(403) if any positive delta
        would pass its limit: "Quota exceeded for instances: Requested 1,
        but already used 2 of 2 instances" (``message`` replaces that text,
        e.g. keypairs' "Quota exceeded, too many key pairs."). Nothing
        unlimited is locked or counted: it cannot be overshot. ``limits``:
        what ``limits_for`` returned in this transaction (saves reading it).
    async def enforce_group_members(conn, cfg, project_id, group_id, adding) -> None
        Locks likewise; 403 "Quota exceeded, too many servers in group" when
        the group would pass server_group_members.

Typical use (server create, n servers of a flavor snapshot ``f``):
    await quota_store.enforce(conn, cfg, ctx.project_id, ctx.user_id,
                              {"instances": n, "cores": n * f["vcpus"],
                               "ram": n * f["memory_mb"]})
"""

from __future__ import annotations

import json

from sqlalchemy import func, select, update

from cloudd.db import tables as t
from cloudd.services.compute.tasks import utcnow
from cloudd.web.errors import ApiError

# Nova's QUOTAS.resources, in the order its API lists them.
RESOURCES = [
    "instances", "cores", "ram", "floating_ips", "fixed_ips", "metadata_items",
    "injected_files", "injected_file_content_bytes", "injected_file_path_bytes",
    "key_pairs", "security_groups", "security_group_rules", "server_groups",
    "server_group_members",
]
# nova-network leftovers: no config option, -1 unless set (Nova's AbsoluteResource).
LEGACY = ("floating_ips", "fixed_ips", "security_groups", "security_group_rules")
DEFAULT_CLASS = "default"


def config_defaults(cfg) -> dict[str, int]:
    quota = getattr(cfg, "quota", cfg)
    return {r: -1 if r in LEGACY else int(getattr(quota, r)) for r in RESOURCES}


async def class_limits(conn, class_name: str) -> dict[str, int]:
    rows = await conn.execute(select(t.quota_class.c.resource, t.quota_class.c.hard_limit)
                              .where(t.quota_class.c.class_name == class_name))
    return {r: v for r, v in rows if r in RESOURCES}


async def project_limits(conn, project_id: str) -> dict[str, int]:
    rows = await conn.execute(select(t.quota.c.resource, t.quota.c.hard_limit)
                              .where(t.quota.c.project_id == project_id))
    return {r: v for r, v in rows if r in RESOURCES}


async def defaults(conn, cfg) -> dict[str, int]:
    return {**config_defaults(cfg), **await class_limits(conn, DEFAULT_CLASS)}


async def limits_for(conn, cfg, project_id: str) -> dict[str, int]:
    return {**await defaults(conn, cfg), **await project_limits(conn, project_id)}


async def usage(conn, project_id: str, user_id: str | None = None,
                only: set[str] | None = None) -> dict[str, int]:
    """``only``: count just these resources (the others stay 0)."""
    used = dict.fromkeys(RESOURCES, 0)
    want = set(RESOURCES) if only is None else set(only)
    inst = t.instance
    live = (inst.c.project_id == project_id, inst.c.deleted.is_(False))
    if want & {"cores", "ram"}:
        rows = await conn.execute(select(inst.c.flavor).where(*live))
        for (flavor,) in rows:
            used["instances"] += 1
            try:
                snap = json.loads(flavor) if flavor else {}
            except ValueError:
                snap = {}
            used["cores"] += int(snap.get("vcpus") or 0)
            used["ram"] += int(snap.get("memory_mb") or 0)
    elif "instances" in want:
        used["instances"] = (await conn.execute(
            select(func.count()).select_from(inst).where(*live))).scalar_one()
    if "server_groups" in want:
        used["server_groups"] = (await conn.execute(
            select(func.count()).select_from(t.server_group)
            .where(t.server_group.c.project_id == project_id))).scalar_one()
    if user_id is not None and "key_pairs" in want:
        used["key_pairs"] = (await conn.execute(
            select(func.count()).select_from(t.keypair)
            .where(t.keypair.c.user_id == user_id))).scalar_one()
    return used


async def lock(conn, project_id: str) -> None:
    """Take the project's quota lock for the rest of the transaction."""
    now = utcnow()
    if conn.dialect.name == "postgresql":     # only the dialect in use is imported
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    ins = dialect_insert(
        t.quota_lock).values(project_id=project_id, touched_at=now)
    await conn.execute(ins.on_conflict_do_nothing(index_elements=["project_id"]))
    await conn.execute(update(t.quota_lock).where(t.quota_lock.c.project_id == project_id)
                       .values(touched_at=now))


def over_message(overs: list[str], deltas: dict[str, int], limits: dict[str, int],
                 used: dict[str, int]) -> str:
    """Nova's TooManyInstances text."""
    names = ", ".join(overs)
    reqs = ", ".join(str(deltas[r]) for r in overs)
    useds = ", ".join(str(used[r]) for r in overs)
    alloweds = ", ".join(str(limits[r]) for r in overs)
    return (f"Quota exceeded for {names}: Requested {reqs}, but already used {useds} "
            f"of {alloweds} {names}")


async def enforce(conn, cfg, project_id: str, user_id: str | None,
                  deltas: dict[str, int], *, message: str | None = None,
                  limits: dict[str, int] | None = None) -> None:
    if limits is None:
        limits = await limits_for(conn, cfg, project_id)
    limited = {r for r, delta in deltas.items() if delta > 0 and limits.get(r, -1) >= 0}
    if not limited:
        return
    await lock(conn, project_id)
    used = await usage(conn, project_id, user_id, only=limited)
    overs = [r for r, delta in deltas.items()
             if delta > 0 and limits.get(r, -1) >= 0 and used.get(r, 0) + delta > limits[r]]
    if overs:
        raise ApiError(403, message or over_message(overs, deltas, limits, used))


async def enforce_group_members(conn, cfg, project_id: str, group_id: str,
                                adding: int) -> None:
    await lock(conn, project_id)
    limit = (await limits_for(conn, cfg, project_id))["server_group_members"]
    if limit < 0 or adding <= 0:
        return
    members = (await conn.execute(
        select(func.count()).select_from(t.server_group_member)
        .where(t.server_group_member.c.group_id == group_id))).scalar_one()
    if members + adding > limit:
        raise ApiError(403, "Quota exceeded, too many servers in group")


async def set_limit(conn, project_id: str, resource: str, value: int) -> None:
    await _upsert(conn, t.quota, {"project_id": project_id}, resource, value)


async def set_class_limit(conn, class_name: str, resource: str, value: int) -> None:
    await _upsert(conn, t.quota_class, {"class_name": class_name}, resource, value)


async def _upsert(conn, table, key: dict, resource: str, value: int) -> None:
    where = [table.c[k] == v for k, v in key.items()] + [table.c.resource == resource]
    res = await conn.execute(update(table).where(*where).values(hard_limit=value))
    if res.rowcount == 0:
        await conn.execute(table.insert().values(**key, resource=resource, hard_limit=value))
