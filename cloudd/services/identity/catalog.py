"""The service catalog: every API cloudd serves, at the address it is reached on."""

from __future__ import annotations

import uuid
from functools import cache, lru_cache

from cloudd.config import Config

_NS = uuid.UUID("8a1f5a0e-9a44-4bd9-8c3e-7f8f1a5a6c11")
INTERFACES = ("public", "internal", "admin")

# (type, name, path under the public URL)
SERVICES = [
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("placement", "placement", "/placement"),
    ("image", "glance", "/image"),
    ("block-storage", "cinder", "/volume/v3"),
    ("volumev3", "cinderv3", "/volume/v3"),
    ("network", "neutron", "/network"),
]


# The catalog depends on the configuration only, so each form is built once
# per (public URL, region) and shared: callers must not modify what they get.


@cache
def _uid(*parts: str) -> str:
    return uuid.uuid5(_NS, "/".join(parts)).hex


@lru_cache(maxsize=1)
def services() -> list[dict]:
    return [{"id": _uid(stype), "type": stype, "name": name, "enabled": True,
             "description": f"cloudd {stype} service"} for stype, name, _ in SERVICES]


def endpoints(cfg: Config) -> list[dict]:
    return _endpoints(cfg.public_url, cfg.server.region)


@lru_cache(maxsize=8)
def _endpoints(base: str, region: str) -> list[dict]:
    out = []
    for stype, _, path in SERVICES:
        for iface in INTERFACES:
            out.append({"id": _uid(stype, iface), "service_id": _uid(stype),
                        "interface": iface, "region": region, "region_id": region,
                        "url": base + path, "enabled": True})
    return out


def token_catalog(cfg: Config) -> list[dict]:
    """The catalog as a token carries it."""
    return _token_catalog(cfg.public_url, cfg.server.region)


@lru_cache(maxsize=8)
def _token_catalog(base: str, region: str) -> list[dict]:
    eps = _endpoints(base, region)
    out = []
    for svc in services():
        out.append({
            "id": svc["id"], "type": svc["type"], "name": svc["name"],
            "endpoints": [{k: e[k] for k in ("id", "interface", "region", "region_id", "url")}
                          for e in eps if e["service_id"] == svc["id"]],
        })
    return out

