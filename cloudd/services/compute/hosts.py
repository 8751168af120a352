"""Compute hosts: services (nova-compute per agent, nova-scheduler and
nova-conductor for the controller) and their up/down state."""

from __future__ import annotations

from datetime import datetime, timedelta

CONTROLLER_BINARIES = ("nova-scheduler", "nova-conductor")
COMPUTE_BINARY = "nova-compute"


def is_up(service_row, service_down_time: float, now: datetime) -> bool:
    """Up when not forced down and heard from within ``service_down_time``.

    The controller's own services are up while it serves (their
    ``last_seen_at`` is refreshed by the controller itself).
    """
    if service_row.forced_down:
        return False
    seen = service_row.last_seen_at or service_row.updated_at or service_row.created_at
    return seen is not None and now - seen <= timedelta(seconds=service_down_time)


async def next_num(conn, table) -> int:
    """The next integer id of a table with a ``num`` column (inside a write).

    Taken from ``id_counter`` with UPDATE ... RETURNING: the row lock makes
    concurrent writers on PostgreSQL wait for each other (SQLite has one
    writer anyway), and numbers are never reused.
    """
    from sqlalchemy import func, select, update

    from cloudd.db import tables as t
    counter = t.id_counter
    stmt = (update(counter).where(counter.c.name == table.name)
            .values(value=counter.c.value + 1).returning(counter.c.value))
    value = (await conn.execute(stmt)).scalar()
    if value is None:
        current = (await conn.execute(select(func.max(table.c.num)))).scalar() or 0
        await conn.execute(counter.insert().values(name=table.name, value=current))
        value = (await conn.execute(stmt)).scalar()
    return value


async def ensure_controller_services(db, hostname: str) -> None:
    """The controller's nova-scheduler and nova-conductor rows, seen now."""
    import uuid

    from sqlalchemy import select, update

    from cloudd.db import tables as t
    from cloudd.services.compute.tasks import utcnow
    now = utcnow()
    async with db.write() as conn:
        for binary in CONTROLLER_BINARIES:
            svc = t.compute_service
            found = (await conn.execute(select(svc.c.id).where(
                svc.c.host == hostname, svc.c.binary_name == binary))).first()
            if found:
                await conn.execute(update(svc).where(svc.c.id == found.id)
                                   .values(last_seen_at=now))
            else:
                await conn.execute(svc.insert().values(
                    id=str(uuid.uuid4()), num=await next_num(conn, svc), host=hostname,
                    binary_name=binary, zone="internal", disabled=False, forced_down=False,
                    version=0, last_seen_at=now, created_at=now, updated_at=now))
