"""Tags on networks, subnets, ports and security groups (Neutron's
standard-attr-tag): /v2.0/<collection>/{id}/tags[/{tag}], and the list
filters tags, tags-any, not-tags, not-tags-any."""

from __future__ import annotations

import json

import sqlalchemy as sa
from aiohttp import web

from cloudd.db import tables as t
from cloudd.services.network import common, store
from cloudd.services.network.common import bad_request, error, reply, utcnow

# collection -> (table, resource name, not-found error)
KINDS = {
    "networks": (t.network, "network", store.network_not_found),
    "subnets": (t.subnet, "subnet", store.subnet_not_found),
    "ports": (t.port, "port", store.port_not_found),
    "security-groups": (t.security_group, "security_group",
                        lambda i: error(404, "SecurityGroupNotFound",
                                        f"Security group {i} does not exist")),
}
MAX_TAG = 255


def _tags_of(values: list[str]) -> set[str]:
    out: set[str] = set()
    for value in values:
        out |= {v for v in value.split(",") if v}
    return out


def special_filters() -> dict:
    """The tag filters of Neutron's list queries (comma separated, repeatable)."""
    return {
        "tags": lambda item, w: _tags_of(w) <= set(item.get("tags", [])),
        "tags-any": lambda item, w: bool(_tags_of(w) & set(item.get("tags", []))),
        "not-tags": lambda item, w: not _tags_of(w) <= set(item.get("tags", [])),
        "not-tags-any": lambda item, w: not _tags_of(w) & set(item.get("tags", [])),
    }


def _check(tag: str) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG or "," in tag:
        raise bad_request(f"Invalid input for tags. Reason: '{tag}' is not a valid tag.")
    return tag


async def _load(request: web.Request, conn, write: bool) -> tuple[sa.Table, dict]:
    collection = request.match_info["collection"]
    if collection not in KINDS:
        raise error(404, "HTTPNotFound", "The resource could not be found.")
    table, name, missing = KINDS[collection]
    rid = request.match_info["id"]
    q = sa.select(table).where(table.c.id == rid)
    if write:
        q = q.with_for_update()
    row = (await conn.execute(q)).first()
    ctx = common.context(request)
    target = dict(row._mapping) if row else {}
    seen = row is not None and (
        common.is_admin(ctx) or target["project_id"] == ctx.project_id
        or (name == "network" and (target["shared"] or target["router_external"])))
    if not seen:
        raise missing(rid)
    if write:
        common.enforce(ctx, f"update_{name}", target)
    return table, target


async def _save(conn, table, row: dict, tags: list[str]) -> None:
    await conn.execute(table.update().where(table.c.id == row["id"]).values(
        tags=json.dumps(sorted(set(tags))), updated_at=utcnow(),
        revision_number=row["revision_number"] + 1))


async def get_tags(request: web.Request) -> web.Response:
    async with common.cloud(request).db.read() as conn:
        _, row = await _load(request, conn, False)
    return reply({"tags": json.loads(row["tags"])})


async def get_tag(request: web.Request) -> web.Response:
    async with common.cloud(request).db.read() as conn:
        _, row = await _load(request, conn, False)
    tag = request.match_info["tag"]
    if tag not in json.loads(row["tags"]):
        raise error(404, "TagNotFound", f"Tag {tag} could not be found.")
    return web.Response(status=204)


async def put_tags(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("tags"), list):
        raise bad_request("Invalid input for tags. Reason: a list of tags is required.")
    tags = [_check(tag) for tag in data["tags"]]
    async with common.cloud(request).db.write() as conn:
        table, row = await _load(request, conn, True)
        await _save(conn, table, row, tags)
    return reply({"tags": sorted(set(tags))})


async def put_tag(request: web.Request) -> web.Response:
    tag = _check(request.match_info["tag"])
    async with common.cloud(request).db.write() as conn:
        table, row = await _load(request, conn, True)
        await _save(conn, table, row, [*json.loads(row["tags"]), tag])
    return web.Response(status=201)


async def delete_tags(request: web.Request) -> web.Response:
    async with common.cloud(request).db.write() as conn:
        table, row = await _load(request, conn, True)
        await _save(conn, table, row, [])
    return web.Response(status=204)


async def delete_tag(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    async with common.cloud(request).db.write() as conn:
        table, row = await _load(request, conn, True)
        tags = json.loads(row["tags"])
        if tag not in tags:
            raise error(404, "TagNotFound", f"Tag {tag} could not be found.")
        await _save(conn, table, row, [x for x in tags if x != tag])
    return web.Response(status=204)


_BASE = "/v2.0/{collection:networks|subnets|ports|security-groups}/{id}/tags"
ROUTES = [
    ("GET", _BASE, get_tags),
    ("PUT", _BASE, put_tags),
    ("DELETE", _BASE, delete_tags),
    ("GET", _BASE + "/{tag}", get_tag),
    ("PUT", _BASE + "/{tag}", put_tag),
    ("DELETE", _BASE + "/{tag}", delete_tag),
]
