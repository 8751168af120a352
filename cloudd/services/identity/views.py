"""How identity resources look on the wire, with Keystone's links."""

from __future__ import annotations

import json

from aiohttp import web
from sqlalchemy.engine import Row

from cloudd.services.identity import store


def identity(request: web.Request):
    """The IdentityService behind this request."""
    return request.config_dict["cloud"].identity


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{request['prefix']}"


def url(request: web.Request, path: str) -> str:
    return base_url(request) + path


def link_self(request: web.Request, path: str) -> dict:
    return {"self": url(request, path), "previous": None, "next": None}


def domain_view(request: web.Request, row: Row) -> dict:
    return {"id": row.id, "name": row.name, "description": row.description,
            "enabled": bool(row.enabled), "tags": [], "options": {},
            "links": {"self": url(request, f"/v3/domains/{row.id}")}}


def project_view(request: web.Request, row: Row) -> dict:
    out = {"id": row.id, "name": row.name, "domain_id": row.domain_id,
           "description": row.description, "enabled": bool(row.enabled),
           "parent_id": row.parent_id or row.domain_id, "is_domain": False,
           "tags": json.loads(row.tags), "options": {},
           "links": {"self": url(request, f"/v3/projects/{row.id}")}}
    out.update(json.loads(row.extra))
    return out


def user_view(request: web.Request, row: Row) -> dict:
    out = {"id": row.id, "name": row.name, "domain_id": row.domain_id,
           "enabled": bool(row.enabled), "password_expires_at": None, "options": {},
           "links": {"self": url(request, f"/v3/users/{row.id}")}}
    if row.default_project_id:
        out["default_project_id"] = row.default_project_id
    if row.description:
        out["description"] = row.description
    if row.email:
        out["email"] = row.email
    out.update(json.loads(row.extra))
    return out


def role_view(request: web.Request, row: Row) -> dict:
    return {"id": row.id, "name": row.name, "domain_id": store.role_domain(row),
            "description": row.description, "options": {},
            "links": {"self": url(request, f"/v3/roles/{row.id}")}}


def collection(request: web.Request, key: str, items: list, path: str) -> web.Response:
    return web.json_response({key: items, "links": link_self(request, path)})
