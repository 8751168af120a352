"""Runs controller commands against a driver, idempotently.

A command id already finished answers with its stored result (it is not run
again); one queued or running is ignored. One instance's commands run
strictly in the order they arrived; different instances' run concurrently.
Every result carries the guest's power state afterwards. A DriverError is a
result with ``ok`` false, its text and its ``retryable`` flag.

``version`` counts, per instance, commands started and finished; the client
uses it (with ``busy``) to send only power states no command changed while
they were being read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from cloudd.agent.state import AgentState
from cloudd.drivers.base import Driver, DriverError, InstanceSpec, PowerState
from cloudd.services.compute.protocol import COMMANDS

log = logging.getLogger("cloudd.agent")

_SPEC_FIELDS = {f.name for f in dataclasses.fields(InstanceSpec)}


def spec_of(raw) -> InstanceSpec:
    if not isinstance(raw, dict):
        raise DriverError("the command has no instance spec")
    try:
        return InstanceSpec(**{k: v for k, v in raw.items() if k in _SPEC_FIELDS})
    except TypeError as e:
        raise DriverError(f"bad instance spec: {e}") from None


def instance_of(op: str, args: dict) -> str | None:
    if isinstance(args.get("uuid"), str):
        return args["uuid"]
    spec = args.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("uuid"), str):
        return spec["uuid"]
    return None


def result(ok: bool, *, error: str | None = None, retryable: bool = False,
           power_state: int | None = None, data: dict | None = None) -> dict:
    return {"ok": ok, "error": error, "retryable": retryable, "power_state": power_state,
            "data": data or {}}


class Executor:
    def __init__(self, driver: Driver, state: AgentState,
                 send_result: Callable[[str, dict], Awaitable[None]],
                 upload: Callable[..., Awaitable[None]] | None = None) -> None:
        self.driver = driver
        self.upload = upload
        self.state = state
        self.send_result = send_result
        self._queues: dict[str, deque[dict]] = {}
        self._active: set[str] = set()          # command ids queued or running
        self._tasks: set[asyncio.Task] = set()
        self.busy: dict[str, int] = {}          # instance -> commands queued or running
        self.version: dict[str, int] = {}

    async def submit(self, frame: dict) -> None:
        command_id = frame.get("id")
        if not isinstance(command_id, str):
            return
        done = self.state.results.get(command_id)
        if done is not None:
            await self.send_result(command_id, done)      # a repeat: answer again
            return
        if command_id in self._active:
            return
        if self.state.was_acked(command_id):
            log.info("command already acknowledged; ignored",
                     extra={"fields": {"command": command_id}})
            return
        args = frame.get("args") if isinstance(frame.get("args"), dict) else {}
        cmd = {"id": command_id, "op": frame.get("op"), "args": args}
        key = instance_of(cmd["op"], args) or command_id
        self._active.add(command_id)
        self.busy[key] = self.busy.get(key, 0) + 1
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(cmd)
            return
        self._queues[key] = deque([cmd])
        task = asyncio.create_task(self._drain(key), name=f"agent-{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                cmd = queue[0]
                self._bump(key)
                res = await self.execute(cmd["op"], cmd["args"])
                self._bump(key)
                queue.popleft()
                self.busy[key] -= 1
                if not self.busy[key]:
                    del self.busy[key]
                self.state.add_result(cmd["id"], res)
                self._active.discard(cmd["id"])
                # Disconnected? The result is in the state: the next hello carries it.
                await self.send_result(cmd["id"], res)
        finally:
            self._queues.pop(key, None)

    def _bump(self, key: str) -> None:
        self.version[key] = self.version.get(key, 0) + 1

    async def execute(self, op, args: dict) -> dict:
        uuid = instance_of(op, args)
        try:
            if op not in COMMANDS:
                raise DriverError(f"unknown command {op!r}")
            await self._run(op, args)
        except DriverError as e:
            log.warning("command failed", extra={"fields": {
                "op": op, "instance": uuid, "error": str(e), "retryable": e.retryable}})
            return result(False, error=str(e), retryable=e.retryable,
                          power_state=await self.power_state(uuid))
        except Exception as e:
            log.exception("command crashed", extra={"fields": {"op": op, "instance": uuid}})
            return result(False, error=f"{type(e).__name__}: {e}",
                          power_state=await self.power_state(uuid))
        return result(True, power_state=await self.power_state(uuid))

    async def _run(self, op: str, args: dict) -> None:
        d = self.driver
        if op == "spawn":
            await d.spawn(spec_of(args.get("spec")))
        elif op == "rebuild":
            await d.rebuild(spec_of(args.get("spec")))
        elif op == "security_group_members":
            group_id, members = args.get("group_id"), args.get("members")
            if not isinstance(group_id, str) or not isinstance(members, dict):
                raise DriverError("security_group_members needs a group id and members")
            await d.update_security_group_members(group_id, members)
        else:
            uuid = args.get("uuid")
            if not isinstance(uuid, str):
                raise DriverError(f"{op} needs an instance uuid")
            if op == "destroy":
                await d.destroy(uuid)
            elif op == "reboot":
                await d.reboot(uuid, bool(args.get("hard")))
            elif op == "power_off":
                await d.power_off(uuid, float(args.get("timeout", 60.0)))
            elif op == "resize":
                await d.resize(uuid, spec_of(args.get("spec")))
            elif op == "snapshot":
                await self._snapshot(uuid, args.get("image_id"))
            elif op == "network_update":
                await d.update_network(uuid, args.get("network_info") or [])
            elif op == "attach_interface":
                vif = args.get("vif")
                if not isinstance(vif, dict) or not vif.get("port_id"):
                    raise DriverError("attach_interface needs a vif")
                await d.attach_interface(uuid, vif)
            elif op == "detach_interface":
                port_id = args.get("port_id")
                if not isinstance(port_id, str):
                    raise DriverError("detach_interface needs a port id")
                vif = args.get("vif") if isinstance(args.get("vif"), dict) else {}
                await d.detach_interface(uuid, port_id, vif)
            else:
                await getattr(d, op)(uuid)

    async def _snapshot(self, uuid: str, image_id) -> None:
        if not isinstance(image_id, str) or self.upload is None:
            raise DriverError("snapshot needs an image id and a controller to upload to")
        upload = self.upload

        async def send(path, disk_format: str) -> None:
            await upload(image_id, path, disk_format)

        await self.driver.snapshot(uuid, send)

    async def power_state(self, uuid: str | None) -> int | None:
        if uuid is None:
            return None
        try:
            infos = await self.driver.list_instances()
        except Exception as e:  # noqa: BLE001 - a result must still go back
            log.warning("cannot list instances", extra={"fields": {"error": str(e)}})
            return None
        for info in infos:
            if info.uuid == uuid:
                return int(info.power_state)
        return int(PowerState.NOSTATE)

    async def call(self, op, args: dict) -> dict:
        """A synchronous call: {"ok", "data", "error"}."""
        try:
            if op == "console_output":
                lines = args.get("lines")
                out = await self.driver.console_output(
                    args.get("uuid"), int(lines) if lines is not None else None)
                return {"ok": True, "data": {"output": out}, "error": None}
            if op == "console_info":
                info = await self.driver.console_info(args.get("uuid"), args.get("kind"))
                return {"ok": True, "data": info or {}, "error": None}
            raise DriverError(f"unknown call {op!r}")
        except DriverError as e:
            return {"ok": False, "data": None, "error": str(e)}
        except Exception as e:
            log.exception("call crashed", extra={"fields": {"op": op}})
            return {"ok": False, "data": None, "error": f"{type(e).__name__}: {e}"}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
