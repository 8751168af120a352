"""The driver interface: what a compute agent asks of a hypervisor.

Trimmed from Nova's ComputeDriver to what cloudd uses. Every method is a
coroutine; drivers that wrap blocking libraries run those calls in threads.
Methods are idempotent where the agent may repeat them after a reconnect:
``destroy`` of an instance that is already gone succeeds, ``spawn`` of an
instance that already runs with the same uuid succeeds.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


class PowerState(enum.IntEnum):
    """Nova's power states (compute/power_state.py), as the API reports them."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


class DriverError(Exception):
    """An operation failed. ``retryable`` failures may succeed on another host."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class HostResources:
    """What a host offers placement: its inventory and identity."""

    hostname: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    hypervisor_type: str
    hypervisor_version: int
    cpu_info: dict = field(default_factory=dict)


@dataclass
class InstanceSpec:
    """Everything a driver needs to create one guest."""

    uuid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    image: dict = field(default_factory=dict)       # id, disk_format, properties
    metadata: dict = field(default_factory=dict)
    user_data: str | None = None
    key_data: str | None = None
    # The guest's vifs (docs/network-design.md) and its config drive's files
    # ({"files": {path: base64}}), or None for no config drive.
    network_info: list = field(default_factory=list)
    config_drive: dict | None = None


@dataclass
class InstanceInfo:
    uuid: str
    power_state: PowerState


@dataclass
class LifecycleEvent:
    uuid: str
    power_state: PowerState


class Driver(abc.ABC):
    name: str

    @abc.abstractmethod
    async def host_resources(self) -> HostResources: ...

    @abc.abstractmethod
    async def list_instances(self) -> list[InstanceInfo]: ...

    @abc.abstractmethod
    async def spawn(self, spec: InstanceSpec) -> None: ...

    @abc.abstractmethod
    async def destroy(self, uuid: str) -> None:
        """Remove the guest and all its files; succeed when it is already gone."""

    @abc.abstractmethod
    async def reboot(self, uuid: str, hard: bool) -> None: ...

    @abc.abstractmethod
    async def power_off(self, uuid: str, timeout: float = 60.0) -> None:
        """Graceful shutdown, hard stop once ``timeout`` runs out."""

    @abc.abstractmethod
    async def power_on(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def pause(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def unpause(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def suspend(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def resume(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def console_output(self, uuid: str, lines: int | None = None) -> str: ...

    async def console_info(self, uuid: str, kind: str) -> dict | None:
        """Where the running guest's ``kind`` console ("vnc" or "serial") listens:
        {"host", "port"}; None when it has no such console (the default)."""
        return None

    async def update_network(self, uuid: str, network_info: list[dict]) -> None:
        """Re-apply an instance's ports (security group rules, DHCP entries) on
        the host after they changed. The default has no host plumbing to
        update, so there is nothing to do (the fake driver; the libvirt
        driver until host networking lands)."""
        return

    async def update_security_group_members(self, group_id: str, members: dict) -> None:
        """A security group's member addresses changed (``{"version", "IPv4",
        "IPv6"}``, docs/network-design.md): refill the host's set of them that
        the rules of its vifs naming the group as remote group match. Keep the
        highest ``version`` (an older one is ignored). The default has no host
        plumbing: nothing to do."""
        return

    async def attach_interface(self, uuid: str, vif: dict) -> None:
        """Hot-plug one more vif (docs/network-design.md) into the guest, live
        when it runs and in its definition, host plumbing first. Idempotent."""
        raise DriverError(f"{self.name} driver cannot attach interfaces")

    async def detach_interface(self, uuid: str, port_id: str, vif: dict) -> None:
        """Unplug the port's vif from the guest, then from the host; succeed
        when it is already gone."""
        raise DriverError(f"{self.name} driver cannot detach interfaces")

    async def resize(self, uuid: str, spec: InstanceSpec) -> None:
        """Same-host resize: give the guest ``spec``'s sizes (it keeps its disk)."""
        raise DriverError(f"{self.name} driver cannot resize")

    async def rebuild(self, spec: InstanceSpec) -> None:
        """Recreate the guest from ``spec``'s image (default: destroy, then spawn)."""
        await self.destroy(spec.uuid)
        await self.spawn(spec)

    async def snapshot(self, uuid: str, upload) -> None:
        """A snapshot of the root disk, handed over as a file:
        ``await upload(path, disk_format)``."""
        raise DriverError(f"{self.name} driver cannot snapshot")

    async def attach_volume(self, uuid: str, volume: dict) -> None:
        raise DriverError(f"{self.name} driver cannot attach volumes")

    async def detach_volume(self, uuid: str, volume_id: str) -> None:
        raise DriverError(f"{self.name} driver cannot detach volumes")

    @abc.abstractmethod
    def events(self) -> AsyncIterator[LifecycleEvent]:
        """Power-state changes the hypervisor reports on its own."""

    async def close(self) -> None:
        """Release connections (default: nothing to release)."""
