"""A driver that keeps instances in memory: for unit and scale tests.

Failure knobs come from ``[fake_driver]`` in the config: fail every spawn,
fail spawns in a way that is worth retrying on another host, or delay
operations to widen race windows. ``calls`` records every operation that
reached the driver, so tests can tell a repeated command from a re-run one.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import deque
from collections.abc import AsyncIterator

from cloudd.agent.network import members
from cloudd.drivers.base import (
    Driver,
    DriverError,
    HostResources,
    InstanceInfo,
    InstanceSpec,
    LifecycleEvent,
    PowerState,
)


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
        self.specs: dict[str, InstanceSpec] = {}
        self.consoles: dict[str, list[str]] = {}
        # Each guest's NICs: its spec's vifs, then what attach/detach changed.
        self.vifs: dict[str, list[dict]] = {}
        self.fail_interface: bool = False       # attach/detach_interface fail
        # The newest members of each security group the host heard of (from
        # vifs and security_group_members commands), as a host's nft sets hold.
        self.security_group_members: dict[str, dict] = {}
        self.member_updates: list[str] = []     # groups of the commands applied
        self.calls: deque[tuple[str, str]] = deque(maxlen=10000)
        self._events: asyncio.Queue[LifecycleEvent] = asyncio.Queue()

    @classmethod
    def from_config(cls, hostname: str, cfg) -> FakeDriver:
        """A fake host sized and tuned by ``[fake_driver]`` (config.FakeDriverConfig)."""
        return cls(hostname, vcpus=cfg.vcpus, memory_mb=cfg.memory_mb, disk_gb=cfg.disk_gb,
                   fail_spawn=cfg.fail_spawn, retryable_failure=cfg.retryable_failure,
                   delay=cfg.delay)

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
        self.calls.append(("spawn", spec.uuid))
        await self._pause()
        if spec.uuid in self.instances:
            return
        if self.fail_spawn or self.retryable_failure:
            raise DriverError(f"fake spawn failure on {self.hostname}",
                              retryable=self.retryable_failure)
        self.instances[spec.uuid] = InstanceInfo(spec.uuid, PowerState.RUNNING)
        self.specs[spec.uuid] = spec
        self.vifs[spec.uuid] = list(spec.network_info or [])
        members.put_from_vifs(self.security_group_members, spec.network_info)
        # A boot log as a real guest's serial console would show one.
        self.consoles[spec.uuid] = [
            f"fake console of {spec.name} ({spec.uuid})",
            "[    0.000000] Linux version 6.1.0-fake (cloudd fake driver)",
            f"[    0.000000] Memory: {spec.memory_mb}M available, {spec.vcpus} CPUs",
            "[    1.000000] Freeing unused kernel memory",
            "[    2.000000] Run /sbin/init as init process",
            f"{spec.name} login: "]

    async def destroy(self, uuid: str) -> None:
        self.calls.append(("destroy", uuid))
        await self._pause()
        self.instances.pop(uuid, None)
        self.specs.pop(uuid, None)
        self.consoles.pop(uuid, None)
        self.vifs.pop(uuid, None)

    async def resize(self, uuid: str, spec: InstanceSpec) -> None:
        """The guest takes the new sizes; it runs afterwards (as after a cold resize)."""
        self.calls.append(("resize", uuid))
        await self._pause()
        self._get(uuid)
        self.specs[uuid] = spec
        self.vifs[uuid] = list(spec.network_info or [])
        members.put_from_vifs(self.security_group_members, spec.network_info)
        self._set(uuid, PowerState.RUNNING)
        self.consoles[uuid].append(f"resized to {spec.vcpus} vcpus, {spec.memory_mb} MB")

    async def rebuild(self, spec: InstanceSpec) -> None:
        """A fresh guest from the spec's image, same uuid; it runs afterwards."""
        self.calls.append(("rebuild", spec.uuid))
        await self._pause()
        self._get(spec.uuid)
        self.specs[spec.uuid] = spec
        self.vifs[spec.uuid] = list(spec.network_info or [])
        members.put_from_vifs(self.security_group_members, spec.network_info)
        self._set(spec.uuid, PowerState.RUNNING)
        self.consoles[spec.uuid] = [f"fake console of {spec.name} ({spec.uuid})",
                                    f"rebuilt from image {spec.image.get('id', '')}",
                                    "login: "]

    async def attach_interface(self, uuid: str, vif: dict) -> None:
        """The guest gets one more NIC (again: it keeps the one it has)."""
        self.calls.append(("attach_interface", uuid))
        await self._pause()
        self._get(uuid)
        if self.fail_interface:
            raise DriverError(f"fake attach_interface failure on {self.hostname}")
        nics = self.vifs.setdefault(uuid, [])
        nics[:] = [v for v in nics if v.get("port_id") != vif.get("port_id")] + [vif]
        members.put_from_vifs(self.security_group_members, [vif])
        self.consoles[uuid].append(f"eth{len(nics) - 1}: link up ({vif.get('mac')})")

    async def update_network(self, uuid: str, network_info: list[dict]) -> None:
        """Only the member sets the vifs carry (the guest's NICs stay)."""
        members.put_from_vifs(self.security_group_members, network_info)

    async def update_security_group_members(self, group_id: str, new: dict) -> None:
        self.member_updates.append(group_id)
        members.put(self.security_group_members, group_id, new)

    async def detach_interface(self, uuid: str, port_id: str, vif: dict) -> None:
        """The guest's NIC of that port goes (gone already: nothing to do)."""
        self.calls.append(("detach_interface", uuid))
        await self._pause()
        if self.fail_interface:
            raise DriverError(f"fake detach_interface failure on {self.hostname}")
        if uuid in self.vifs:
            self.vifs[uuid] = [v for v in self.vifs[uuid] if v.get("port_id") != port_id]

    async def reboot(self, uuid: str, hard: bool) -> None:
        self.calls.append(("reboot", uuid))
        await self._pause()
        self._set(uuid, PowerState.RUNNING)
        self.consoles[uuid].append("rebooting (hard)" if hard else "rebooting")

    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        self.calls.append(("power_off", uuid))
        await self._pause()
        self._set(uuid, PowerState.SHUTDOWN)

    async def power_on(self, uuid: str) -> None:
        self.calls.append(("power_on", uuid))
        await self._pause()
        self._set(uuid, PowerState.RUNNING)

    async def pause(self, uuid: str) -> None:
        self.calls.append(("pause", uuid))
        await self._pause()
        self._set(uuid, PowerState.PAUSED)

    async def unpause(self, uuid: str) -> None:
        self.calls.append(("unpause", uuid))
        await self._pause()
        self._set(uuid, PowerState.RUNNING)

    async def suspend(self, uuid: str) -> None:
        self.calls.append(("suspend", uuid))
        await self._pause()
        self._set(uuid, PowerState.SUSPENDED)

    async def resume(self, uuid: str) -> None:
        self.calls.append(("resume", uuid))
        await self._pause()
        self._set(uuid, PowerState.RUNNING)

    async def console_output(self, uuid: str, lines: int | None = None) -> str:
        self._get(uuid)
        out = self.consoles.get(uuid, [])
        return "\n".join(out[-lines:] if lines else out)

    async def snapshot(self, uuid: str, upload) -> None:
        """A small raw disk of zeros stands in for the guest's disk."""
        self._get(uuid)
        await self._pause()
        fd, path = tempfile.mkstemp(prefix="cloudd-fake-snapshot-")
        try:
            os.ftruncate(fd, 1024 * 1024)
            os.close(fd)
            await upload(path, "raw")
        finally:
            os.unlink(path)

    async def events(self) -> AsyncIterator[LifecycleEvent]:
        while True:
            yield await self._events.get()
