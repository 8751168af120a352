"""The Placement API: the root document and the route table (as placement/handler.py)."""

from __future__ import annotations

from aiohttp import web

from cloudd.services.placement import (
    aggregates,
    allocations,
    candidates,
    inventories,
    microversion,
    providers,
    reshaper,
    resource_classes,
    sync,
    traits,
    usages,
)
from cloudd.services.placement.microversion import versioned
from cloudd.services.placement.policies import DEPRECATED, POLICIES, SCOPE_TYPES
from cloudd.services.placement.util import error_media, json_response
from cloudd.web.app import ServiceSpec
from cloudd.web.auth import public
from cloudd.web.errors import placement_style


@public
async def home(request: web.Request) -> web.Response:
    version = {"id": "v1.0", "max_version": microversion.fmt(microversion.MAX),
               "min_version": microversion.fmt(microversion.MIN), "status": "CURRENT",
               "links": [{"rel": "self", "href": ""}]}
    return json_response(request, {"versions": [version]})


# path -> {method: (handler, first microversion it exists in[, status below it])}
ROUTES: dict[str, dict[str, tuple]] = {
    "/": {"GET": (home, None)},
    "/resource_classes": {
        "GET": (resource_classes.list_resource_classes, (1, 2)),
        "POST": (resource_classes.create_resource_class, (1, 2))},
    "/resource_classes/{name}": {
        "GET": (resource_classes.get_resource_class, (1, 2)),
        "PUT": (resource_classes.update_resource_class, (1, 2)),
        "DELETE": (resource_classes.delete_resource_class, (1, 2))},
    "/resource_providers": {
        "GET": (providers.list_resource_providers, None),
        "POST": (providers.create_resource_provider, None)},
    "/resource_providers/{uuid}": {
        "GET": (providers.get_resource_provider, None),
        "PUT": (providers.update_resource_provider, None),
        "DELETE": (providers.delete_resource_provider, None)},
    "/resource_providers/{uuid}/inventories": {
        "GET": (inventories.get_inventories, None),
        "POST": (inventories.create_inventory, None),
        "PUT": (inventories.set_inventories, None),
        # Placement answers 405 (not 404) below 1.5 here.
        "DELETE": (inventories.delete_inventories, (1, 5), 405)},
    "/resource_providers/{uuid}/inventories/{resource_class}": {
        "GET": (inventories.get_inventory, None),
        "PUT": (inventories.update_inventory, None),
        "DELETE": (inventories.delete_inventory, None)},
    "/resource_providers/{uuid}/usages": {"GET": (usages.list_usages, None)},
    "/resource_providers/{uuid}/aggregates": {
        "GET": (aggregates.get_aggregates, (1, 1)),
        "PUT": (aggregates.set_aggregates, (1, 1))},
    "/resource_providers/{uuid}/allocations": {
        "GET": (allocations.list_for_resource_provider, None)},
    "/resource_providers/{uuid}/traits": {
        "GET": (traits.list_traits_for_resource_provider, (1, 6)),
        "PUT": (traits.update_traits_for_resource_provider, (1, 6)),
        "DELETE": (traits.delete_traits_for_resource_provider, (1, 6))},
    "/allocations": {"POST": (allocations.set_allocations, (1, 13))},
    "/allocations/{consumer_uuid}": {
        "GET": (allocations.list_for_consumer, None),
        "PUT": (allocations.set_allocations_for_consumer, None),
        "DELETE": (allocations.delete_allocations, None)},
    "/allocation_candidates": {
        "GET": (candidates.list_allocation_candidates, (1, 10))},
    "/traits": {"GET": (traits.list_traits, (1, 6))},
    "/traits/{name}": {
        "GET": (traits.get_trait, (1, 6)),
        "PUT": (traits.put_trait, (1, 6)),
        "DELETE": (traits.delete_trait, (1, 6))},
    "/usages": {"GET": (usages.get_total_usages, (1, 9))},
    "/reshaper": {"POST": (reshaper.reshape, (1, 30))},
}


def routes() -> list[tuple[str, str, object]]:
    out = []
    for path, methods in ROUTES.items():
        for method, (handler, first, *below) in methods.items():
            out.append((method, path, versioned(handler, first, *below)))
    return out


SPEC = ServiceSpec(
    name="placement",
    error_style=placement_style,
    forbidden_message="Policy does not allow {rule} to be performed.",
    routes=routes,
    policies=POLICIES,
    deprecated_policies=DEPRECATED,
    on_start=sync.on_start,
    scope_types=SCOPE_TYPES,
    middleware=microversion.middleware,
    error_media=error_media,
)
