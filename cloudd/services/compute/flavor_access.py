"""Flavor access: who may use a private flavor.

GET /flavors/{id}/os-flavor-access and the flavor actions addTenantAccess /
removeTenantAccess (Nova's flavor_access.py). Project ids are not checked
against Keystone (Nova's verify_project_id is skipped).
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.compute import common, flavor_store, nova_schema
from cloudd.services.compute.policies import ADMIN
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

BASE = "os_compute_api:os-flavor-access"


def _tenant_schema(action: str) -> dict:
    return {"type": "object",
            "properties": {action: {
                "type": "object",
                "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
                "required": ["tenant"], "additionalProperties": False}},
            "required": [action], "additionalProperties": False}


async def _marshall(conn, flavor_id: str) -> web.Response:
    return web.json_response({"flavor_access": [
        {"flavor_id": flavor_id, "tenant_id": p}
        for p in await flavor_store.projects(conn, flavor_id)]})


async def _flavor(request: web.Request, conn, flavor_id: str):
    ctx = common.context(request)
    row = await flavor_store.get_visible(conn, flavor_id, ctx.project_id,
                                         ctx.can("context_is_admin"))
    if row is None:
        raise flavor_store.not_found(flavor_id)
    return row


async def index(request: web.Request) -> web.Response:
    common.context(request).authorize(BASE)
    flavor_id = request.match_info["flavor_id"]
    async with common.cloud(request).db.read() as conn:
        row = await _flavor(request, conn, flavor_id)
        if row.is_public:
            raise ApiError(404, "Access list not available for public flavors.")
        return await _marshall(conn, flavor_id)


async def _add(request: web.Request, body: dict) -> web.Response:
    common.context(request).authorize(f"{BASE}:add_tenant_access", {})
    tenant = nova_schema.check(_tenant_schema("addTenantAccess"), body)[
        "addTenantAccess"]["tenant"]
    flavor_id = request.match_info["flavor_id"]
    async with common.cloud(request).db.write() as conn:
        row = await _flavor(request, conn, flavor_id)
        if common.at_least(request, 2, 7) and row.is_public:
            raise ApiError(409, "Can not add access to a public flavor.")
        exists = (await conn.execute(select(t.flavor_project.c.project_id).where(
            t.flavor_project.c.flavor_id == flavor_id,
            t.flavor_project.c.project_id == tenant))).first()
        message = (f"Flavor access already exists for flavor {flavor_id} and project "
                   f"{tenant} combination.")
        if exists:
            raise ApiError(409, message)
        try:
            async with conn.begin_nested():
                await conn.execute(t.flavor_project.insert().values(
                    flavor_id=flavor_id, project_id=tenant))
        except IntegrityError:
            raise ApiError(409, message) from None
        return await _marshall(conn, flavor_id)


async def _remove(request: web.Request, body: dict) -> web.Response:
    common.context(request).authorize(f"{BASE}:remove_tenant_access", {})
    tenant = nova_schema.check(_tenant_schema("removeTenantAccess"), body)[
        "removeTenantAccess"]["tenant"]
    flavor_id = request.match_info["flavor_id"]
    async with common.cloud(request).db.write() as conn:
        await _flavor(request, conn, flavor_id)
        res = await conn.execute(delete(t.flavor_project).where(
            t.flavor_project.c.flavor_id == flavor_id,
            t.flavor_project.c.project_id == tenant))
        if res.rowcount == 0:
            raise ApiError(404, f"Flavor access not found for {flavor_id} / {tenant} "
                                "combination.")
        return await _marshall(conn, flavor_id)


async def action(request: web.Request) -> web.Response:
    body = await read_json(request)
    if "addTenantAccess" in body:
        return await _add(request, body)
    if "removeTenantAccess" in body:
        return await _remove(request, body)
    name = next(iter(body), "")
    raise ApiError(400, f"There is no such action: {name}")


ROUTES = {
    "/flavors/{flavor_id}/os-flavor-access": {"GET": (index, None)},
    "/flavors/{flavor_id}/action": {"POST": (action, None)},
}

POLICIES = {
    BASE: ADMIN,
    f"{BASE}:add_tenant_access": ADMIN,
    f"{BASE}:remove_tenant_access": ADMIN,
}
