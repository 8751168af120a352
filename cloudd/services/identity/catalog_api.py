"""/v3/services, /v3/endpoints and /v3/regions: read-only views of the catalog."""

from __future__ import annotations

from aiohttp import web

from cloudd.services.identity import catalog
from cloudd.services.identity.views import collection, url
from cloudd.web.auth import ctx_of
from cloudd.web.errors import not_found


def _cfg(request: web.Request):
    return request.config_dict["cloud"].config


def _one(items: list[dict], value: str, what: str) -> dict:
    for item in items:
        if item["id"] == value:
            return item
    raise not_found(f"Could not find {what}: {value}.")


def _service(request: web.Request, svc: dict) -> dict:
    return {**svc, "links": {"self": url(request, f"/v3/services/{svc['id']}")}}


def _endpoint(request: web.Request, ep: dict) -> dict:
    return {**ep, "links": {"self": url(request, f"/v3/endpoints/{ep['id']}")}}


def _regions(request: web.Request) -> list[dict]:
    region = _cfg(request).server.region
    return [{"id": region, "description": "", "parent_region_id": None,
             "links": {"self": url(request, f"/v3/regions/{region}")}}]


async def list_services(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:list_services")
    wanted = request.query.get("type")
    items = [_service(request, s) for s in catalog.services()
             if wanted in (None, s["type"])]
    return collection(request, "services", items, "/v3/services")


async def get_service(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:get_service")
    svc = _one(catalog.services(), request.match_info["service_id"], "service")
    return web.json_response({"service": _service(request, svc)})


async def list_endpoints(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:list_endpoints")
    q = request.query
    items = [_endpoint(request, e) for e in catalog.endpoints(_cfg(request))
             if q.get("interface", e["interface"]) == e["interface"]
             and q.get("service_id", e["service_id"]) == e["service_id"]
             and q.get("region_id", e["region_id"]) == e["region_id"]]
    return collection(request, "endpoints", items, "/v3/endpoints")


async def get_endpoint(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:get_endpoint")
    ep = _one(catalog.endpoints(_cfg(request)), request.match_info["endpoint_id"], "endpoint")
    return web.json_response({"endpoint": _endpoint(request, ep)})


async def list_regions(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:list_regions")
    return collection(request, "regions", _regions(request), "/v3/regions")


async def get_region(request: web.Request) -> web.Response:
    ctx_of(request).authorize("identity:get_region")
    region = _one(_regions(request), request.match_info["region_id"], "region")
    return web.json_response({"region": region})
