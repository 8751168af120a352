"""Standard resource classes and traits, synced into the database at start.

Placement fills its resource_classes and traits tables from the
os-resource-classes and os-traits libraries once per process; so do we, from
``SPEC.on_start``.  Only missing names are inserted, so it is cheap when
nothing changed and safe when two processes start against one database (a
lost race is retried).
"""

from __future__ import annotations

import logging

import os_resource_classes as orc
import os_traits
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloudd.db import tables as t
from cloudd.services.placement.util import utcnow

log = logging.getLogger(__name__)

# Standard classes keep the library's order (Placement lists them by id).
STANDARD_ORDER = {name: index for index, name in enumerate(orc.STANDARDS)}


def rc_sort_key(name: str) -> tuple[int, str]:
    """Placement's resource class order: standards by id, then custom ones."""
    return (STANDARD_ORDER.get(name, len(STANDARD_ORDER)), name)


async def _insert_missing(conn, table, names: list[str]) -> list[str]:
    have = {r.name for r in await conn.execute(select(table.c.name))}
    missing = [n for n in names if n not in have]
    if missing:
        now = utcnow()
        await conn.execute(table.insert(), [
            {"name": n, "standard": True, "created_at": now} for n in missing])
    return missing


async def sync_standards(db) -> None:
    """Insert every standard resource class and trait not yet in the database."""
    for attempt in range(3):
        try:
            async with db.write() as conn:
                classes = await _insert_missing(conn, t.resource_class,
                                                list(orc.STANDARDS))
                traits = await _insert_missing(conn, t.trait,
                                               sorted(os_traits.get_traits()))
            if classes or traits:
                log.info("placement: synced %d standard resource classes and "
                         "%d standard traits", len(classes), len(traits))
            return
        except IntegrityError:
            if attempt == 2:
                raise
            log.info("placement: standard sync raced another process; retrying")


async def on_start(cloud) -> None:
    """``ServiceSpec.on_start`` hook for Placement."""
    await sync_standards(cloud.db)
