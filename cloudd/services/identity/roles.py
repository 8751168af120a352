"""/v3/roles, implied roles and /v3/role_inferences."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.schemas import RoleCreate, RoleUpdate
from cloudd.services.identity.views import collection, identity, role_view, url
from cloudd.web.auth import ctx_of
from cloudd.web.errors import conflict, not_found
from cloudd.web.middleware import read_json
from cloudd.web.validation import body_part, parse, referenced


def _duplicate(name: str):
    return conflict(f"Conflict occurred attempting to store role - Duplicate entry "
                    f"found with name {name}.")


async def list_roles(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:list_roles")
    r = t.role
    q = select(r).order_by(r.c.name)
    if "name" in request.query:
        q = q.where(r.c.name == request.query["name"])
    q = q.where(r.c.domain_id == request.query.get("domain_id", t.GLOBAL_ROLE_DOMAIN))
    async with identity(request).db.read() as conn:
        rows = (await conn.execute(q)).all()
    return collection(request, "roles", [role_view(request, row) for row in rows], "/v3/roles")


async def get_role(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:get_role")
    async with identity(request).db.read() as conn:
        row = await store.get_role(conn, request.match_info["role_id"])
    return web.json_response({"role": role_view(request, row)})


async def create_role(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:create_role")
    req = parse(RoleCreate, body_part(await read_json(request), "role"))
    role_id = store.new_id()
    try:
        async with identity(request).write() as conn:
            if req.domain_id:
                await referenced(store.get_domain(conn, req.domain_id))
            await conn.execute(t.role.insert().values(
                id=role_id, name=req.name, domain_id=req.domain_id or t.GLOBAL_ROLE_DOMAIN,
                description=req.description or ""))
            row = await store.get_role(conn, role_id)
    except IntegrityError:
        raise _duplicate(req.name) from None
    return web.json_response({"role": role_view(request, row)}, status=201)


async def update_role(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:update_role")
    req = parse(RoleUpdate, body_part(await read_json(request), "role"))
    role_id = request.match_info["role_id"]
    values = {k: v or "" for k, v in req.model_dump(exclude_unset=True).items()}
    try:
        async with identity(request).write() as conn:
            await store.get_role(conn, role_id)
            if values:
                await conn.execute(t.role.update().where(t.role.c.id == role_id).values(**values))
            row = await store.get_role(conn, role_id)
    except IntegrityError:
        raise _duplicate(req.name or "") from None
    return web.json_response({"role": role_view(request, row)})


async def delete_role(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:delete_role")
    role_id = request.match_info["role_id"]
    async with identity(request).write() as conn:
        await store.get_role(conn, role_id)
        for table, col in ((t.role_assignment, "role_id"), (t.implied_role, "prior_role_id"),
                           (t.implied_role, "implied_role_id"),
                           (t.application_credential_role, "role_id")):
            await conn.execute(delete(table).where(table.c[col] == role_id))
        await conn.execute(delete(t.role).where(t.role.c.id == role_id))
    return web.Response(status=204)


def _brief(request: web.Request, row) -> dict:
    return {"id": row.id, "name": row.name,
            "links": {"self": url(request, f"/v3/roles/{row.id}")}}


async def _pair(conn, request: web.Request):
    prior = await store.get_role(conn, request.match_info["prior_role_id"])
    implied = await store.get_role(conn, request.match_info["implied_role_id"])
    return prior, implied


def _inference_links(request: web.Request, prior_id: str, implied_id: str | None) -> dict:
    path = f"/v3/roles/{prior_id}/implies" + (f"/{implied_id}" if implied_id else "")
    return {"self": url(request, path)}


async def create_implied_role(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:create_implied_role")
    async with identity(request).write() as conn:
        prior, implied = await _pair(conn, request)
        exists = (await conn.execute(select(t.implied_role).where(
            t.implied_role.c.prior_role_id == prior.id,
            t.implied_role.c.implied_role_id == implied.id))).first()
        if exists is None:
            await conn.execute(t.implied_role.insert().values(
                prior_role_id=prior.id, implied_role_id=implied.id))
    body = {"role_inference": {"prior_role": _brief(request, prior),
                               "implies": _brief(request, implied)},
            "links": _inference_links(request, prior.id, implied.id)}
    return web.json_response(body, status=201)


async def get_implied_role(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:get_implied_role")
    async with identity(request).db.read() as conn:
        prior, implied = await _pair(conn, request)
        exists = (await conn.execute(select(t.implied_role).where(
            t.implied_role.c.prior_role_id == prior.id,
            t.implied_role.c.implied_role_id == implied.id))).first()
    if exists is None:
        raise not_found(f"{prior.id} does not imply {implied.id}.")
    if request.method == "HEAD":
        return web.Response(status=204)
    body = {"role_inference": {"prior_role": _brief(request, prior),
                               "implies": _brief(request, implied)},
            "links": _inference_links(request, prior.id, implied.id)}
    return web.json_response(body)


async def delete_implied_role(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:delete_implied_role")
    async with identity(request).write() as conn:
        prior, implied = await _pair(conn, request)
        result = await conn.execute(delete(t.implied_role).where(
            t.implied_role.c.prior_role_id == prior.id,
            t.implied_role.c.implied_role_id == implied.id))
    if result.rowcount == 0:
        raise not_found(f"{prior.id} does not imply {implied.id}.")
    return web.Response(status=204)


async def _inferences(conn, request: web.Request, prior_id: str | None) -> list[dict]:
    ir = t.implied_role
    q = select(ir).order_by(ir.c.prior_role_id)
    if prior_id:
        q = q.where(ir.c.prior_role_id == prior_id)
    pairs = (await conn.execute(q)).all()
    roles = {r.id: r for r in (await conn.execute(select(t.role))).all()}
    grouped: dict[str, list[dict]] = {}
    for prior, implied in pairs:
        grouped.setdefault(prior, []).append(_brief(request, roles[implied]))
    return [{"prior_role": _brief(request, roles[p]), "implies": imps}
            for p, imps in grouped.items()]


async def list_implied_roles(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:list_implied_roles")
    prior_id = request.match_info["prior_role_id"]
    async with identity(request).db.read() as conn:
        prior = await store.get_role(conn, prior_id)
        found = await _inferences(conn, request, prior_id)
    body = {"role_inference": found[0] if found else
            {"prior_role": _brief(request, prior), "implies": []},
            "links": _inference_links(request, prior_id, None)}
    return web.json_response(body)


async def list_role_inferences(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:list_role_inference_rules")
    async with identity(request).db.read() as conn:
        found = await _inferences(conn, request, None)
    return collection(request, "role_inferences", found, "/v3/role_inferences")
