"""/v3/projects and /v3/domains."""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy import delete, false, select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.schemas import ProjectCreate, ProjectUpdate
from cloudd.services.identity.tokens import record_revocation
from cloudd.services.identity.views import collection, domain_view, identity, project_view
from cloudd.web.auth import ctx_of
from cloudd.web.errors import bad_request, conflict, forbidden
from cloudd.web.middleware import read_json
from cloudd.web.validation import body_part, bool_filter, parse, referenced


async def list_domains(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:list_domains")
    q = select(t.domain).order_by(t.domain.c.name)
    if "name" in request.query:
        q = q.where(t.domain.c.name == request.query["name"])
    if "enabled" in request.query:
        q = q.where(t.domain.c.enabled.is_(bool_filter(request.query["enabled"])))
    async with identity(request).db.read() as conn:
        rows = (await conn.execute(q)).all()
    return collection(request, "domains", [domain_view(request, r) for r in rows],
                      "/v3/domains")


async def get_domain(request: web.Request) -> web.Response:
    domain_id = request.match_info["domain_id"]
    ctx_of(request).authorize("identity:get_domain", {"domain": {"id": domain_id}})
    async with identity(request).db.read() as conn:
        row = await store.get_domain(conn, domain_id)
    return web.json_response({"domain": domain_view(request, row)})


async def list_projects(request: web.Request) -> web.Response:
    query = request.query
    ctx_of(request).authorize("identity:list_projects",
                              {"domain_id": query.get("domain_id")})
    p = t.project
    q = select(p).order_by(p.c.name, p.c.id)
    for key in ("name", "domain_id", "parent_id"):
        if key in query:
            q = q.where(p.c[key] == query[key])
    if "enabled" in query:
        q = q.where(p.c.enabled.is_(bool_filter(query["enabled"])))
    if query.get("is_domain", "").lower() == "true":
        q = q.where(false())  # projects acting as domains: none here
    async with identity(request).db.read() as conn:
        rows = (await conn.execute(q)).all()
    return collection(request, "projects", [project_view(request, r) for r in rows],
                      "/v3/projects")


async def get_project(request: web.Request) -> web.Response:
    async with identity(request).db.read() as conn:
        row = await store.get_project(conn, request.match_info["project_id"])
    ctx_of(request).authorize("identity:get_project", {"project": _target(row)})
    return web.json_response({"project": project_view(request, row)})


def _target(row) -> dict:
    return {"id": row.id, "domain_id": row.domain_id}


async def create_project(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    raw = body_part(await read_json(request), "project")
    req = parse(ProjectCreate, raw)
    if req.is_domain:
        raise bad_request("Creating projects that act as domains is not supported.")
    svc = identity(request)
    domain_id = req.domain_id or ctx.token.user_domain_id
    ctx.authorize("identity:create_project", {"project": {"domain_id": domain_id}})
    extra = {k: v for k, v in raw.items() if k not in ProjectCreate.model_fields}
    row_id = store.new_id()
    try:
        async with svc.write() as conn:
            domain = await referenced(store.get_domain(conn, domain_id))
            parent_id = None
            if req.parent_id and req.parent_id != domain.id:
                parent = await referenced(store.get_project(conn, req.parent_id))
                if parent.domain_id != domain.id:
                    raise bad_request("The parent project must be in the same domain.")
                parent_id = parent.id
            await conn.execute(t.project.insert().values(
                id=row_id, name=req.name, domain_id=domain.id, parent_id=parent_id,
                description=req.description or "", enabled=req.enabled,
                tags=json.dumps(req.tags), extra=json.dumps(extra),
                created_at=store.utcnow()))
            row = await store.get_project(conn, row_id)
    except IntegrityError:
        raise conflict(f"Conflict occurred attempting to store project - it is not "
                       f"permitted to have two projects with the same name in the same "
                       f"domain : {req.name}.") from None
    return web.json_response({"project": project_view(request, row)}, status=201)


async def update_project(request: web.Request) -> web.Response:
    raw = body_part(await read_json(request), "project")
    req = parse(ProjectUpdate, raw)
    svc = identity(request)
    project_id = request.match_info["project_id"]
    values: dict = req.model_dump(exclude_unset=True)
    if "tags" in values:
        values["tags"] = json.dumps(values["tags"])
    if values.get("description", "") is None:
        values["description"] = ""
    for key in ("domain_id", "is_domain", "parent_id"):
        if key in raw:
            raise bad_request(f"Update of `{key}` is not allowed.")
    try:
        async with svc.write() as conn:
            row = await store.get_project(conn, project_id)
            ctx_of(request).authorize("identity:update_project", {"project": _target(row)})
            extra = json.loads(row.extra)
            extra.update({k: v for k, v in raw.items() if k not in ProjectUpdate.model_fields
                          and k not in ("id", "links")})
            values["extra"] = json.dumps(extra)
            await conn.execute(t.project.update().where(t.project.c.id == project_id)
                               .values(**values))
            row = await store.get_project(conn, project_id)
    except IntegrityError:
        raise conflict(f"Conflict occurred attempting to store project - it is not "
                       f"permitted to have two projects with the same name in the same "
                       f"domain : {req.name}.") from None
    return web.json_response({"project": project_view(request, row)})


async def delete_project(request: web.Request) -> web.Response:
    svc = identity(request)
    project_id = request.match_info["project_id"]
    async with svc.write() as conn:
        row = await store.get_project(conn, project_id)
        ctx_of(request).authorize("identity:delete_project", {"project": _target(row)})
        child = (await conn.execute(select(t.project.c.id).where(
            t.project.c.parent_id == project_id).limit(1))).first()
        if child is not None:
            raise forbidden(f"Cannot delete project {project_id}: it has child projects.")
        await conn.execute(delete(t.role_assignment).where(
            t.role_assignment.c.target_id == project_id))
        await conn.execute(delete(t.application_credential).where(
            t.application_credential.c.project_id == project_id))
        await conn.execute(delete(t.project).where(t.project.c.id == project_id))
        await record_revocation(conn, project_id=project_id)
    return web.Response(status=204)
