"""Tasks: one action on one instance, written with the request that starts it.

The API writes the instance change, the ``instance_action`` row and the task
in one transaction (``open_task``), commits, then wakes the conductor with
the task id (``ComputeService.wake``). The conductor advances the task step
by step (``step`` names where it is); while it waits on an agent the task is
``waiting``, and the agent hub wakes the conductor again when the command's
result is stored. On start the conductor re-reads every open task.

States: pending (not started) -> running (a step in progress, ``lease_until``
set) -> waiting (an agent command is out) -> ... -> done | failed |
cancelled (a delete took over). At most one open task per instance: the
unique index ``uq_task_open_per_instance`` refuses a second one, which
``open_task`` turns into Nova's 409.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from cloudd.db import prebuilt as pb
from cloudd.db import tables as t
from cloudd.web.errors import ApiError

OPEN_STATES = ("pending", "running", "waiting")

# Task kinds the conductor knows.
KINDS = frozenset({"build", "delete", "reboot", "stop", "start", "pause", "unpause",
                   "suspend", "resume", "resize", "confirm_resize", "revert_resize",
                   "rebuild", "snapshot", "attach_interface", "detach_interface"})


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def record_action(conn, *, instance_uuid: str, action: str, request_id: str,
                        project_id: str, user_id: str, when: datetime | None = None) -> str:
    """An ``instance_action`` row (os-instance-actions); returns its id."""
    row = action_row(instance_uuid=instance_uuid, action=action, request_id=request_id,
                     project_id=project_id, user_id=user_id, when=when or utcnow())
    await conn.execute(pb.insert_into(t.instance_action), row)
    return row["id"]


def action_row(*, instance_uuid: str, action: str, request_id: str, project_id: str,
               user_id: str, when: datetime) -> dict:
    """A new ``instance_action`` row (its ``id`` fresh)."""
    return {"id": str(uuid.uuid4()), "instance_uuid": instance_uuid, "action": action,
            "request_id": request_id, "project_id": project_id, "user_id": user_id,
            "start_time": when, "updated_at": when}


def task_row(*, instance_uuid: str, kind: str, payload: dict | None, request_id: str,
             action_id: str | None, when: datetime) -> dict:
    """A new pending task row (its ``id`` fresh)."""
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}")
    return {"id": str(uuid.uuid4()), "instance_uuid": instance_uuid, "kind": kind,
            "state": "pending", "step": "start", "payload": json.dumps(payload or {}),
            "attempts": 0, "request_id": request_id, "action_id": action_id,
            "created_at": when, "updated_at": when}


async def open_task(conn, *, instance_uuid: str, kind: str, payload: dict | None = None,
                    action: str | None = None, request_id: str = "", project_id: str = "",
                    user_id: str = "", conflict_message: str | None = None) -> str:
    """Insert a pending task (and its instance action when ``action`` is given).

    Call inside the API's write transaction, after the compare-and-swap on
    the instance's task_state. A second open task for the instance raises
    ApiError 409 (``conflict_message`` or a generic one), which rolls the
    whole transaction back.
    """
    now = utcnow()
    action_id = None
    if action:
        action_id = await record_action(conn, instance_uuid=instance_uuid, action=action,
                                        request_id=request_id, project_id=project_id,
                                        user_id=user_id, when=now)
    row = task_row(instance_uuid=instance_uuid, kind=kind, payload=payload,
                   request_id=request_id, action_id=action_id, when=now)
    task_id = row["id"]
    try:
        async with conn.begin_nested():
            await conn.execute(pb.insert_into(t.task), row)
    except IntegrityError:
        raise ApiError(409, conflict_message or (
            f"Cannot '{kind}' instance {instance_uuid} while another action is in "
            "progress.")) from None
    return task_id


async def cancel_open(conn, instance_uuid: str) -> list[str]:
    """Cancel the instance's open task (a delete takes over); returns their ids."""
    rows = (await conn.execute(
        t.task.select().where(t.task.c.instance_uuid == instance_uuid,
                              t.task.c.state.in_(OPEN_STATES)))).all()
    if rows:
        await conn.execute(update(t.task).where(
            t.task.c.instance_uuid == instance_uuid, t.task.c.state.in_(OPEN_STATES))
            .values(state="cancelled", lease_until=None, updated_at=utcnow()))
    return [r.id for r in rows]
