"""Quota sets and quota class sets (Nova's quota_sets.py, quota_classes.py).

Per-user quotas (``?user_id=``) are not stored: a user sees the project's
limits. Only the class "default" affects enforcement; other classes can be
shown and set but nothing reads them.
"""

from __future__ import annotations

import copy

from aiohttp import web
from sqlalchemy import delete

from cloudd.db import tables as t
from cloudd.services.compute import common, nova_schema, quota_store
from cloudd.services.compute.policies import ADMIN, ANY, PROJECT_READER_OR_ADMIN
from cloudd.web.errors import ApiError
from cloudd.web.middleware import read_json

ROOT = "os_compute_api:os-quota-sets:%s"
CLASS_ROOT = "os_compute_api:os-quota-class-sets:%s"
NETWORK = ["fixed_ips", "floating_ips", "security_group_rules", "security_groups"]
INJECTED = ["injected_files", "injected_file_content_bytes", "injected_file_path_bytes"]
SERVER_GROUPS = ["server_groups", "server_group_members"]

_VALUE = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$",
          "minimum": -1, "maximum": 0x7FFFFFFF}


def _filtered(request: web.Request, network_from: tuple[int, int]) -> list[str]:
    if common.at_least(request, 2, 57):
        return NETWORK + INJECTED
    if common.mv(request) >= network_from:
        return list(NETWORK)
    return []


def _update_schema(wrapper: str, hidden: list[str], force: bool) -> dict:
    props = {r: copy.deepcopy(_VALUE) for r in quota_store.RESOURCES if r not in hidden}
    if force:
        props["force"] = nova_schema.BOOLEAN
    return {"type": "object",
            "properties": {wrapper: {"type": "object", "properties": props,
                                     "additionalProperties": False}},
            "required": [wrapper], "additionalProperties": False}


def _format(values: dict, hidden: list[str], ident: str | None) -> dict:
    out: dict = {"id": ident} if ident is not None else {}
    out.update({r: values[r] for r in quota_store.RESOURCES if r not in hidden and r in values})
    return out


def _cfg(request: web.Request):
    return common.cloud(request).config


async def show(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id_q"]
    common.context(request).authorize(ROOT % "show", {"project_id": project_id})
    async with common.cloud(request).db.read() as conn:
        limits = await quota_store.limits_for(conn, _cfg(request), project_id)
    return web.json_response({"quota_set": _format(
        limits, _filtered(request, (2, 36)), project_id)})


async def detail(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id_q"]
    common.context(request).authorize(ROOT % "detail", {"project_id": project_id})
    user_id = request.query.get("user_id")
    async with common.cloud(request).db.read() as conn:
        limits = await quota_store.limits_for(conn, _cfg(request), project_id)
        used = await quota_store.usage(conn, project_id, user_id)
    values = {r: {"in_use": used.get(r, 0), "limit": limits[r], "reserved": 0}
              for r in quota_store.RESOURCES}
    return web.json_response({"quota_set": _format(
        values, _filtered(request, (2, 36)), project_id)})


async def defaults(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id_q"]
    common.context(request).authorize(ROOT % "defaults", {"project_id": project_id})
    async with common.cloud(request).db.read() as conn:
        values = await quota_store.defaults(conn, _cfg(request))
    return web.json_response({"quota_set": _format(
        values, _filtered(request, (2, 36)), project_id)})


async def update_quotas(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id_q"]
    common.context(request).authorize(ROOT % "update", {"project_id": project_id})
    hidden = _filtered(request, (2, 36))
    body = nova_schema.check(_update_schema("quota_set", hidden, True), await read_json(request))
    quota_set = body["quota_set"]
    force = nova_schema.as_bool(quota_set.get("force", False))
    wanted = {k: int(v) for k, v in quota_set.items() if k != "force"}
    async with common.cloud(request).db.write() as conn:
        await quota_store.lock(conn, project_id)
        if not force:
            used = await quota_store.usage(conn, project_id)
            for resource, value in wanted.items():
                minimum = used.get(resource, 0)
                if value != -1 and value < minimum:
                    raise ApiError(400, f"Quota limit {value} for {resource} must be greater "
                                        "than or equal to already used and reserved "
                                        f"{minimum}.")
        for resource, value in wanted.items():
            await quota_store.set_limit(conn, project_id, resource, value)
        limits = await quota_store.limits_for(conn, _cfg(request), project_id)
    return web.json_response({"quota_set": _format(limits, hidden, None)})


async def delete_quotas(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id_q"]
    common.context(request).authorize(ROOT % "delete", {"project_id": project_id})
    async with common.cloud(request).db.write() as conn:
        await conn.execute(delete(t.quota).where(t.quota.c.project_id == project_id))
    return web.Response(status=202)


def _class_hidden(request: web.Request) -> list[str]:
    hidden = _filtered(request, (2, 50))
    return hidden if common.at_least(request, 2, 50) else hidden + SERVER_GROUPS


async def _class_values(conn, request: web.Request, name: str) -> dict:
    base = quota_store.config_defaults(_cfg(request))
    return {**base, **await quota_store.class_limits(conn, name)}


async def class_show(request: web.Request) -> web.Response:
    common.context(request).authorize(CLASS_ROOT % "show", {})
    name = request.match_info["class_name"]
    async with common.cloud(request).db.read() as conn:
        values = await _class_values(conn, request, name)
    return web.json_response({"quota_class_set": _format(
        values, _class_hidden(request), name)})


async def class_update(request: web.Request) -> web.Response:
    common.context(request).authorize(CLASS_ROOT % "update", {})
    name = request.match_info["class_name"]
    if not 1 <= len(name) <= 255:
        raise ApiError(400, "quota_class_name has a length outside 1 to 255 characters.")
    hidden = _class_hidden(request)
    schema_hidden = [r for r in hidden if r not in SERVER_GROUPS]
    body = nova_schema.check(_update_schema("quota_class_set", schema_hidden, False),
                             await read_json(request))
    async with common.cloud(request).db.write() as conn:
        for resource, value in body["quota_class_set"].items():
            await quota_store.set_class_limit(conn, name, resource, int(value))
        values = await _class_values(conn, request, name)
    return web.json_response({"quota_class_set": _format(values, hidden, None)})


_Q = "/os-quota-sets/{project_id_q}"
ROUTES = {
    _Q: {"GET": (show, None), "PUT": (update_quotas, None), "DELETE": (delete_quotas, None)},
    _Q + "/detail": {"GET": (detail, None)},
    _Q + "/defaults": {"GET": (defaults, None)},
    "/os-quota-class-sets/{class_name}": {"GET": (class_show, None),
                                          "PUT": (class_update, None)},
}

POLICIES = {
    ROOT % "show": PROJECT_READER_OR_ADMIN,
    ROOT % "detail": PROJECT_READER_OR_ADMIN,
    ROOT % "defaults": ANY,
    ROOT % "update": ADMIN,
    ROOT % "delete": ADMIN,
    CLASS_ROOT % "show": ADMIN,
    CLASS_ROOT % "update": ADMIN,
}
