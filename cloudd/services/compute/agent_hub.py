"""The agent hub: the websocket endpoint compute agents connect to, and
delivery of the outbox (``agent_command`` rows) to them.

One connection per host (a new one replaces the old). On connect the agent
authenticates (``Authorization: Bearer HOST:SECRET``, a 401 before the
upgrade otherwise), says ``hello`` (protocol.py); the hub refuses a protocol
it does not speak, registers the host (agent_registry.register), stores the
results the agent still holds, reconciles its guests, answers ``welcome``
and sends every pending command and every one sent before and not yet
answered (the agent treats a repeated id as done).

While connected: ``notify(host)`` (called by the conductor after a commit)
wakes the host's sender, which sends pending commands in ``created_at``
order (state pending -> sent); results are stored in batches (state done,
only once), the conductor is woken with each newly done command's task and
the agent gets an ``ack``. Commands unanswered after ``[compute]
command_timeout`` are sent again. Heartbeats are written at most once per
``heartbeat_interval`` per host (one UPDATE for all hosts, from the actor's
periodic tick, which also refreshes the controller's own service rows).
``call(host, op, args, timeout)`` is a synchronous request (console output).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid as uuidlib
from datetime import timedelta

from aiohttp import WSMsgType, web
from sqlalchemy import and_, bindparam, or_, select, update

from cloudd.db import tables as t
from cloudd.runtime import Actor, ActorStopped
from cloudd.services.compute import agent_registry, hosts
from cloudd.services.compute.agent_auth import CredentialChecker, parse_authorization
from cloudd.services.compute.protocol import MIN_VERSION, PATH, VERSION
from cloudd.services.compute.tasks import utcnow
from cloudd.web.auth import public

log = logging.getLogger("cloudd.compute.agents")

BATCH = 500
HELLO_TIMEOUT = 30.0
MAX_FRAME = 16 * 1024 * 1024


class AgentUnavailable(Exception):
    """The host's agent is not connected, or did not answer in time."""


class AgentCallFailed(Exception):
    """The agent answered a call with an error (its message is the text)."""


def _fields(**kw) -> dict:
    return {"fields": kw}


class Link:
    """One connected agent."""

    def __init__(self, host: str, ws: web.WebSocketResponse) -> None:
        self.host = host
        self.ws = ws
        self.kick = asyncio.Event()
        self.calls: dict[str, asyncio.Future] = {}
        self.results: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.beat = False
        self.closed = False
        self.connected_at = utcnow()
        self._lock = asyncio.Lock()

    async def send(self, frame: dict) -> None:
        if self.closed:
            raise ConnectionResetError(f"agent {self.host} is disconnected")
        async with self._lock:
            await self.ws.send_str(json.dumps(frame))

    async def close(self, code: int = 1000, message: str = "") -> None:
        self.closed = True
        self.kick.set()
        with contextlib.suppress(ConnectionError, RuntimeError):   # already gone
            await self.ws.close(code=code, message=message.encode())


class AgentHub(Actor):
    name = "agent-hub"

    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute
        self.periodic_interval = compute.config.compute.heartbeat_interval
        self.links: dict[str, Link] = {}
        self.auth = CredentialChecker(compute.db)
        self.hostname = socket.gethostname()

    # --- actor -----------------------------------------------------------------------

    async def recover(self) -> None:
        await hosts.ensure_controller_services(self.compute.db, self.hostname)

    async def handle(self, msg):
        if isinstance(msg, tuple) and msg and msg[0] == "notify":
            self.notify(msg[1])

    async def periodic(self) -> None:
        db = self.compute.db
        await hosts.ensure_controller_services(db, self.hostname)
        seen = [h for h, link in self.links.items() if link.beat]
        for h in seen:
            self.links[h].beat = False
        await agent_registry.heartbeat(db, seen)
        valid = await self.auth.still_valid(list(self.links))
        for host, link in list(self.links.items()):
            if host not in valid:
                log.warning("host credential removed: disconnecting its agent",
                            extra=_fields(host=host))
                await link.close(4001, "credential removed")
            else:
                link.kick.set()        # resend commands past command_timeout

    # --- API for the conductor and the servers API -------------------------------------

    def notify(self, host: str) -> None:
        """Commands for ``host`` were committed: send them if it is connected."""
        link = self.links.get(host)
        if link is not None:
            link.kick.set()

    def connected(self, host: str) -> bool:
        link = self.links.get(host)
        return link is not None and not link.closed

    async def call(self, host: str, op: str, args: dict, timeout: float = 30.0):
        """Ask ``host``'s agent something and wait for its answer (the reply's data).

        AgentUnavailable when it is not connected or silent for ``timeout``
        seconds; AgentCallFailed with the agent's error text when it fails.
        """
        link = self.links.get(host)
        if link is None or link.closed:
            raise AgentUnavailable(f"Compute host {host} is not connected.")
        call_id = str(uuidlib.uuid4())
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        link.calls[call_id] = fut
        try:
            await link.send({"type": "call", "id": call_id, "op": op, "args": args})
            async with asyncio.timeout(timeout):
                reply = await fut
        except TimeoutError:
            raise AgentUnavailable(f"Compute host {host} did not answer {op} within "
                                   f"{timeout:g} seconds.") from None
        except ConnectionError:
            raise AgentUnavailable(f"Compute host {host} is not connected.") from None
        finally:
            link.calls.pop(call_id, None)
        if not reply.get("ok"):
            raise AgentCallFailed(reply.get("error") or f"{op} failed on {host}")
        return reply.get("data")

    async def close_all(self) -> None:
        """Shutting down: close every agent connection (they reconnect later)."""
        for link in list(self.links.values()):
            await link.close(1001, "controller shutting down")

    # --- the websocket endpoint -----------------------------------------------------

    async def serve_agent(self, request: web.Request) -> web.StreamResponse:
        creds = parse_authorization(request.headers.get("Authorization"))
        if creds is None or not await self.auth.check(*creds):
            who = creds[0] if creds else "?"
            log.warning("agent connection refused: bad credential",
                        extra=_fields(host=who, peer=request.remote))
            return web.json_response(
                {"error": {"code": 401, "title": "Unauthorized",
                           "message": "The host credential is not valid: issue one with "
                                      "`cloudd host add HOST`."}}, status=401)
        host = creds[0]
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        try:
            hello = await self._hello(ws, host)
            if hello is not None:
                await self._session(ws, host, hello)
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    async def _hello(self, ws, host: str) -> dict | None:
        try:
            msg = await ws.receive(timeout=HELLO_TIMEOUT)
            frame = json.loads(msg.data) if msg.type == WSMsgType.TEXT else None
        except (TimeoutError, ValueError):
            frame = None
        if not isinstance(frame, dict) or frame.get("type") != "hello":
            await self._refuse(ws, host, "the first frame must be a hello")
            return None
        proto = frame.get("protocol")
        if not isinstance(proto, int) or isinstance(proto, bool) \
                or not MIN_VERSION <= proto <= VERSION:
            await self._refuse(ws, host, f"agent protocol version {proto} is not supported: "
                                         f"this controller speaks versions {MIN_VERSION} to "
                                         f"{VERSION}; upgrade the agent or the controller")
            return None
        if frame.get("host", host) != host:
            await self._refuse(ws, host, f"hello names host {frame.get('host')!r} but the "
                                         f"credential is for {host!r}")
            return None
        return frame

    async def _refuse(self, ws, host: str, reason: str) -> None:
        log.warning("agent refused", extra=_fields(host=host, reason=reason))
        try:
            await ws.send_str(json.dumps({"type": "refused", "reason": reason}))
        finally:
            await ws.close(code=4000, message=b"refused")

    async def _session(self, ws, host: str, hello: dict) -> None:
        link = Link(host, ws)
        old = self.links.get(host)
        self.links[host] = link
        if old is not None:
            await old.close(4002, "replaced by a new connection")
        tasks: list[asyncio.Task] = []
        try:
            proto = hello["protocol"]
            await agent_registry.register(self.compute, host, hello, proto)
            await link.send({"type": "welcome", "protocol": proto,
                             "heartbeat_interval": self.compute.config.compute.heartbeat_interval})
            log.info("agent connected", extra=_fields(host=host, protocol=proto))
            done = hello.get("done") or {}
            if isinstance(done, dict) and done:
                await self._store(link, list(done.items()))
            await self._sync(link, hello, full=True)
            tasks = [asyncio.create_task(self._sender(link), name=f"agent-send-{host}"),
                     asyncio.create_task(self._writer(link), name=f"agent-results-{host}")]
            link.kick.set()
            await self._receive(link)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent session failed", extra=_fields(host=host))
        finally:
            link.closed = True
            if self.links.get(host) is link:
                del self.links[host]
            for task in tasks:
                task.cancel()
            for fut in link.calls.values():
                if not fut.done():
                    fut.set_exception(AgentUnavailable(f"Compute host {host} disconnected."))
            log.info("agent disconnected", extra=_fields(host=host))

    async def _receive(self, link: Link) -> None:
        cfg = self.compute.config.compute
        silence = max(cfg.service_down_time, 3 * cfg.heartbeat_interval)
        while not link.closed:
            try:
                msg = await link.ws.receive(timeout=silence)
            except TimeoutError:
                log.warning("agent silent: closing its connection", extra=_fields(host=link.host))
                await link.close(4003, "silent")
                return
            if msg.type != WSMsgType.TEXT:
                return                      # close, error
            try:
                frame = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(frame, dict):
                link.beat = True
                await self._dispatch(link, frame)

    async def _dispatch(self, link: Link, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "heartbeat":
            return
        if kind == "result" and isinstance(frame.get("id"), str):
            link.results.put_nowait((frame["id"], frame.get("result") or {}))
        elif kind == "reply":
            fut = link.calls.get(frame.get("id"))
            if fut is not None and not fut.done():
                fut.set_result(frame)
        elif kind == "event":
            uuid, power = frame.get("uuid"), frame.get("power_state")
            if isinstance(uuid, str) and isinstance(power, int):
                await agent_registry.sync_power(self.compute.db, link.host, uuid, power)
        elif kind == "sync":
            await self._sync(link, frame, full=True)
        else:
            log.debug("unknown agent frame", extra=_fields(host=link.host, type=kind))

    async def _sync(self, link: Link, frame: dict, full: bool) -> None:
        reported = {i["uuid"]: int(i.get("power_state") or 0)
                    for i in frame.get("instances") or []
                    if isinstance(i, dict) and isinstance(i.get("uuid"), str)}
        busy = {u for u in frame.get("busy") or [] if isinstance(u, str)}
        queued = await agent_registry.reconcile(self.compute.db, link.host, reported, busy, full)
        if queued:
            link.kick.set()

    # --- outbox delivery ----------------------------------------------------------------

    async def _sender(self, link: Link) -> None:
        cutoff = link.connected_at             # first round: resend everything sent before
        while not link.closed:
            await link.kick.wait()
            link.kick.clear()
            if link.closed:
                return
            try:
                await self._deliver(link, cutoff)
            except ConnectionError:
                return
            except Exception:
                log.exception("sending commands failed", extra=_fields(host=link.host))
                await asyncio.sleep(1.0)
                link.kick.set()
                continue
            cutoff = None

    async def _deliver(self, link: Link, cutoff) -> None:
        cmd = t.agent_command
        while True:
            now = utcnow()
            stale = cutoff or now - timedelta(seconds=self.compute.config.compute.command_timeout)
            async with self.compute.db.write() as conn:
                rows = (await conn.execute(
                    select(cmd.c.id, cmd.c.op, cmd.c.args).where(
                        cmd.c.host == link.host,
                        or_(cmd.c.state == "pending",
                            and_(cmd.c.state == "sent",
                                 or_(cmd.c.sent_at.is_(None), cmd.c.sent_at < stale))))
                    .order_by(cmd.c.created_at, cmd.c.id).limit(BATCH))).all()
                if rows:
                    await conn.execute(update(cmd).where(
                        cmd.c.id.in_([r.id for r in rows]), cmd.c.state != "done")
                        .values(state="sent", sent_at=now, updated_at=now))
            for r in rows:
                await link.send({"type": "command", "id": r.id, "op": r.op,
                                 "args": json.loads(r.args or "{}")})
            if len(rows) < BATCH:
                return

    async def _writer(self, link: Link) -> None:
        while True:
            batch = [await link.results.get()]
            while not link.results.empty() and len(batch) < BATCH:
                batch.append(link.results.get_nowait())
            delay = 0.5
            while True:
                try:
                    await self._store(link, batch)
                    break
                except ConnectionError:
                    return
                except Exception:
                    if link.closed:     # the agent resends unacknowledged results
                        return
                    log.exception("storing agent results failed; retrying",
                                  extra=_fields(host=link.host))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)

    async def _store(self, link: Link, batch: list[tuple[str, dict]]) -> None:
        """Results -> state done (once each), wake the conductor, then ack."""
        cmd = t.agent_command
        ids = sorted({cid for cid, _ in batch})
        newly = []
        now = utcnow()
        async with self.compute.db.write() as conn:
            rows = {r.id: r for r in (await conn.execute(
                select(cmd.c.id, cmd.c.host, cmd.c.task_id, cmd.c.instance_uuid, cmd.c.state)
                .where(cmd.c.id.in_(ids)))).all()}
            fresh: dict[str, dict] = {}
            for cid, result in batch:
                row = rows.get(cid)
                if row is None or row.host != link.host:
                    log.warning("result for an unknown command", extra=_fields(
                        host=link.host, command=cid))
                    continue
                if row.state == "done" or not isinstance(result, dict) or cid in fresh:
                    continue
                fresh[cid] = result
            if fresh:
                # One statement for the batch; the state guard keeps "only once"
                # (the rows were read in this same write transaction).
                await conn.execute(
                    update(cmd).where(cmd.c.id == bindparam("cid"), cmd.c.state != "done")
                    .values(state="done", result=bindparam("res"), updated_at=now),
                    [{"cid": cid, "res": json.dumps(result)} for cid, result in fresh.items()])
                newly = [(rows[cid], result) for cid, result in fresh.items()]
        for row, result in newly:
            if row.task_id:
                try:
                    self.compute.conductor.cast(row.task_id)
                except ActorStopped:
                    pass
            elif row.instance_uuid and isinstance(result.get("power_state"), int):
                await agent_registry.sync_power(self.compute.db, link.host,
                                                row.instance_uuid, result["power_state"])
        for cid in ids:
            await link.send({"type": "ack", "id": cid})


@public
async def agent_endpoint(request: web.Request) -> web.StreamResponse:
    return await request.app["cloud"].compute.hub.serve_agent(request)


async def _on_shutdown(app: web.Application) -> None:
    await app["cloud"].compute.hub.close_all()


def mount(app: web.Application) -> None:
    """Add the agent endpoint to the controller's main application."""
    from cloudd.services.compute import agent_images
    app.router.add_get(PATH, agent_endpoint)
    agent_images.mount(app)
    from cloudd.services.metadata import endpoint as metadata_endpoint
    metadata_endpoint.mount(app)                # the agents' metadata proxies
    app.on_shutdown.append(_on_shutdown)
