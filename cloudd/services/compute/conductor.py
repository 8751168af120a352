"""The conductor: advances tasks (build, delete, actions, resize) step by step.

A message is a task id. ``handle`` takes the task (a compare-and-swap to
``running`` with a lease), runs the step function for ``(task.kind,
task.step)`` and returns; it never waits on an agent. A step is a few
statements in one write transaction (``Step.txn``: the task row is
compare-and-swapped first, so a delete that cancelled the task meanwhile
rolls the whole step back) that change the instance, maybe enqueue agent
commands, and move the task on:

  ``goto(step)``   run the next step at once (same message);
  ``wait(step)``   commands are out: the task is ``waiting`` until every
                   command of this step is ``done``, then the hub's wake
                   (``conductor.cast(task_id)``) runs ``step`` with
                   ``Step.results``;
  ``finish(ok)``   the task is ``done`` or ``failed``.

After the commit the hosts that got commands are notified
(``compute.hub.notify(host)``). Delivery is at-least-once: a repeated wake
finds the task already moved on (or still waiting) and does nothing.

Messages of different tasks run concurrently (up to ``CONCURRENCY`` at a
time, ``BUSY_CONCURRENCY`` while API requests are in flight, so that a
user's request does not wait through loop turns full of build steps:
runtime/api_first.py; a test cloud with ``runtime.sync_cast`` runs them
inline, one at a time): the lease and the compare-and-swaps guard a task,
and a wake for a task whose step is in progress is remembered and run once
that step ends, so one task never has two steps in flight. The scheduler
serialises its own select-and-claim.

``recover()`` (on start) and the periodic sweep re-cast every open task:
pending, running with an expired lease (on start: any running task, as
there is one conductor per database and its process is gone), waiting
whose commands are all done. The sweep also notices commands out longer than
``[compute] command_timeout`` (the hub resends them; the task stays waiting).

Task payloads the API writes (``tasks.open_task(payload=...)``); keys
starting with "_" are the conductor's own bookkeeping:

  build            {}  (everything is on the instance row: flavor,
                   request_spec, image_ref, key_data, user_data, metadata)
  delete           {}
  reboot           {"hard": bool}
  stop             {"timeout": seconds (optional, default 60)}
  start, pause, unpause, suspend, resume   {}
  rebuild          {"image_ref": str, "image": {id, disk_format, properties}
                   (optional), "name", "metadata", "user_data", "key_data",
                   "preserve_ephemeral" (all optional; what the API did not
                   already write to the instance)}
  resize           {"flavor": the new flavor snapshot (as instance.flavor)}
  confirm_resize   {}   revert_resize   {}
  snapshot         {"image_id": the queued image the agent uploads into}
  attach_interface, detach_interface   {"port_id", "vif"} (interface_flow.py)

What the API sets before waking (its compare-and-swap on task_state):
build: vm_state building, task_state scheduling; delete: task_state
deleting (after ``tasks.cancel_open``); reboot: rebooting / rebooting_hard;
stop: powering-off; start: powering-on; pause: pausing; unpause:
unpausing; suspend: suspending; resume: resuming; rebuild: rebuilding;
resize: resize_prep; confirm_resize: (any, Nova leaves it None);
revert_resize: resize_reverting. The conductor does not re-check them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import select, update

from cloudd.db import prebuilt as pb
from cloudd.db import tables as t
from cloudd.runtime import Actor, api_first
from cloudd.services.compute import action_records as rec
from cloudd.services.compute import outbox
from cloudd.services.compute.tasks import OPEN_STATES, utcnow

log = logging.getLogger("cloudd.compute.conductor")

FINAL_STATES = ("done", "failed", "cancelled")
LEASE_SECONDS = 60.0
SWEEP_INTERVAL = 30.0
MAX_STEPS_PER_MESSAGE = 32
MAX_STEP_CRASHES = 3
CONCURRENCY = 16            # task messages handled at once
BUSY_CONCURRENCY = 4        # ... while API requests are in flight (api_first.py)
DRAIN_SECONDS = 10.0        # on stop: how long running steps may take to finish
# Steps that read the instance first: it is read in the transaction that takes
# the task (``Step.inst``) instead of one of its own.
PRELOAD_INSTANCE = frozenset({("build", "start")})
# Steps run in the transaction that takes their waiting task when every command
# they waited on succeeded (their success path is that one transaction). On any
# error that transaction rolls back whole and the step is taken the usual way.
INLINE_STEPS = frozenset({("build", "spawned")})


class Lost(Exception):
    """The task moved under this step (a delete cancelled it): roll back."""


class _NotInline(Exception):
    """An inline step needs more than the taking transaction: run it the usual way."""


class Step:
    """What a step function gets: the task, its payload and the helpers."""

    def __init__(self, conductor: Conductor, task, results: list[dict],
                 inst=None, retried: bool = False) -> None:
        self.conductor = conductor
        self.compute = conductor.compute
        self.db = conductor.compute.db
        self.cfg = conductor.compute.config
        self.task = task
        self.payload: dict = json.loads(task.payload or "{}")
        self.results = results          # the commands this step waited on
        # The instance row as it was when the step was taken (read in the same
        # transaction that took the task; None when that read was not done).
        self.inst = inst
        # True when the task was found ``running``: an earlier run of this step
        # was interrupted (a crash, a restart) and may have left things behind.
        self.retried = retried
        self.notify: set[str] = set()
        self._enqueued: list[str] = []
        self.moved = False
        self._moves = 0                 # task moves made so far (``_move``)
        self.next_state: str | None = None
        self._inline = False
        self._conn = None
        self._from_state = "running"    # what the task's compare-and-swaps expect

    @property
    def action_id(self) -> str | None:
        return self.task.action_id

    @property
    def instance_uuid(self) -> str:
        return self.task.instance_uuid

    @asynccontextmanager
    async def txn(self):
        """One write transaction that re-checks (and locks) the task row.
        An inline step (``INLINE_STEPS``) gets the transaction that took the
        task, once: the task row is locked and checked there already."""
        if self._inline:
            if self._conn is None:
                raise _NotInline("an inline step opened a second transaction")
            conn, self._conn = self._conn, None
            yield conn
            return
        # On SQLite write transactions run one at a time, so the check may come
        # last: a block that moves the task has it in ``_move``'s compare-and-
        # swap, any other gets it at its end. PostgreSQL takes the row lock
        # first, so the step locks the task before the instance, as the API does.
        deferred = self.db.dialect == "sqlite"
        async with self.db.write() as conn:
            moves = self._moves
            if not deferred:
                await self._guard(conn)
            yield conn
            if deferred and self._moves == moves:
                await self._guard(conn)

    async def _guard(self, conn) -> None:
        res = await conn.execute(pb.update_where(t.task, "id", "state", "step"), {
            **pb.where(id=self.task.id, state="running", step=self.task.step),
            "updated_at": utcnow()})
        if res.rowcount != 1:
            raise Lost(self.task.id)

    async def instance(self, conn):
        return (await conn.execute(pb.select_where(t.instance, "uuid"),
                                   pb.where(uuid=self.instance_uuid))).first()

    async def update_instance(self, conn, **values) -> None:
        values.setdefault("updated_at", utcnow())
        res = await conn.execute(pb.update_where(t.instance, "uuid", "deleted"), {
            **pb.where(uuid=self.instance_uuid, deleted=False), **values})
        if res.rowcount != 1:
            raise Lost(self.task.id)

    async def enqueue(self, conn, host: str, op: str, args: dict) -> str:
        command_id = await outbox.enqueue(conn, host=host, op=op, args=args,
                                          task_id=self.task.id,
                                          instance_uuid=self.instance_uuid)
        self._enqueued.append(command_id)
        self.notify.add(host)
        return command_id

    def result(self, op: str, host: str | None = None) -> dict | None:
        """The RESULT of this step's command ``op`` (on ``host``), or None."""
        for r in self.results:
            if r["op"] == op and (host is None or r["host"] == host):
                return r["result"] or {"ok": False, "error": "no result"}
        return None

    def failed_results(self) -> list[dict]:
        return [r for r in self.results if not (r["result"] or {}).get("ok")]

    # -- task transitions (inside txn) --------------------------------------------
    async def goto(self, conn, step: str, *, attempts: int | None = None) -> None:
        await self._move(conn, "running", step, lease=True, attempts=attempts)

    async def wait(self, conn, step: str) -> None:
        if not self._enqueued:
            raise ValueError("wait() without commands")
        self.payload["_wait"] = list(self._enqueued)
        await self._move(conn, "waiting", step, lease=False)

    async def finish(self, conn, ok: bool = True) -> None:
        await self._move(conn, "done" if ok else "failed", self.task.step, lease=False)

    async def _move(self, conn, state: str, step: str, *, lease: bool,
                    attempts: int | None = None) -> None:
        if state != "waiting":
            self.payload.pop("_wait", None)
        now = utcnow()
        values = {"state": state, "step": step, "payload": json.dumps(self.payload),
                  "lease_until": now + timedelta(seconds=LEASE_SECONDS) if lease else None,
                  "updated_at": now}
        if attempts is not None:
            values["attempts"] = attempts
        res = await conn.execute(pb.update_where(t.task, "id", "state", "step"), {
            **pb.where(id=self.task.id, state=self._from_state, step=self.task.step),
            **values})
        if res.rowcount != 1:
            raise Lost(self.task.id)
        self.moved = True
        self._moves += 1
        self.next_state = state


class Conductor(Actor):
    name = "conductor"
    periodic_interval = SWEEP_INTERVAL

    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute
        self._crashes: dict[str, int] = {}
        self._timed_out: set[str] = set()
        self._queued: set[str] = set()          # task ids in the inbox
        self._inflight: set[str] = set()
        self._again: set[str] = set()
        self._workers: set[asyncio.Task] = set()
        self._slots = api_first.Slots(CONCURRENCY, BUSY_CONCURRENCY)

    # -- the message ---------------------------------------------------------------
    def cast(self, msg):
        """A wake for a task already waiting in the inbox adds nothing (the
        queued one reads the task when it runs), so it is dropped."""
        task_id = str(msg)
        if not self._sync_cast:
            if task_id in self._queued:
                self._check_open()
                fut = asyncio.get_running_loop().create_future()
                fut.set_result(None)
                return fut
            self._queued.add(task_id)
        return super().cast(task_id)

    async def handle(self, msg):
        task_id = str(msg)
        self._queued.discard(task_id)
        if self._sync_cast:
            await self._run_task(task_id)
            return
        if task_id in self._inflight:
            self._again.add(task_id)        # run again once the current step ends
            return
        await self._slots.acquire()         # back-pressure: the inbox waits meanwhile
        self._inflight.add(task_id)
        worker = asyncio.create_task(self._worker(task_id), name=f"conductor-{task_id}")
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _worker(self, task_id: str) -> None:
        try:
            while True:
                self._again.discard(task_id)
                try:
                    await self._run_task(task_id)
                except Exception:
                    log.exception("task %s: handling failed", task_id)
                if task_id not in self._again:
                    return
        finally:
            self._inflight.discard(task_id)
            self._again.discard(task_id)
            self._slots.release()

    async def _run(self) -> None:
        try:
            await super()._run()
        except BaseException:
            for worker in list(self._workers):
                worker.cancel()
            raise
        # A graceful stop: let the steps in progress end (an unfinished one is
        # found again by recover(): its lease is void on the next start).
        if self._workers:
            _, pending = await asyncio.wait(list(self._workers), timeout=DRAIN_SECONDS)
            for worker in pending:
                worker.cancel()

    async def _run_task(self, task_id: str) -> None:
        task, results, inst, retried, ctx = await self._acquire(task_id)
        if ctx is not None:                 # the step ran inline
            self._crashes.pop(task.id, None)
            for host in ctx.notify:
                self._notify(host)
            if ctx.next_state != "running":
                return
            task, results, inst, retried = await self._reread(task_id), [], None, False
        for _ in range(MAX_STEPS_PER_MESSAGE):
            if task is None:
                return
            step_fn = _step_function(task.kind, task.step)
            if step_fn is None:
                log.error("task %s: no step %r for kind %r", task.id, task.step, task.kind)
                await self._crash_out(task, f"unknown step {task.kind}/{task.step}")
                return
            ctx = Step(self, task, results, inst, retried)
            try:
                await step_fn(ctx)
            except Lost:
                log.info("task %s (%s/%s) was taken over; step rolled back",
                         task.id, task.kind, task.step)
                return
            except Exception as exc:
                log.exception("task %s: step %s/%s failed", task.id, task.kind, task.step)
                await self._after_crash(task, exc)
                return
            self._crashes.pop(task.id, None)
            for host in ctx.notify:
                self._notify(host)
            if not ctx.moved:
                log.error("task %s: step %s/%s did not move the task", task.id,
                          task.kind, task.step)
                return
            if ctx.next_state != "running":
                return
            task, results, inst, retried = await self._reread(task_id), [], None, False
        return

    async def _acquire(self, task_id: str, inline: bool = True):
        """Compare-and-swap an open task to running (with a lease).
        Returns (task, results of the commands it waited on, the instance row,
        whether it was found running, the Step when the step ran inline) or
        (None, [], None, False, None)."""
        nothing = None, [], None, False, None
        now = utcnow()
        tried_inline = False
        try:
            async with self.compute.db.write() as conn:
                # FOR UPDATE (PostgreSQL): the task is locked before anything
                # else, as the API locks it, also when the step runs inline.
                task = (await conn.execute(pb.select_where(t.task, "id", for_update=True),
                                           pb.where(id=task_id))).first()
                if task is None or task.state not in OPEN_STATES:
                    return nothing
                if task.state == "running" and task.lease_until and task.lease_until > now:
                    return nothing
                # A waiting step's commands (also when a crashed step is retried).
                wanted = json.loads(task.payload or "{}").get("_wait") or []
                results: list[dict] = []
                if wanted:
                    results = [r for r in await outbox.results_for_task(conn, task.id)
                               if r["id"] in wanted]
                if task.state == "waiting" and (len(results) < len(wanted) or any(
                        r["state"] != "done" for r in results)):
                    return nothing
                retried = task.state == "running"
                lease = now + timedelta(seconds=LEASE_SECONDS)
                # An inline step moves the task straight on from waiting (its
                # compare-and-swap expects waiting), so it is not set running first.
                run_inline = inline and task.state == "waiting" and \
                    (task.kind, task.step) in INLINE_STEPS and bool(results) and \
                    all((r["result"] or {}).get("ok") for r in results)
                if not run_inline:
                    res = await conn.execute(pb.update_where(t.task, "id", "state", "step"), {
                        **pb.where(id=task.id, state=task.state, step=task.step),
                        "state": "running", "lease_until": lease, "updated_at": now})
                    if res.rowcount != 1:
                        return nothing
                inst = None
                if (task.kind, task.step) in PRELOAD_INSTANCE:
                    inst = (await conn.execute(pb.select_where(t.instance, "uuid"),
                                               pb.where(uuid=task.instance_uuid))).first()
                task = _Row({**task._mapping, "state": "running", "lease_until": lease,
                             "updated_at": now})
                if run_inline:
                    tried_inline = True
                    ctx = Step(self, task, results, inst)
                    ctx._inline, ctx._conn = True, conn
                    ctx._from_state = "waiting"
                    await _step_function(task.kind, task.step)(ctx)
                    if not ctx.moved or ctx._conn is not None:
                        raise _NotInline("the step did not move the task in the transaction")
                    return task, results, inst, retried, ctx
                return task, results, inst, retried, None
        except Exception as exc:
            if not tried_inline:
                raise
            # Rolled back whole (the task is waiting again): the usual way.
            log.debug("task %s: inline step not taken (%s)", task_id, exc)
            return await self._acquire(task_id, inline=False)

    async def _reread(self, task_id: str):
        async with self.compute.db.read() as conn:
            task = (await conn.execute(pb.select_where(t.task, "id"),
                                       pb.where(id=task_id))).first()
        if task is None or task.state != "running":
            return None
        return task

    def _notify(self, host: str) -> None:
        try:
            self.compute.hub.notify(host)
        except Exception:
            log.exception("agent hub notify(%s) failed", host)

    async def _after_crash(self, task, exc: Exception) -> None:
        """An unexpected error in a step: retry at the next sweep; after a few,
        fail the task with the instance in ERROR (Nova's unexpected exception)."""
        count = self._crashes.get(task.id, 0) + 1
        self._crashes[task.id] = count
        if count >= MAX_STEP_CRASHES:
            self._crashes.pop(task.id, None)
            await self._crash_out(task, f"{type(exc).__name__}: {exc}")
            return
        async with self.compute.db.write() as conn:
            await conn.execute(update(t.task).where(
                t.task.c.id == task.id, t.task.c.state == "running",
                t.task.c.step == task.step).values(lease_until=utcnow()))

    async def _crash_out(self, task, message: str) -> None:
        now = utcnow()
        async with self.compute.db.write() as conn:
            res = await conn.execute(update(t.task).where(
                t.task.c.id == task.id, t.task.c.state.in_(OPEN_STATES)).values(
                    state="failed", lease_until=None, updated_at=now))
            if res.rowcount != 1:
                return
            await conn.execute(update(t.instance).where(
                t.instance.c.uuid == task.instance_uuid,
                t.instance.c.deleted == False).values(
                    vm_state="error", task_state=None, updated_at=now))
            await rec.add_fault(conn, task.instance_uuid, message, details=message)
            await rec.action_finish(conn, task.action_id, ok=False)

    # -- recovery ------------------------------------------------------------------
    async def recover(self) -> None:
        """On start: a task left ``running`` was running in a process that is
        gone (one conductor per database), so its lease is void."""
        async with self.compute.db.write() as conn:
            await conn.execute(update(t.task).where(t.task.c.state == "running")
                               .values(lease_until=None))
        for task_id in await self.open_work():
            self.cast(task_id)

    async def periodic(self) -> None:
        for task_id in await self.open_work():
            self.cast(task_id)
        await self._check_command_timeouts()

    async def open_work(self) -> list[str]:
        """Ids of tasks that can move now: pending, running with an expired
        lease, waiting whose commands are all done."""
        now = utcnow()
        ready: list[str] = []
        async with self.compute.db.read() as conn:
            rows = (await conn.execute(select(t.task).where(
                t.task.c.state.in_(OPEN_STATES)).order_by(t.task.c.created_at))).all()
            waiting = [r for r in rows if r.state == "waiting"]
            states: dict[str, str] = {}
            if waiting:
                cmd = t.agent_command
                for r in await conn.execute(select(cmd.c.id, cmd.c.state).where(
                        cmd.c.task_id.in_([w.id for w in waiting]))):
                    states[r.id] = r.state
        for r in rows:
            if r.state == "pending":
                ready.append(r.id)
            elif r.state == "running":
                if r.lease_until is None or r.lease_until <= now:
                    ready.append(r.id)
            else:
                wanted = json.loads(r.payload or "{}").get("_wait") or []
                if all(states.get(c) == "done" for c in wanted):
                    ready.append(r.id)
        return ready

    async def _check_command_timeouts(self) -> None:
        """Commands of waiting tasks out longer than command_timeout: log once and
        nudge the hub (it resends); the task stays waiting, never lost."""
        limit = utcnow() - timedelta(seconds=self.compute.config.compute.command_timeout)
        cmd = t.agent_command
        async with self.compute.db.read() as conn:
            rows = (await conn.execute(select(cmd.c.id, cmd.c.host, cmd.c.op, cmd.c.task_id)
                                       .join(t.task, t.task.c.id == cmd.c.task_id)
                                       .where(t.task.c.state == "waiting",
                                              cmd.c.state.in_(("pending", "sent")),
                                              cmd.c.created_at < limit))).all()
        self._timed_out &= {r.id for r in rows}
        for r in rows:
            if r.id not in self._timed_out:
                self._timed_out.add(r.id)
                log.warning("command %s (%s on %s) for task %s has been out longer than "
                            "command_timeout; still waiting", r.id, r.op, r.host, r.task_id)
            self._notify(r.host)


class _Row:
    """A task row with some columns changed (attribute access, as a Row)."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)
        self._mapping = values


def _step_function(kind: str, step: str):
    from cloudd.services.compute import (
        action_flows,
        build_flow,
        interface_flow,
        resize_flow,
        snapshot_flow,
    )
    for module in (build_flow, action_flows, resize_flow, snapshot_flow, interface_flow):
        fn = module.STEPS.get((kind, step))
        if fn is not None:
            return fn
    return None
