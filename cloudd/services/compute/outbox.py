"""The outbox: commands for an agent are rows in ``agent_command``.

The conductor enqueues a command inside its transaction and, after the
commit, calls ``ComputeService.hub.notify(host)``. The hub sends pending
commands while the agent is connected (state pending -> sent), resends sent
ones on reconnect or after ``[compute] command_timeout``, and stores the
result the agent returns (state done, ``result`` JSON; see protocol.py),
then wakes the conductor with the command's task id.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import delete, insert

from cloudd.db import prebuilt as pb
from cloudd.db import tables as t
from cloudd.services.compute.protocol import COMMANDS
from cloudd.services.compute.tasks import utcnow


async def enqueue(conn, *, host: str, op: str, args: dict, task_id: str | None = None,
                  instance_uuid: str | None = None) -> str:
    """Write one command for ``host``; returns its id."""
    if op not in COMMANDS:
        raise ValueError(f"unknown agent command {op!r}")
    command_id = str(uuid.uuid4())
    now = utcnow()
    await conn.execute(pb.insert_into(t.agent_command), {
        "id": command_id, "host": host, "task_id": task_id, "instance_uuid": instance_uuid,
        "op": op, "args": json.dumps(args), "state": "pending", "created_at": now,
        "updated_at": now})
    return command_id


async def coalesce(conn, *, hosts, op: str, args: dict, key: str) -> None:
    """One ``op`` command with ``args`` for each of ``hosts``, replacing the
    host's unsent (pending) ``op`` command with the same ``args[key]``: at
    most one waits per host and key, carrying the newest args.

    Replaced, not updated in place: on PostgreSQL the hub may have read the
    pending row (old args) and be about to mark it sent; an update would then
    never be delivered, while a new row always is (the old one, if sent all
    the same, is simply older; its result is for an unknown command).
    """
    hosts = sorted(set(hosts))
    if not hosts:
        return
    if op not in COMMANDS:
        raise ValueError(f"unknown agent command {op!r}")
    head = json.dumps({key: args[key]})[:-1] + ", "      # '{"KEY": VALUE, '
    text = json.dumps({key: args[key], **args})
    like = head.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    cmd = t.agent_command
    await conn.execute(delete(cmd).where(
        cmd.c.host.in_(hosts), cmd.c.op == op, cmd.c.state == "pending",
        cmd.c.args.like(like, escape="\\")))
    now = utcnow()
    await conn.execute(insert(cmd), [
        {"id": str(uuid.uuid4()), "host": host, "task_id": None, "instance_uuid": None,
         "op": op, "args": text, "state": "pending", "created_at": now, "updated_at": now}
        for host in hosts])


async def results_for_task(conn, task_id: str) -> list[dict]:
    """Every command of a task, oldest first: {"id", "op", "host", "state", "result"}."""
    rows = (await conn.execute(
        pb.select_where(t.agent_command, "task_id", order_by="created_at"),
        pb.where(task_id=task_id))).all()
    return [{"id": r.id, "op": r.op, "host": r.host, "state": r.state,
             "result": json.loads(r.result) if r.result else None} for r in rows]
