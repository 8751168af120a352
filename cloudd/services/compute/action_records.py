"""What the conductor writes beside the instance: faults, action events, and
the action's finish (os-instance-actions), as Nova's compute manager does.

Every function runs inside the caller's write transaction.

Events are Nova's names: the conductor and scheduler record
``conductor_schedule_and_build_instances`` and ``schedule_instances``; an
agent command is recorded as Nova's compute manager method it stands for
(``compute__do_build_and_run_instance``, ``compute_reboot_instance``, ...).
An event's ``result`` is "Success" or "Error"; an action whose event failed
gets ``message = "Error"`` (Nova's action_event_finish).
"""

from __future__ import annotations

import socket
import uuid

from sqlalchemy import select, update

from cloudd.db import prebuilt as pb
from cloudd.db import tables as t
from cloudd.services.compute.tasks import utcnow

SUCCESS = "Success"
ERROR = "Error"
FAULT_MESSAGE_MAX = 255

# Where controller-side events happen (Nova records the conductor's host).
CONTROLLER_HOST = socket.gethostname()


async def event_start(conn, action_id: str | None, event: str,
                      host: str | None = None, *, fresh: bool = False) -> None:
    """Open an event (idempotent: an open event of that name is kept).
    ``fresh``: the caller knows none is open (skips looking)."""
    if not action_id:
        return
    ev = t.instance_action_event
    found = None if fresh else (await conn.execute(select(ev.c.id).where(
        ev.c.action_id == action_id, ev.c.event == event,
        ev.c.finish_time.is_(None)))).first()
    if found:
        if host:
            await conn.execute(update(ev).where(ev.c.id == found.id).values(host=host))
        return
    await conn.execute(pb.insert_into(ev), {
        "id": str(uuid.uuid4()), "action_id": action_id, "event": event,
        "host": host or CONTROLLER_HOST, "start_time": utcnow()})


async def event_finish(conn, action_id: str | None, event: str, ok: bool = True, *,
                       host: str | None = None, details: str | None = None,
                       traceback: str | None = None, started=None,
                       touch_action: bool = True) -> None:
    """Finish the open event of that name (opened now, at ``started``, if it
    never was). ``touch_action`` False: the caller finishes the action in the
    same transaction (``action_finish`` writes what this would)."""
    if not action_id:
        return
    ev = t.instance_action_event
    now = utcnow()
    values = {"finish_time": now, "result": SUCCESS if ok else ERROR}
    if not ok:
        values["details"] = (details or "")[:FAULT_MESSAGE_MAX] or None
        values["traceback"] = traceback or details or ""
    if host:
        values["host"] = host
    res = await conn.execute(pb.update_where(ev, "action_id", "event", null=("finish_time",)),
                             {**pb.where(action_id=action_id, event=event), **values})
    if res.rowcount == 0:
        if (await conn.execute(select(ev.c.id).where(
                ev.c.action_id == action_id, ev.c.event == event))).first():
            return      # finished already (a repeated step)
        await conn.execute(ev.insert().values(
            id=str(uuid.uuid4()), action_id=action_id, event=event,
            start_time=started or now, **{"host": host or CONTROLLER_HOST, **values}))
    if not touch_action:
        return
    values = {"updated_at": now} if ok else {"message": ERROR, "updated_at": now}
    await conn.execute(pb.update_where(t.instance_action, "id"),
                       {**pb.where(id=action_id), **values})


async def action_finish(conn, action_id: str | None, ok: bool = True) -> None:
    """The action is over: finish_time (and message "Error" when it failed)."""
    if not action_id:
        return
    now = utcnow()
    values = {"finish_time": now, "updated_at": now}
    if not ok:
        values["message"] = ERROR
    await conn.execute(pb.update_where(t.instance_action, "id"),
                       {**pb.where(id=action_id), **values})


async def add_fault(conn, instance_uuid: str, message: str, *, code: int = 500,
                    details: str = "", host: str | None = None) -> None:
    """An instance_fault row (what the server's ``fault`` shows)."""
    await conn.execute(t.instance_fault.insert().values(
        id=str(uuid.uuid4()), instance_uuid=instance_uuid, code=code,
        message=(message or "")[:FAULT_MESSAGE_MAX], details=details or "",
        host=host or CONTROLLER_HOST, created_at=utcnow()))


def error_of(result: dict | None, default: str = "Unknown error") -> str:
    """The error text of an agent RESULT (protocol.py)."""
    if not result:
        return default
    return str(result.get("error") or default)
