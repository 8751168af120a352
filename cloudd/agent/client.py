"""The agent's connection to the controller: hello, commands, heartbeats.

``AgentClient.run(stop)`` connects to CONTROLLER/agent/v1 with the host's
credential, sends ``hello`` and serves the connection until it drops, then
reconnects with capped exponential backoff (with jitter) until ``stop`` is
set; it returns 0 then. A rejected credential (401) or a ``refused`` hello
(protocol version) is final: it is logged and ``run`` returns 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket

import aiohttp

from cloudd.agent.executor import Executor
from cloudd.agent.state import AgentState
from cloudd.drivers.base import Driver
from cloudd.services.compute import agent_registry, protocol

log = logging.getLogger("cloudd.agent")

SYNC_INTERVAL = 60.0


class Fatal(Exception):
    """The controller will not take this agent; retrying cannot help."""


def _fields(**kw) -> dict:
    return {"fields": kw}


class AgentClient:
    def __init__(self, controller: str, host: str, secret: str, driver: Driver, agent_cfg,
                 state_dir, *, protocol_version: int = protocol.VERSION,
                 sync_interval: float = SYNC_INTERVAL, backoff_min: float = 0.2,
                 backoff_max: float = 30.0) -> None:
        self.url = controller.rstrip("/") + protocol.PATH
        self.host = host
        self.secret = secret
        self.driver = driver
        self.agent_cfg = agent_cfg
        self.protocol_version = protocol_version
        self.sync_interval = sync_interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.state = AgentState(state_dir).load()
        from cloudd.agent.uploads import uploader
        self.executor = Executor(driver, self.state, self._send_result,
                                 upload=uploader(controller, host, secret))
        self.heartbeat_interval = 10.0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ready = asyncio.Event()           # welcomed on the current connection
        self.connections = 0                   # welcomes so far (tests)
        self.error: str | None = None          # why run() gave up
        self._lock = asyncio.Lock()

    # --- sending -------------------------------------------------------------------

    async def _send(self, frame: dict) -> None:
        ws = self.ws
        if ws is None or ws.closed or not self.ready.is_set():
            raise ConnectionResetError("not connected")
        async with self._lock:
            await ws.send_str(json.dumps(frame))

    async def _send_result(self, command_id: str, result: dict) -> None:
        try:
            await self._send({"type": "result", "id": command_id, "result": result})
        except (ConnectionError, RuntimeError):
            pass                  # in state.results: the next hello reports it

    async def _snapshot(self) -> tuple[list[dict], list[str]]:
        """Power states no command touched while they were read, and the busy ones."""
        before = dict(self.executor.version)
        infos = await self.driver.list_instances()
        busy = set(self.executor.busy)
        changed = {k for k, v in self.executor.version.items() if before.get(k) != v}
        skip = busy | changed
        return ([{"uuid": i.uuid, "power_state": int(i.power_state)}
                 for i in infos if i.uuid not in skip], sorted(skip))

    # --- the connection ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        delay = self.backoff_min
        events = asyncio.create_task(self._events(), name="agent-events")
        try:
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    welcomed_before = self.connections
                    try:
                        await self._connect_once(session, stop)
                    except Fatal as e:
                        self.error = str(e)
                        log.error("controller refused this agent: %s", e,
                                  extra=_fields(host=self.host, controller=self.url))
                        return 1
                    except (aiohttp.ClientError, OSError, TimeoutError) as e:
                        log.warning("cannot reach the controller; retrying",
                                    extra=_fields(controller=self.url, error=str(e) or
                                                  type(e).__name__, retry_in=round(delay, 2)))
                    if stop.is_set():
                        break
                    if self.connections > welcomed_before:
                        delay = self.backoff_min
                    try:
                        async with asyncio.timeout(delay * (0.5 + random.random() / 2)):
                            await stop.wait()
                    except TimeoutError:
                        pass
                    delay = min(delay * 2, self.backoff_max)
            return 0
        finally:
            events.cancel()
            await asyncio.gather(events, return_exceptions=True)
            await self.executor.close()
            self.state.flush()

    async def _connect_once(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.host}:{self.secret}"}
        try:
            ws = await session.ws_connect(self.url, headers=headers, heartbeat=30.0,
                                          max_msg_size=16 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as e:
            if e.status == 401:
                raise Fatal(f"the controller rejected the credential for host {self.host!r} "
                            "(401): issue one with `cloudd host add HOST` and pass it with "
                            "--credential-file or CLOUDD_AGENT_CREDENTIAL") from None
            raise
        self.ws = ws
        tasks: list[asyncio.Task] = []
        try:
            await self._greet(ws)
            tasks = [asyncio.create_task(self._heartbeats()),
                     asyncio.create_task(self._syncs())]
            reader = asyncio.create_task(self._read(ws))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait([reader, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not reader.done():
                await ws.close()
            await asyncio.gather(reader, return_exceptions=True)
            if reader.done() and not reader.cancelled() and reader.exception():
                raise reader.exception()
        finally:
            self.ready.clear()
            self.ws = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not ws.closed:
                await ws.close()

    async def _greet(self, ws) -> None:
        res = await self.driver.host_resources()
        host_ip = await asyncio.to_thread(_host_ip)
        instances, busy = await self._snapshot()
        done = dict(self.state.results)
        hello = {"type": "hello", "protocol": self.protocol_version, "host": self.host,
                 "resources": {"hypervisor_hostname": res.hostname, "vcpus": res.vcpus,
                               "memory_mb": res.memory_mb, "disk_gb": res.disk_gb,
                               "hypervisor_type": res.hypervisor_type,
                               "hypervisor_version": res.hypervisor_version,
                               "cpu_info": res.cpu_info, "host_ip": host_ip},
                 "inventory": agent_registry.agent_inventory(res, self.agent_cfg),
                 "instances": instances, "busy": busy, "done": done}
        await ws.send_str(json.dumps(hello))
        msg = await ws.receive(timeout=60)
        frame = _frame(msg)
        if frame is None:
            raise aiohttp.ClientError(f"the controller closed the connection ({msg.type.name})")
        if frame.get("type") == "refused":
            raise Fatal(frame.get("reason") or "refused")
        if frame.get("type") != "welcome":
            raise aiohttp.ClientError(f"expected welcome, got {frame.get('type')!r}")
        self.heartbeat_interval = float(frame.get("heartbeat_interval") or 10.0)
        self.ready.set()
        self.connections += 1
        log.info("connected to the controller", extra=_fields(
            controller=self.url, host=self.host, protocol=frame.get("protocol")))
        for command_id, result in list(self.state.results.items()):
            if command_id not in done:            # finished while we said hello
                await self._send_result(command_id, result)

    async def _read(self, ws) -> None:
        async for msg in ws:
            frame = _frame(msg)
            if frame is None:
                continue
            kind = frame.get("type")
            if kind == "command":
                await self.executor.submit(frame)
            elif kind == "ack":
                self.state.ack(frame.get("id"))
            elif kind == "call":
                asyncio.create_task(self._answer(frame))
            elif kind == "refused":
                raise Fatal(frame.get("reason") or "refused")
        self.state.flush()

    async def _answer(self, frame: dict) -> None:
        args = frame.get("args") if isinstance(frame.get("args"), dict) else {}
        reply = await self.executor.call(frame.get("op"), args)
        try:
            await self._send({"type": "reply", "id": frame.get("id"), **reply})
        except (ConnectionError, RuntimeError):
            pass

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._send({"type": "heartbeat"})
            except (ConnectionError, RuntimeError):
                return
            self.state.flush()

    async def _syncs(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            await self.sync()

    async def sync(self) -> None:
        """Send every guest's power state (Nova's _sync_power_states)."""
        instances, busy = await self._snapshot()
        try:
            await self._send({"type": "sync", "instances": instances, "busy": busy})
        except (ConnectionError, RuntimeError):
            pass

    async def _events(self) -> None:
        """The driver's lifecycle events, sent as fresh power states."""
        async for event in self.driver.events():
            if not self.ready.is_set() or event.uuid in self.executor.busy:
                continue
            version = self.executor.version.get(event.uuid)
            infos = {i.uuid: i for i in await self.driver.list_instances()}
            if event.uuid in self.executor.busy or \
                    self.executor.version.get(event.uuid) != version:
                continue       # a command is changing it: its result says how it ends
            info = infos.get(event.uuid)
            power = int(info.power_state) if info else 0
            try:
                await self._send({"type": "event", "uuid": event.uuid, "power_state": power})
            except (ConnectionError, RuntimeError):
                pass


def _frame(msg) -> dict | None:
    if msg.type != aiohttp.WSMsgType.TEXT:
        return None
    try:
        frame = json.loads(msg.data)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _host_ip() -> str | None:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None
