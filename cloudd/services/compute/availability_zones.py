"""os-availability-zone: the zones, derived from services and aggregates.

A zone exists while a service is in it (Nova's rule): a nova-compute host is
in the zone of its zoned aggregate, else ``[compute] default_availability_zone``;
the controller's services are in ``internal``, which the plain list hides.
A zone is *available* when it has an enabled service, and listed as not
available when all its services are disabled.

For the scheduler and the servers API (run inside any transaction):

  ``await zone_of_host(conn, cfg, host) -> str``
      the zone instances on ``host`` are in.
  ``await hosts_in_zone(conn, cfg, zone) -> set[str]``
      the hosts (with a nova-compute service) in ``zone``.
"""

from __future__ import annotations

from aiohttp import web

from cloudd.services.compute import aggregate_store, common, hosts, service_store
from cloudd.services.compute.policies import ADMIN, ANY
from cloudd.services.compute.tasks import utcnow

ROOT = "os_compute_api:os-availability-zone:%s"


async def zone_of_host(conn, cfg, host: str) -> str:
    zone_map = await aggregate_store.host_zone_map(conn)
    return zone_map.get(host) or cfg.compute.default_availability_zone


async def hosts_in_zone(conn, cfg, zone: str) -> set[str]:
    rows = await service_store.all_services(conn, binary=hosts.COMPUTE_BINARY)
    zone_map = await aggregate_store.host_zone_map(conn)
    return {r.host for r in rows if service_store.zone_of(r, zone_map, cfg) == zone}


def _split(services: list[tuple]) -> tuple[list[str], list[str]]:
    available = {zone for row, zone in services if not row.disabled}
    unavailable = {zone for row, zone in services
                   if row.disabled and zone not in available}
    return sorted(available), sorted(unavailable)


async def _services(request: web.Request) -> list[tuple]:
    cloud = common.cloud(request)
    async with cloud.db.read() as conn:
        return await service_store.with_zones(conn, cloud.config)


async def index(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "list", {})
    available, unavailable = _split(await _services(request))
    info = [{"zoneName": z, "zoneState": {"available": ok}, "hosts": None}
            for zones, ok in ((available, True), (unavailable, False))
            for z in zones if z != service_store.INTERNAL_ZONE]
    return web.json_response({"availabilityZoneInfo": info})


async def detail(request: web.Request) -> web.Response:
    common.context(request).authorize(ROOT % "detail", {})
    cfg = common.cloud(request).config
    services = await _services(request)
    available, unavailable = _split(services)
    now = utcnow()
    zone_hosts: dict[str, dict[str, dict]] = {}
    for row, zone in services:
        if row.disabled:
            continue
        zone_hosts.setdefault(zone, {}).setdefault(row.host, {})[row.binary_name] = {
            "available": service_store.is_up(row, cfg, now),
            "active": not row.disabled,
            "updated_at": common.isotime_micro(service_store.updated_at(row)),
        }
    info = [{"zoneName": z, "zoneState": {"available": True},
             "hosts": zone_hosts.get(z, {})} for z in available]
    info += [{"zoneName": z, "zoneState": {"available": False}, "hosts": None}
             for z in unavailable]
    return web.json_response({"availabilityZoneInfo": info})


ROUTES = {
    "/os-availability-zone": {"GET": (index, None)},
    "/os-availability-zone/detail": {"GET": (detail, None)},
}

POLICIES = {
    ROOT % "list": ANY,
    ROOT % "detail": ADMIN,
}
