"""What a request asks of the scheduler: the placement query for a flavor
(Nova's resources_from_flavor, ``trait:*`` extra specs), extra-spec matching
against aggregate metadata (Nova's extra_specs_ops), the requested zone, host
and node, and the hints and group of a request spec."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloudd.db import tables as t

MAX_PLACEMENT_RESULTS = 1000          # Nova's [scheduler] max_placement_results
AGG_SCOPE = "aggregate_instance_extra_specs"


def resources_from_flavor(flavor: dict) -> dict[str, int]:
    """Nova's resources_from_flavor: VCPU, MEMORY_MB, DISK_GB (root + ephemeral +
    swap in GB rounded up), then ``resources:RC=N`` extra specs override."""
    swap_gb = (int(flavor.get("swap") or 0) + 1023) // 1024
    res = {"VCPU": int(flavor.get("vcpus") or 0),
           "MEMORY_MB": int(flavor.get("memory_mb") or 0),
           "DISK_GB": int(flavor.get("root_gb") or 0) + int(flavor.get("ephemeral_gb") or 0)
           + swap_gb}
    for key, value in (flavor.get("extra_specs") or {}).items():
        if key.startswith("resources:") and "resources" not in key[10:]:
            try:
                res[key[len("resources:"):]] = int(value)
            except (TypeError, ValueError):
                continue
    return {rc: n for rc, n in res.items() if n > 0}


def placement_query(flavor: dict) -> dict[str, Any]:
    """GET /allocation_candidates parameters for a flavor."""
    resources = resources_from_flavor(flavor)
    query: dict[str, Any] = {
        "resources": ",".join(f"{rc}:{n}" for rc, n in resources.items()),
        "limit": str(MAX_PLACEMENT_RESULTS)}
    required = []
    for key, value in (flavor.get("extra_specs") or {}).items():
        if key.startswith("trait:"):
            if value == "required":
                required.append(key[6:])
            elif value == "forbidden":
                required.append("!" + key[6:])
    if required:
        query["required"] = ",".join(required)
    return query


def spec_matches(value: str | None, req: str) -> bool:
    """Nova's extra_specs_ops.match for one aggregate value."""
    ops = {
        "=": lambda x, y: float(x) >= float(y),
        "<in>": lambda x, y: y in x,
        "<all-in>": lambda x, y: all(v in x for v in y.split()),
        "==": lambda x, y: float(x) == float(y),
        "!=": lambda x, y: float(x) != float(y),
        ">=": lambda x, y: float(x) >= float(y),
        "<=": lambda x, y: float(x) <= float(y),
        "s==": lambda x, y: x == y, "s!=": lambda x, y: x != y,
        "s<": lambda x, y: x < y, "s<=": lambda x, y: x <= y,
        "s>": lambda x, y: x > y, "s>=": lambda x, y: x >= y,
    }
    words = req.split()
    op = words.pop(0) if words else None
    if op != "<or>" and op not in ops:
        return value == req
    if value is None:
        return False
    if op == "<or>":
        options = [w for i, w in enumerate(words) if i % 2 == 0]
        return value in options
    if not words:
        return False
    try:
        return ops[op](value, " ".join(words) if op == "<all-in>" else words[0])
    except ValueError:
        return False


def group_ref(spec: dict):
    return spec.get("group") or (spec.get("scheduler_hints") or {}).get("group")


def needs_db(flavor: dict, spec: dict) -> bool:
    """Whether filtering this request reads anything beyond the snapshot."""
    hints = spec.get("scheduler_hints") or {}
    return bool(group_ref(spec) or hints.get("same_host") or hints.get("different_host")
                or any(k.startswith(AGG_SCOPE + ":")
                       for k in (flavor.get("extra_specs") or {})))


def requested_zone(spec: dict) -> tuple[str | None, str | None, str | None]:
    zone = spec.get("availability_zone") or None
    forced_host = spec.get("requested_host") or spec.get("force_host") or None
    forced_node = (spec.get("requested_hypervisor_hostname") or spec.get("force_node")
                   or None)
    if zone and ":" in zone:
        parts = zone.split(":")
        zone = parts[0] or None
        if len(parts) > 1 and parts[1]:
            forced_host = parts[1]
        if len(parts) > 2 and parts[2]:
            forced_node = parts[2]
    return zone, forced_host, forced_node


def uuid_list(value) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


async def aggregate_metadata(conn, host_names: set[str]) -> dict[str, dict[str, set[str]]]:
    """{host: {key: {values across its aggregates}}}."""
    ah, am = t.aggregate_host, t.aggregate_metadata
    out: dict[str, dict[str, set[str]]] = {}
    for r in await conn.execute(select(ah.c.host, am.c.meta_key, am.c.meta_value)
                                .join(am, am.c.aggregate_id == ah.c.aggregate_id)
                                .where(ah.c.host.in_(host_names))):
        out.setdefault(r.host, {}).setdefault(r.meta_key, set()).add(r.meta_value)
    return out
