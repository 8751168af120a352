"""Security group members as the agents see them (Neutron's ipsets per remote
group, docs/network-design.md "Remote groups").

A rule whose remote is a group names the group on the wire; the addresses of
the group's ports travel separately as a *members* object::

    {"version": INT, "IPv4": ["10.253.0.7/32", ...], "IPv6": [...]}

``version`` grows with every snapshot this process takes (nanoseconds since
the epoch, strictly increasing), so an agent keeps the newest whichever way
a spawn spec and a ``security_group_members`` command overtake each other.

Who must hear of what:
- a port joins or leaves a group, changes its addresses, or goes
  (``members_changed``): ONE ``security_group_members`` command per host that
  has a bound compute port in a group whose rules name that group as remote
  group, coalesced while unsent (``ComputeService.security_group_members``);
- a group's rules change (``rules_changed``): a ``network_update`` for every
  instance with a bound port in the group (``ComputeService.ports_changed``).
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from cloudd.db import tables as t

P, PSG, A, R = t.port, t.port_security_group, t.ip_allocation, t.security_group_rule

_last_version = 0


def next_version() -> int:
    """Nanoseconds since the epoch, strictly increasing in this process."""
    global _last_version
    _last_version = max(time.time_ns(), _last_version + 1)
    return _last_version


async def snapshot(conn, group_ids) -> dict[str, dict]:
    """{group_id: members} of each group: its ports' addresses as host prefixes."""
    group_ids = sorted(set(group_ids))
    version = next_version()
    out = {g: {"version": version, "IPv4": set(), "IPv6": set()} for g in group_ids}
    if group_ids:
        q = (sa.select(PSG.c.security_group_id, A.c.ip_address)
             .select_from(PSG.join(A, A.c.port_id == PSG.c.port_id))
             .where(PSG.c.security_group_id.in_(group_ids)))
        # Stored addresses are canonical (ipam writes str(ipaddress)), so
        # each becomes its host prefix as text: a group of N members is
        # snapshotted at every membership change, and parsing each address
        # was half of that.
        for gid, ip in (await conn.execute(q)).all():
            if ":" in ip:
                out[gid]["IPv6"].add(ip + "/128")
            else:
                out[gid]["IPv4"].add(ip + "/32")
    for m in out.values():
        m["IPv4"], m["IPv6"] = sorted(m["IPv4"]), sorted(m["IPv6"])
    return out


def _live():
    return sa.and_(P.c.device_owner.like("compute:%"), P.c.binding_host_id != "",
                   P.c.device_id != "")


async def hosts_referring(conn, group_id: str) -> list[str]:
    """Hosts with a bound compute port in a group whose rules name ``group_id``
    as remote group (the hosts that hold its member set)."""
    referring = sa.select(R.c.security_group_id).where(R.c.remote_group_id == group_id)
    q = (sa.select(P.c.binding_host_id).distinct()
         .select_from(P.join(PSG, PSG.c.port_id == P.c.id))
         .where(_live(), PSG.c.security_group_id.in_(referring)))
    return sorted((await conn.execute(q)).scalars().all())


async def instances_in(conn, group_ids) -> list[str]:
    """Instances with a bound compute port in one of the groups."""
    group_ids = sorted(set(group_ids))
    if not group_ids:
        return []
    q = (sa.select(P.c.device_id).distinct()
         .select_from(P.join(PSG, PSG.c.port_id == P.c.id))
         .where(_live(), PSG.c.security_group_id.in_(group_ids)))
    return sorted((await conn.execute(q)).scalars().all())


def _compute(cloud, method: str):
    return getattr(getattr(cloud, "compute", None), method, None)


async def remote_groups(conn, group_ids) -> set[str]:
    """The groups that the rules of these groups name as remote group (the
    members a port in these groups carries in its vif)."""
    group_ids = sorted(set(group_ids))
    if not group_ids:
        return set()
    return set((await conn.execute(sa.select(R.c.remote_group_id).distinct().where(
        R.c.security_group_id.in_(group_ids), R.c.remote_group_id.is_not(None))))
        .scalars().all())


async def members_changed(cloud, conn, group_ids, host_has_vif: str | None = None) -> None:
    """The groups' members (ports or their addresses) changed, inside the
    caller's transaction: each host holding a group's set gets its members.

    ``host_has_vif``: a host this transaction also sends the new port's vif
    (the build's spawn); it gets no command for the groups the vif carries
    the members of (its plug refills those sets with them)."""
    send = _compute(cloud, "security_group_members")
    if send is None:
        return
    carried = await remote_groups(conn, group_ids) if host_has_vif else set()
    hosts_of = {}
    for gid in sorted(set(group_ids)):
        hosts = [h for h in await hosts_referring(conn, gid)
                 if not (gid in carried and h == host_has_vif)]
        if hosts:
            hosts_of[gid] = hosts
    members = await snapshot(conn, hosts_of) if hosts_of else {}
    for gid, hosts in hosts_of.items():
        await send(conn, gid, members[gid], hosts)


async def rules_changed(cloud, conn, group_ids, skip=()) -> None:
    """The groups' rules changed: their members' hosts re-apply those
    instances' vifs (one ``network_update`` per instance, not per pair)."""
    changed = _compute(cloud, "ports_changed")
    if changed is None:
        return
    skip = set(skip)
    uuids = [u for u in await instances_in(conn, group_ids) if u not in skip]
    if uuids:
        await changed(conn, uuids)
