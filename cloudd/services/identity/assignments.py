"""Role grants on projects, domains and the system, and /v3/role_assignments."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import delete, select

from cloudd.db import tables as t
from cloudd.services.identity import store
from cloudd.services.identity.tokens import SYSTEM_TARGET
from cloudd.services.identity.views import collection, identity, role_view, url
from cloudd.web.auth import ctx_of
from cloudd.web.errors import not_found
from cloudd.web.validation import bool_filter

_TARGET_KEY = {"UserProject": "project", "UserDomain": "domain"}


async def _grant_target(conn, request: web.Request) -> tuple[str, str, str | None]:
    """(assignment type, target id, domain id for policy) named by the URL."""
    kind = request.match_info["kind"]
    if kind == "system":
        return "UserSystem", SYSTEM_TARGET, None
    target_id = request.match_info["target_id"]
    if kind == "projects":
        project = await store.get_project(conn, target_id)
        return "UserProject", project.id, project.domain_id
    domain = await store.get_domain(conn, target_id)
    return "UserDomain", domain.id, domain.id


def _inherited(request: web.Request) -> bool:
    return request.path.endswith("/inherited_to_projects")


def _rule(kind: str, verb: str) -> str:
    if kind == "system":
        return f"identity:{verb}_system_grant_for_user"
    return {"create": "identity:create_grant", "revoke": "identity:revoke_grant",
            "check": "identity:check_grant", "list": "identity:list_grants"}[verb]


async def _resolve(conn, request: web.Request, verb: str):
    atype, target_id, domain_id = await _grant_target(conn, request)
    user = await store.get_user(conn, request.match_info["user_id"])
    ctx_of(request).authorize(_rule(request.match_info["kind"], verb),
                              {"domain_id": domain_id})
    return atype, target_id, user


async def create_grant(request: web.Request) -> web.Response:
    svc = identity(request)
    inherited = _inherited(request)
    async with svc.write() as conn:
        atype, target_id, user = await _resolve(conn, request, "create")
        role = await store.get_role(conn, request.match_info["role_id"])
        ra = t.role_assignment
        exists = (await conn.execute(select(ra.c.role_id).where(
            ra.c.type == atype, ra.c.actor_id == user.id, ra.c.target_id == target_id,
            ra.c.role_id == role.id, ra.c.inherited.is_(inherited)))).first()
        if exists is None:
            await conn.execute(ra.insert().values(type=atype, actor_id=user.id,
                                                  target_id=target_id, role_id=role.id,
                                                  inherited=inherited))
    return web.Response(status=204)


async def check_grant(request: web.Request) -> web.Response:
    async with identity(request).db.read() as conn:
        atype, target_id, user = await _resolve(conn, request, "check")
        ra = t.role_assignment
        exists = (await conn.execute(select(ra.c.role_id).where(
            ra.c.type == atype, ra.c.actor_id == user.id, ra.c.target_id == target_id,
            ra.c.role_id == request.match_info["role_id"],
            ra.c.inherited.is_(_inherited(request))))).first()
    if exists is None:
        raise not_found(f"Could not find role assignment with role: "
                        f"{request.match_info['role_id']}, user or group: {user.id}.")
    return web.Response(status=204)


async def revoke_grant(request: web.Request) -> web.Response:
    svc = identity(request)
    async with svc.write() as conn:
        atype, target_id, user = await _resolve(conn, request, "revoke")
        ra = t.role_assignment
        result = await conn.execute(delete(ra).where(
            ra.c.type == atype, ra.c.actor_id == user.id, ra.c.target_id == target_id,
            ra.c.role_id == request.match_info["role_id"],
            ra.c.inherited.is_(_inherited(request))))
    if result.rowcount == 0:
        raise not_found(f"Could not find role assignment with role: "
                        f"{request.match_info['role_id']}, user or group: {user.id}.")
    return web.Response(status=204)


async def list_grants(request: web.Request) -> web.Response:
    async with identity(request).db.read() as conn:
        atype, target_id, user = await _resolve(conn, request, "list")
        ra = t.role_assignment
        ids = select(ra.c.role_id).where(ra.c.type == atype, ra.c.actor_id == user.id,
                                         ra.c.target_id == target_id,
                                         ra.c.inherited.is_(_inherited(request)))
        rows = (await conn.execute(select(t.role).where(t.role.c.id.in_(ids))
                                   .order_by(t.role.c.name))).all()
    return collection(request, "roles", [role_view(request, r) for r in rows],
                      request.path[len(request["prefix"]):])


def _grant_url(request: web.Request, atype: str, target_id: str, user_id: str,
               role_id: str, inherited: bool) -> str:
    if atype == "UserSystem":
        return url(request, f"/v3/system/users/{user_id}/roles/{role_id}")
    kind = "projects" if atype == "UserProject" else "domains"
    path = f"/{kind}/{target_id}/users/{user_id}/roles/{role_id}"
    if inherited:
        return url(request, f"/v3/OS-INHERIT{path}/inherited_to_projects")
    return url(request, "/v3" + path)


async def list_role_assignments(request: web.Request) -> web.Response:
    q = request.query
    if "group.id" in q:
        return collection(request, "role_assignments", [], "/v3/role_assignments")
    ctx_of(request).authorize("identity:list_role_assignments",
                              {"domain_id": q.get("scope.domain.id")})
    effective = "effective" in q and bool_filter(q.get("effective") or "true")
    names = "include_names" in q and bool_filter(q.get("include_names") or "true")
    ra = t.role_assignment
    stmt = select(ra).order_by(ra.c.actor_id, ra.c.target_id)
    if "user.id" in q:
        stmt = stmt.where(ra.c.actor_id == q["user.id"])
    async with identity(request).db.read() as conn:
        rows = (await conn.execute(stmt)).all()
        implies = await store.implication_map(conn) if effective else {}
        projects = {p.id: p for p in (await conn.execute(select(t.project))).all()}
        domains = {d.id: d for d in (await conn.execute(select(t.domain))).all()}
        users = {u.id: u for u in (await conn.execute(select(t.user))).all()}
        roles = {r.id: r for r in (await conn.execute(select(t.role))).all()}
    entries = []
    for row in rows:
        link = _grant_url(request, row.type, row.target_id, row.actor_id, row.role_id,
                          row.inherited)
        if row.inherited and effective:
            targets = [("UserProject", p.id) for p in projects.values()
                       if p.domain_id == row.target_id or p.parent_id == row.target_id]
        else:
            targets = [(row.type, row.target_id)]
        role_ids = [(row.role_id, None)]
        if effective:
            role_ids += [(r, row.role_id) for r in
                         store.expand_implied({row.role_id}, implies) - {row.role_id}]
        for atype, target_id in targets:
            for role_id, prior in role_ids:
                entries.append((atype, target_id, row.actor_id, role_id, prior, link,
                                row.inherited and not effective))
    out = []
    seen = set()
    for atype, target_id, user_id, role_id, prior, link, inherited in entries:
        key = (atype, target_id, user_id, role_id)
        if effective and key in seen:
            continue
        seen.add(key)
        if not _matches(q, atype, target_id, role_id, inherited):
            continue
        item = {"role": {"id": role_id}, "user": {"id": user_id},
                "scope": _scope(atype, target_id, inherited), "links": {"assignment": link}}
        if prior:
            item["links"]["prior_role"] = url(request, f"/v3/roles/{prior}")
        if names:
            _add_names(item, roles, users, projects, domains)
        out.append(item)
    return collection(request, "role_assignments", out, "/v3/role_assignments")


def _scope(atype: str, target_id: str, inherited: bool) -> dict:
    if atype == "UserSystem":
        return {"system": {"all": True}}
    scope: dict = {_TARGET_KEY[atype]: {"id": target_id}}
    if inherited:
        scope["OS-INHERIT:inherited_to"] = "projects"
    return scope


def _matches(q, atype: str, target_id: str, role_id: str, inherited: bool) -> bool:
    if "role.id" in q and q["role.id"] != role_id:
        return False
    if "scope.project.id" in q and (atype != "UserProject" or q["scope.project.id"] != target_id):
        return False
    if "scope.domain.id" in q and (atype != "UserDomain" or q["scope.domain.id"] != target_id):
        return False
    if "scope.system" in q and atype != "UserSystem":
        return False
    return not ("scope.OS-INHERIT:inherited_to" in q and not inherited)


def _add_names(item: dict, roles, users, projects, domains) -> None:
    def dom(domain_id):
        d = domains.get(domain_id)
        return {"id": domain_id, "name": d.name if d else None}

    role = roles.get(item["role"]["id"])
    if role is not None:
        item["role"]["name"] = role.name
        if store.role_domain(role):
            item["role"]["domain"] = dom(role.domain_id)
    user = users.get(item["user"]["id"])
    if user is not None:
        item["user"].update(name=user.name, domain=dom(user.domain_id))
    scope = item["scope"]
    if "project" in scope and scope["project"]["id"] in projects:
        p = projects[scope["project"]["id"]]
        scope["project"].update(name=p.name, domain=dom(p.domain_id))
    if "domain" in scope and scope["domain"]["id"] in domains:
        scope["domain"]["name"] = domains[scope["domain"]["id"]].name

