"""Security group member sets on the agent (docs/network-design.md "Remote
groups"): the newest members object per group, from vifs' own
``security_group_members`` and from ``security_group_members`` commands.

A members object is ``{"version": int, "IPv4": [prefix], "IPv6": [prefix]}``;
the controller's versions only grow, so whichever of a spawn spec and a
command is applied last, the newest wins.
"""

from __future__ import annotations

ETHERTYPES = ("IPv4", "IPv6")


def valid(members) -> bool:
    return (isinstance(members, dict) and isinstance(members.get("version"), int)
            and all(isinstance(members.get(e, []), list) for e in ETHERTYPES))


def clean(members: dict) -> dict:
    return {"version": members["version"],
            **{e: sorted({str(p) for p in members.get(e) or []}) for e in ETHERTYPES}}


def newer(current: dict | None, incoming: dict) -> bool:
    return current is None or incoming["version"] >= current.get("version", 0)


def put(store: dict[str, dict], group_id: str, members) -> bool:
    """Keep ``members`` for ``group_id`` unless ``store`` has a newer one;
    True when the stored members changed."""
    if not isinstance(group_id, str) or not valid(members):
        return False
    members = clean(members)
    current = store.get(group_id)
    if not newer(current, members):
        return False
    store[group_id] = members
    return current is None or {e: current.get(e) for e in ETHERTYPES} != \
        {e: members[e] for e in ETHERTYPES}


def put_from_vifs(store: dict[str, dict], vifs) -> None:
    for vif in vifs or []:
        for gid, members in (vif.get("security_group_members") or {}).items():
            put(store, gid, members)


def referenced(vifs) -> set[str]:
    """Groups that a rule of these (filtered) vifs names as remote group."""
    return {r["remote_group_id"] for v in vifs or []
            if v.get("port_security_enabled", True)
            for r in v.get("security_group_rules") or [] if r.get("remote_group_id")}
