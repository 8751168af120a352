"""On start (idempotent): the shared network ``default`` with one IPv4 subnet of
``[network] default_cidr``, network type local, owned by the admin project."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from cloudd.db import tables as t
from cloudd.services.network import networks, subnets

log = logging.getLogger("cloudd.network")


async def admin_project_id(conn, cfg) -> str | None:
    P = t.project
    return (await conn.execute(sa.select(P.c.id).where(
        P.c.name == cfg.identity.admin_project, P.c.domain_id == "default"))).scalar()


async def ensure_default_network(cloud) -> str | None:
    """The default network's id (made now if missing); None when disabled."""
    cfg = cloud.config
    if not cfg.network.default_cidr:
        return None
    N = t.network
    async with cloud.db.write() as conn:
        owner = await admin_project_id(conn, cfg) or "admin"
        found = (await conn.execute(sa.select(N.c.id).where(
            N.c.name == cfg.network.default_network_name, N.c.project_id == owner,
            N.c.shared == sa.true()))).scalar()
        if found:
            return found
        net = await networks.insert(conn, cfg, owner, {
            "name": cfg.network.default_network_name, "shared": True,
            "description": "cloudd's default network"})
        sub = await subnets.insert(conn, net, owner, {
            "name": f"{cfg.network.default_network_name}-subnet", "ip_version": 4,
            "cidr": cfg.network.default_cidr})
    log.info("made the default network %s with subnet %s (%s)", net["id"], sub["id"],
             sub["cidr"])
    return net["id"]
