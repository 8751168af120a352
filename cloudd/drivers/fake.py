"""A driver that keeps instances in memory: for unit and scale tests.

Failure knobs come from ``[fake_driver]`` in the config: fail every spawn,
fail spawns in a way that is worth retrying on another host, or delay
operations to widen race windows.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from cloudd.drivers.base import (Driver, DriverError, HostResources, InstanceInfo,
                                 InstanceSpec, LifecycleEvent, PowerState)


class FakeDriver(Driver):
    name = "fake"

    def __init__(self, hostname: str, *, vcpus: int = 16, memory_mb: int = 32768,
                 disk_gb: int = 500, fail_spawn: bool = False,
                 retryable_failure: bool = False, delay: float = 0.0) -> None:
        self.hostname = hostname
        self.resources = HostResources(hostname=hostname, vcpus=vcpus, memory_mb=memory_mb,
                                       disk_gb=disk_gb, hypervisor_type="fake",
                                       hypervisor_version=1000)
        self.fail_spawn = fail_spawn
        self.retryable_failure = retryable_failure
        self.delay = delay
        self.instances: dict[str, InstanceInfo] = {}
        self.consoles: dict[str, list[str]] = {}
        self._events: asyncio.Queue[LifecycleEvent] = asyncio.Queue()

    async def _pause(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    def _get(self, uuid: str) -> InstanceInfo:
        try:
            return self.instances[uuid]
        except KeyError:
            raise DriverError(f"instance {uuid} not found on {self.hostname}") from None

    def _set(self, uuid: str, state: PowerState) -> None:
        self._get(uuid).power_state = state
        self._events.put_nowait(LifecycleEvent(uuid, state))

    async def host_resources(self) -> HostResources:
        return self.resources

    async def list_instances(self) -> list[InstanceInfo]:
        return [InstanceInfo(i.uuid, i.power_state) for i in self.instances.values()]

    async def spawn(self, spec: InstanceSpec) -> None:
        await self._pause()
        if spec.uuid in self.instances:
            return
        if self.fail_spawn or self.retryable_failure:
            raise DriverError(f"fake spawn failure on {self.hostname}",
                              retryable=self.retryable_failure)
        self.instances[spec.uuid] = InstanceInfo(spec.uuid, PowerState.RUNNING)
        self.consoles[spec.uuid] = [f"fake console of {spec.name} ({spec.uuid})",
                                    "login: "]

    async def destroy(self, uuid: str) -> None:
        await self._pause()
        self.instances.pop(uuid, None)
        self.consoles.pop(uuid, None)

    async def reboot(self, uuid: str, hard: bool) -> None:
        await self._pause()
        self._set(uuid, PowerState.RUNNING)
        self.consoles[uuid].append("rebooting (hard)" if hard else "rebooting")

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        await self._pause()
        self._set(uuid, PowerState.SHUTDOWN)

    async def power_on(self, uuid: str) -> None:
        await self._pause()
        self._set(uuid, PowerState.RUNNING)

    async def pause(self, uuid: str) -> None:
        self._set(uuid, PowerState.PAUSED)

    async def unpause(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING)

    async def suspend(self, uuid: str) -> None:
        self._set(uuid, PowerState.SUSPENDED)

    async def resume(self, uuid: str) -> None:
        self._set(uuid, PowerState.RUNNING)

    async def console_output(self, uuid: str, lines: int | None = None) -> str:
        self._get(uuid)
        out = self.consoles.get(uuid, [])
        return "\n".join(out[-lines:] if lines else out)

    async def snapshot(self, uuid: str, upload) -> None:
        self._get(uuid)
        await upload([b"fake snapshot of " + uuid.encode()])

    async def events(self) -> AsyncIterator[LifecycleEvent]:
        while True:
            yield await self._events.get()
