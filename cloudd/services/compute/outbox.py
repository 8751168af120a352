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

from sqlalchemy import select

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
    await conn.execute(t.agent_command.insert().values(
        id=command_id, host=host, task_id=task_id, instance_uuid=instance_uuid, op=op,
        args=json.dumps(args), state="pending", created_at=now, updated_at=now))
    return command_id


async def coalesce(conn, *, host: str, op: str, args: dict, key: str) -> str:
    """Like ``enqueue``, but an unsent (pending) ``op`` command for ``host``
    with the same ``args[key]`` gets these args instead of a new row being
    written; it keeps its place in the queue. Returns the command's id."""
    cmd = t.agent_command
    rows = (await conn.execute(select(cmd.c.id, cmd.c.args).where(
        cmd.c.host == host, cmd.c.state == "pending", cmd.c.op == op))).all()
    for row in rows:
        if json.loads(row.args or "{}").get(key) == args[key]:
            done = await conn.execute(cmd.update().where(
                cmd.c.id == row.id, cmd.c.state == "pending").values(
                    args=json.dumps(args), updated_at=utcnow()))
            if done.rowcount == 1:
                return row.id
    return await enqueue(conn, host=host, op=op, args=args)


async def results_for_task(conn, task_id: str) -> list[dict]:
    """Every command of a task, oldest first: {"id", "op", "host", "state", "result"}."""
    rows = (await conn.execute(
        t.agent_command.select().where(t.agent_command.c.task_id == task_id)
        .order_by(t.agent_command.c.created_at))).all()
    return [{"id": r.id, "op": r.op, "host": r.host, "state": r.state,
             "result": json.loads(r.result) if r.result else None} for r in rows]
