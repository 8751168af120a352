"""Network quotas (Neutron's quotasv2 and quota_details): per-project limits on
networks, subnets, ports, security groups and rules; defaults from [network]."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web

from cloudd.db import tables as t
from cloudd.services.network import common
from cloudd.services.network.common import bad_request, enforce, error, reply

RESOURCES = {
    "network": t.network,
    "subnet": t.subnet,
    "port": t.port,
    "security_group": t.security_group,
    "security_group_rule": t.security_group_rule,
}


def defaults(cfg) -> dict[str, int]:
    net = cfg.network
    return {name: getattr(net, f"quota_{name}") for name in RESOURCES}


async def limits(conn, cfg, project_id: str) -> dict[str, int]:
    out = defaults(cfg)
    q = t.network_quota
    for row in (await conn.execute(sa.select(q.c.resource, q.c.hard_limit)
                                   .where(q.c.project_id == project_id))).all():
        if row.resource in out:
            out[row.resource] = row.hard_limit
    return out


async def used(conn, project_id: str, resource: str) -> int:
    table = RESOURCES[resource]
    return (await conn.execute(sa.select(sa.func.count()).select_from(table)
                               .where(table.c.project_id == project_id))).scalar_one()


async def check(conn, cfg, project_id: str, resource: str, adding: int = 1) -> None:
    """OverQuota (409) when ``adding`` more would pass the project's limit."""
    limit = (await limits(conn, cfg, project_id))[resource]
    if limit < 0:
        return
    if await used(conn, project_id, resource) + adding > limit:
        raise common.over_quota(resource)


# -- the API -----------------------------------------------------------------------------

def _with_project(values: dict, project_id: str) -> dict:
    return {**values, "project_id": project_id, "tenant_id": project_id}


async def list_quotas(request: web.Request) -> web.Response:
    """Every project with a limit of its own (admin)."""
    ctx = common.context(request)
    enforce(ctx, "get_quota", {"project_id": None})
    cfg = common.cloud(request).config
    async with common.cloud(request).db.read() as conn:
        q = t.network_quota
        projects = (await conn.execute(sa.select(q.c.project_id).distinct())).scalars().all()
        out = [_with_project(await limits(conn, cfg, p), p) for p in sorted(projects)]
    return reply({"quotas": out})


def _project(request: web.Request) -> str:
    return request.match_info["project_id"]


async def show_quota(request: web.Request) -> web.Response:
    ctx = common.context(request)
    project = _project(request)
    enforce(ctx, "get_quota", {"project_id": project})
    cloud = common.cloud(request)
    async with cloud.db.read() as conn:
        return reply({"quota": await limits(conn, cloud.config, project)})


async def show_default(request: web.Request) -> web.Response:
    ctx = common.context(request)
    project = _project(request)
    enforce(ctx, "get_quota", {"project_id": project})
    return reply({"quota": defaults(common.cloud(request).config)})


async def show_details(request: web.Request) -> web.Response:
    ctx = common.context(request)
    project = _project(request)
    enforce(ctx, "get_quota", {"project_id": project})
    cloud = common.cloud(request)
    async with cloud.db.read() as conn:
        lim = await limits(conn, cloud.config, project)
        out = {name: {"limit": value, "used": await used(conn, project, name), "reserved": 0}
               for name, value in lim.items()}
    return reply({"quota": out})


async def update_quota(request: web.Request) -> web.Response:
    ctx = common.context(request)
    project = _project(request)
    enforce(ctx, "update_quota", {"project_id": project})
    body = await common.body_of(request, "quota")
    values: dict[str, int] = {}
    check_limit = common.to_bool(body.pop("check_limit", False), "check_limit")
    for name, value in body.items():
        if name not in RESOURCES:
            raise bad_request(f"Unrecognized attribute(s) '{name}'")
        number = common.to_int(value, name)
        if number < -1:
            raise bad_request(f"Invalid input for {name}. Reason: '{number}' should be "
                              "greater than or equal to -1.")
        values[name] = number
    cloud = common.cloud(request)
    q = t.network_quota
    async with cloud.db.write() as conn:
        for name, number in values.items():
            in_use = await used(conn, project, name) if check_limit and number >= 0 else 0
            if number < in_use:
                raise bad_request(f"Quota limit {number} for {name} must be greater than "
                                  f"or equal to already used and reserved {in_use}.")
        for name, number in values.items():
            done = await conn.execute(q.update().where(q.c.project_id == project,
                                                       q.c.resource == name)
                                      .values(hard_limit=number))
            if not done.rowcount:
                await conn.execute(q.insert().values(project_id=project, resource=name,
                                                     hard_limit=number))
        return reply({"quota": await limits(conn, cloud.config, project)})


async def delete_quota(request: web.Request) -> web.Response:
    ctx = common.context(request)
    project = _project(request)
    enforce(ctx, "delete_quota", {"project_id": project})
    q = t.network_quota
    async with common.cloud(request).db.write() as conn:
        done = await conn.execute(q.delete().where(q.c.project_id == project))
    if not done.rowcount:
        raise error(404, "TenantQuotaNotFound",
                    f"Quota for tenant {project} could not be found.")
    return web.Response(status=204)


ROUTES = [
    ("GET", "/v2.0/quotas", list_quotas),
    ("GET", "/v2.0/quotas/{project_id}", show_quota),
    ("PUT", "/v2.0/quotas/{project_id}", update_quota),
    ("DELETE", "/v2.0/quotas/{project_id}", delete_quota),
    ("GET", "/v2.0/quotas/{project_id}/default", show_default),
    ("GET", "/v2.0/quotas/{project_id}/details", show_details),
]
