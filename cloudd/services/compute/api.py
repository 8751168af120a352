"""The Compute API (Nova v2.1): version documents and the route table.

Each resource module declares ``ROUTES`` ({path: {method: (handler,
min_version[, max_version])}}) and ``POLICIES``; this module mounts them
under /v2.1 and the legacy /v2, each also behind the optional /{project_id}
path prefix Nova accepts.
"""

from __future__ import annotations

import importlib

from aiohttp import web

from cloudd.services.compute import common, microversion
from cloudd.services.compute.policies import BASE
from cloudd.web.app import ServiceSpec
from cloudd.web.auth import public
from cloudd.web.errors import compute_style

RESOURCE_MODULES = [
    "flavors", "flavor_access", "flavor_extra_specs", "keypairs", "quotas", "limits",
    "availability_zones", "aggregates", "compute_services", "hypervisors", "usage",
    "servers", "server_actions", "server_metadata", "server_tags", "instance_actions",
    "server_groups", "server_admin_actions", "server_diagnostics", "server_external_events",
    "os_hosts", "os_migrations", "os_networks", "instance_usage_audit_log", "server_ips",
    "server_password", "security_groups",
    "remote_consoles", "attach_interfaces",
]

_UPDATED = {"v2.0": "2011-01-21T11:33:21Z", "v2.1": "2013-07-23T11:33:21Z"}


def _version(request: web.Request, vid: str) -> dict:
    base = f"{request.scheme}://{request.host}{request['prefix']}"
    current = vid == "v2.1"
    return {"id": vid, "status": "CURRENT" if current else "SUPPORTED",
            "version": microversion.fmt(microversion.MAX) if current else "",
            "min_version": microversion.fmt(microversion.MIN) if current else "",
            "updated": _UPDATED[vid],
            "links": [{"rel": "self", "href": f"{base}/{'v2.1' if current else 'v2'}/"}]}


@public
async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": [_version(request, "v2.0"),
                                           _version(request, "v2.1")]})


@public
async def version(request: web.Request) -> web.Response:
    vid = common.api_version(request)
    vid = "v2.0" if vid == "v2" else vid
    doc = _version(request, vid)
    doc["links"].append({"rel": "describedby", "type": "text/html",
                         "href": "http://docs.openstack.org/"})
    doc["media-types"] = [{"base": "application/json",
                           "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return web.json_response({"version": doc})


def _modules():
    return [importlib.import_module(f"cloudd.services.compute.{m}") for m in RESOURCE_MODULES]


def routes() -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = [("GET", "/", versions)]
    table: list[tuple[str, str, object]] = []
    for module in _modules():
        for path, methods in module.ROUTES.items():
            for method, entry in methods.items():
                handler, low, *high = entry
                table.append((method, path, microversion.versioned(
                    handler, low, high[0] if high else None)))
    for vid in ("v2.1", "v2"):
        # A literal version, so aiohttp's router finds a route by its path's
        # longest literal prefix instead of trying every compute route in turn.
        root = "/" + vid
        out.append(("GET", root, version))
        out.append(("GET", root + "/", version))
        # Plain paths first, so /v2.1/servers/detail never reads as a project id.
        for prefix in ("", "/{project_id:[0-9a-zA-Z_-]{1,64}}"):
            for method, path, handler in table:
                out.append((method, root + prefix + path, handler))
            if prefix:
                out.append(("GET", root + prefix, version))
    return out


def policies() -> dict[str, str]:
    rules = dict(BASE)
    for module in _modules():
        rules.update(getattr(module, "POLICIES", {}))
    return rules


async def on_start(cloud) -> None:
    """Seed the flavors and start the compute actors' world (hosts, services)."""
    from cloudd.services.compute import flavor_store
    await flavor_store.seed(cloud.db)


SPEC = ServiceSpec(
    name="compute",
    error_style=compute_style,
    forbidden_message="Policy doesn't allow {rule} to be performed.",
    routes=routes,
    policies=policies(),
    on_start=on_start,
    middleware=microversion.middleware,
)
