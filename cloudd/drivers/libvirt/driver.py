"""LibvirtDriver: guests under QEMU/KVM through libvirt.

Every libvirt call blocks, so each runs in a worker thread
(``asyncio.to_thread``); lifecycle events arrive through libvirt's asyncio
event integration (``libvirtaio``) and become ``LifecycleEvent``s. A guest
that powers itself off shows up as a SHUTDOWN event; ``list_instances``
serves the agent's periodic power-state sync for missed events.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

from cloudd.drivers.base import (
    Driver,
    DriverError,
    HostResources,
    InstanceInfo,
    InstanceSpec,
    LifecycleEvent,
    PowerState,
)
from cloudd.drivers.libvirt import consoles, disks
from cloudd.drivers.libvirt.domain import (
    NAME_PREFIX,
    Disk,
    Domain,
    domain_name,
    nic_of,
    nic_xml,
    render,
)
from cloudd.drivers.libvirt.imagecache import ImageCache
from cloudd.drivers.libvirt.virt_type import detect_virt_type

log = logging.getLogger("cloudd.drivers.libvirt")

DETACH_WAIT = 30.0          # seconds a live guest gets to release a detached NIC
# virDomainState -> Nova's power state (nova/virt/libvirt/driver.py LIBVIRT_POWER_STATE).
_POWER = {0: PowerState.NOSTATE, 1: PowerState.RUNNING, 2: PowerState.RUNNING,
          3: PowerState.PAUSED, 4: PowerState.SHUTDOWN, 5: PowerState.SHUTDOWN,
          6: PowerState.CRASHED, 7: PowerState.SUSPENDED}


def _libvirt():
    try:
        import libvirt
    except ImportError:
        raise DriverError("libvirt-python is not installed (pip install 'cloudd[libvirt]')") \
            from None
    return libvirt


class LibvirtDriver(Driver):
    name = "libvirt"

    def __init__(self, hostname: str, *, uri: str = "qemu:///system",
                 virt_type: str = "auto", instances_dir: Path,
                 image_cache: ImageCache | None = None,
                 shutdown_timeout: float = 60.0, disk_cache: str = "none",
                 probe_kernel: str = "", traverse_root: Path | None = None,
                 vnc_listen: str | None = "127.0.0.1",
                 serial_port_range: tuple[int, int] | None = (10000, 20000),
                 ephemeral_formats: dict[str, str] | None = None,
                 default_ephemeral_format: str = disks.DEFAULT_EPHEMERAL,
                 host_network=None) -> None:
        self.hostname = hostname
        # cloudd.agent.network.HostNetwork: bridges, DHCP and rules for the vifs
        # (None: guests' NICs go to bridges someone else made)
        self.host_network = host_network
        self.uri = uri
        self.wanted_virt_type = virt_type
        self.virt_type = "qemu"
        self.instances_dir = Path(instances_dir)
        self.image_cache = image_cache
        self.shutdown_timeout = shutdown_timeout
        self.disk_cache = disk_cache
        self.probe_kernel = probe_kernel
        self.traverse_root = traverse_root
        self.vnc_listen = vnc_listen
        self.serial_port_range = serial_port_range
        self._serial_ports: dict[str, int] = {}     # chosen, not yet seen in a domain
        self.ephemeral_formats = ephemeral_formats
        self.default_ephemeral_format = default_ephemeral_format
        self.conn = None
        self._events: asyncio.Queue[LifecycleEvent] = asyncio.Queue()

    @classmethod
    def from_config(cls, hostname: str, cfg, *, controller: str = "",
                    secret: str = "", state_dir: Path | None = None) -> LibvirtDriver:
        """A driver from ``[libvirt]``; base images come from ``controller``."""
        from cloudd.drivers.libvirt.fetch import downloader
        lv = cfg.libvirt
        base = Path(state_dir) if state_dir else cfg.data_dir / f"agent-{hostname}"
        instances = Path(lv.instances_dir).expanduser() if lv.instances_dir \
            else base / "instances"
        cache_dir = Path(lv.image_cache_dir).expanduser() if lv.image_cache_dir \
            else base / "images"
        cache = ImageCache(cache_dir, downloader(controller, hostname, secret)) \
            if controller else None
        return cls(hostname, uri=lv.uri, virt_type=lv.virt_type, instances_dir=instances,
                   host_network=host_network_from_config(hostname, cfg, base,
                                                         controller, secret),
                   image_cache=cache, shutdown_timeout=lv.shutdown_timeout,
                   probe_kernel=lv.probe_kernel, traverse_root=cfg.data_dir,
                   vnc_listen=lv.vnc_listen or None,
                   serial_port_range=consoles.port_range(lv.serial_port_range),
                   ephemeral_formats=lv.ephemeral_format_map(),
                   default_ephemeral_format=lv.default_ephemeral_format)

    # --- connection ---------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        """Guests' files must be reachable by QEMU's own user: the instance and
        cache directories, and the directories above them up to the data
        directory, get search permission (o+x) only, never read."""
        dirs = [self.instances_dir]
        if self.image_cache is not None:
            dirs.append(self.image_cache.directory)
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
            chain = [d, *d.parents]
            for p in chain:
                if self.traverse_root is not None and not p.is_relative_to(self.traverse_root):
                    break
                mode = p.stat().st_mode
                if not mode & 0o001:
                    p.chmod(mode | 0o001)
                if self.traverse_root is None:
                    break

    async def connect(self) -> None:
        libvirt = _libvirt()
        await asyncio.to_thread(self._prepare_dirs)
        if not self.uri.startswith("test://"):
            import libvirtaio
            libvirtaio.virEventRegisterAsyncIOImpl(loop=asyncio.get_running_loop())
        self.conn = await asyncio.to_thread(libvirt.open, self.uri)
        self.virt_type = await detect_virt_type(self.wanted_virt_type, self.probe_kernel)
        if not self.uri.startswith("test://"):
            self.conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
        log.info("libvirt connected", extra={"fields": {"uri": self.uri,
                                                        "virt_type": self.virt_type}})
        await self._reconcile_network()

    async def _reconcile_network(self) -> None:
        """At start: the saved vifs of the guests libvirt still has are plumbed
        again, everything else the plumbing made is removed."""
        hn = self.host_network
        if hn is None or not (hn.instances or hn.applied):
            return
        from cloudd.agent.network.host import HostNetworkError
        from cloudd.agent.network.runner import CommandError
        try:
            present = {i.uuid for i in await self.list_instances()}
            await hn.reconcile({u: n for u, n in hn.instances.items() if u in present})
        except (HostNetworkError, CommandError, DriverError, OSError) as exc:
            # the agent still serves; each guest's plug tries again
            log.warning("host network reconcile failed: %s", exc)

    async def _plug(self, spec: InstanceSpec) -> None:
        if self.host_network is None or not spec.network_info:
            return
        from cloudd.agent.network.host import HostNetworkError
        from cloudd.agent.network.runner import CommandError
        try:
            await self.host_network.plug(spec.uuid, spec.network_info)
        except (HostNetworkError, CommandError, OSError) as exc:
            raise DriverError(f"cannot plug the instance's networks: {exc}") from None

    async def update_network(self, uuid: str, network_info: list[dict]) -> None:
        if self.host_network is None:
            return
        from cloudd.agent.network.host import HostNetworkError
        from cloudd.agent.network.runner import CommandError
        try:
            await self.host_network.update(uuid, network_info)
        except (HostNetworkError, CommandError, OSError) as exc:
            raise DriverError(f"cannot update the instance's networks: {exc}") from None

    async def update_security_group_members(self, group_id: str, members: dict) -> None:
        if self.host_network is None:
            return
        from cloudd.agent.network.runner import CommandError
        try:
            await self.host_network.set_members(group_id, members)
        except (CommandError, OSError) as exc:
            raise DriverError(f"cannot update security group {group_id}'s members: "
                              f"{exc}") from None

    async def _replug(self, uuid: str, network_info: list[dict]) -> None:
        """The instance's vifs on the host are now ``network_info`` (saved, so a
        restart's reconcile plumbs them again)."""
        if self.host_network is None:
            return
        from cloudd.agent.network.host import HostNetworkError
        from cloudd.agent.network.runner import CommandError
        try:
            await self.host_network.plug(uuid, network_info)
        except (HostNetworkError, CommandError, OSError) as exc:
            raise DriverError(f"cannot plug the instance's networks: {exc}") from None

    def _vifs(self, uuid: str) -> list[dict]:
        hn = self.host_network
        return list(hn.instances.get(uuid) or []) if hn is not None else []

    async def _has_mac(self, dom, mac: str, live: bool) -> bool:
        libvirt = _libvirt()
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        xml = await self._call(dom.XMLDesc, flags)
        return f"address='{mac}'" in xml or f'address="{mac}"' in xml

    async def attach_interface(self, uuid: str, vif: dict) -> None:
        """Plug ``vif`` on the host, then hot-plug its NIC into the running
        guest and its persistent definition (config only when it is off).
        Idempotent: a NIC with the vif's MAC already there is kept."""
        libvirt = _libvirt()
        dom = await self._domain(uuid)
        before = self._vifs(uuid)
        after = [v for v in before if v.get("port_id") != vif.get("port_id")] + [vif]
        await self._replug(uuid, after)
        try:
            xml = nic_xml(nic_of(vif))
            if not await self._has_mac(dom, vif["mac"], live=False):
                await self._call(dom.attachDeviceFlags, xml,
                                 libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            if await self._call(dom.isActive) and \
                    not await self._has_mac(dom, vif["mac"], live=True):
                await self._call(dom.attachDeviceFlags, xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except (DriverError, KeyError) as exc:
            await self._detach_nic(dom, vif, wait=0)
            if self.host_network is not None and uuid in self.host_network.instances:
                await self._replug(uuid, before)
            raise DriverError(f"cannot attach interface {vif.get('port_id')}: {exc}") \
                from None

    async def _detach_nic(self, dom, vif: dict, wait: float) -> bool:
        """Detach the vif's NIC from the live guest and its definition; True once
        the live guest no longer has it (within ``wait`` seconds)."""
        libvirt = _libvirt()
        mac = vif.get("mac")
        if not mac or not vif.get("bridge"):
            return True
        xml = nic_xml(nic_of(vif))
        try:
            if await self._has_mac(dom, mac, live=False):
                await self._call(dom.detachDeviceFlags, xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except DriverError as exc:
            log.warning("detach of %s from the definition failed: %s", mac, exc)
        if not await self._call(dom.isActive):
            return True
        deadline = time.monotonic() + wait
        asked = 0.0
        while await self._has_mac(dom, mac, live=True):
            now = time.monotonic()
            if now - asked >= 5.0:          # the guest may miss the first unplug request
                asked = now
                try:
                    await self._call(dom.detachDeviceFlags, xml,
                                     libvirt.VIR_DOMAIN_AFFECT_LIVE)
                except DriverError as exc:
                    log.info("live detach of %s: %s", mac, exc)
            if now >= deadline:
                return not await self._has_mac(dom, mac, live=True)
            await asyncio.sleep(0.5)
        return True

    async def detach_interface(self, uuid: str, port_id: str, vif: dict) -> None:
        """Unplug the port's NIC from the guest (live and config), then from the
        host. Succeeds when the guest or the NIC is already gone."""
        dom = await self._domain(uuid, missing_ok=True)
        known = {v.get("port_id"): v for v in self._vifs(uuid)}
        vif = vif or known.get(port_id) or {}
        if dom is not None and not await self._detach_nic(dom, vif, wait=DETACH_WAIT):
            raise DriverError(f"the guest did not release interface {port_id} "
                              f"within {DETACH_WAIT:.0f} seconds")
        if port_id in known:
            await self._replug(uuid, [v for v in self._vifs(uuid)
                                      if v.get("port_id") != port_id])

    def _on_lifecycle(self, conn, dom, event, detail, opaque) -> None:
        name = dom.name()
        if not name.startswith(NAME_PREFIX):
            return
        state, _ = dom.state()
        self._events.put_nowait(LifecycleEvent(name[len(NAME_PREFIX):],
                                               _POWER.get(state, PowerState.NOSTATE)))

    async def close(self) -> None:
        if self.host_network is not None:
            await self.host_network.close()
        if self.conn is not None:
            await asyncio.to_thread(self.conn.close)
            self.conn = None

    def _conn(self):
        if self.conn is None:
            raise DriverError("libvirt is not connected")
        return self.conn

    async def _call(self, fn, *args):
        libvirt = _libvirt()
        try:
            return await asyncio.to_thread(fn, *args)
        except libvirt.libvirtError as exc:
            raise DriverError(str(exc)) from None

    async def _domain(self, uuid: str, missing_ok: bool = False):
        libvirt = _libvirt()
        try:
            return await asyncio.to_thread(self._conn().lookupByName, domain_name(uuid))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                if missing_ok:
                    return None
                raise DriverError(f"instance {uuid} has no domain on {self.hostname}") \
                    from None
            raise DriverError(str(exc)) from None

    # --- host -------------------------------------------------------------------------

    async def host_resources(self) -> HostResources:
        conn = self._conn()
        info = await self._call(conn.getInfo)
        version = await self._call(conn.getVersion)
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        disk = shutil.disk_usage(self.instances_dir)
        return HostResources(hostname=self.hostname, vcpus=info[2], memory_mb=info[1],
                             disk_gb=disk.total // 1024 ** 3, hypervisor_type="QEMU",
                             hypervisor_version=version,
                             cpu_info={"arch": info[0], "model": info[0], "mhz": info[3],
                                       "virt_type": self.virt_type})

    async def list_instances(self) -> list[InstanceInfo]:
        """This driver's guests: ``cloudd-`` domains with a directory under its
        instances_dir (another cloud's agent on the same libvirtd has its own
        directory, and its guests are not this one's orphans)."""
        domains = await self._call(self._conn().listAllDomains, 0)
        out = []
        for dom in domains:
            name = dom.name()
            uuid = name[len(NAME_PREFIX):]
            if name.startswith(NAME_PREFIX) and \
                    await asyncio.to_thread(self._dir(uuid).is_dir):
                state, _ = await self._call(dom.state)
                out.append(InstanceInfo(uuid, _POWER.get(state, PowerState.NOSTATE)))
        return out

    # --- guests ---------------------------------------------------------------------

    def _dir(self, uuid: str) -> Path:
        return self.instances_dir / uuid

    async def _image(self, image_id: str) -> tuple[Path, str]:
        if self.image_cache is None:
            raise DriverError("no image cache configured")
        try:
            return await self.image_cache.get(image_id)
        except disks.DiskError as exc:
            raise DriverError(str(exc)) from None

    async def _prepare(self, spec: InstanceSpec) -> Domain:
        """Disks and the domain description of ``spec`` (files under its directory)."""
        directory = self._dir(spec.uuid)
        directory.mkdir(parents=True, exist_ok=True)
        props = spec.image.get("properties") or {}
        kernel = ramdisk = None
        try:
            if props.get("kernel_id"):
                kernel, _ = await self._image(props["kernel_id"])
            if props.get("ramdisk_id"):
                ramdisk, _ = await self._image(props["ramdisk_id"])
            disk_list = []
            root = directory / "disk"
            if spec.image.get("id") and not root.exists():
                base, fmt = await self._image(spec.image["id"])
                await disks.overlay(base, fmt, root, spec.root_gb,
                                    self.image_cache.virtual_size(spec.image["id"]))
            if root.exists():
                disk_list.append(Disk(str(root), "vda", cache=self.disk_cache))
            if spec.ephemeral_gb:
                eph = directory / "disk.eph0"
                if not eph.exists():
                    await disks.ephemeral(eph, spec.ephemeral_gb, props.get("os_type"),
                                          self.ephemeral_formats,
                                          self.default_ephemeral_format)
                disk_list.append(Disk(str(eph), "vdb", cache=self.disk_cache))
            if spec.swap_mb:
                swp = directory / "disk.swap"
                if not swp.exists():
                    await disks.swap(swp, spec.swap_mb)
                disk_list.append(Disk(str(swp), f"vd{'bc'[bool(spec.ephemeral_gb)]}",
                                      cache=self.disk_cache))
            if spec.config_drive:
                disk_list.append(await self._config_drive(spec, directory))
        except disks.DiskError as exc:
            raise DriverError(str(exc)) from None
        cmdline = props.get("os_command_line") or ("console=ttyS0 root=/dev/vda"
                                                   if kernel else None)
        nics = tuple(nic_of(v) for v in spec.network_info or [])
        return Domain(uuid=spec.uuid, display_name=spec.name, vcpus=spec.vcpus,
                      memory_mb=spec.memory_mb, virt_type=self.virt_type,
                      disks=tuple(disk_list), nics=nics,
                      kernel=str(kernel) if kernel else None,
                      ramdisk=str(ramdisk) if ramdisk else None, cmdline=cmdline,
                      console_log=str(directory / "console.log"),
                      vnc_listen=self.vnc_listen,
                      serial_host=self.vnc_listen if self.vnc_listen else None,
                      serial_port=await self._serial_port(spec.uuid))

    async def _config_drive(self, spec: InstanceSpec, directory: Path) -> Disk:
        """The spec's config drive (ISO 9660, label config-2) as a read-only CD-ROM.

        Made again on every prepare (spawn, rebuild, resize), so its documents
        are the ones the controller sent with this command."""
        from cloudd.agent.configdrive import ConfigDriveError, build_from_spec

        drive = directory / "disk.config"
        try:
            await build_from_spec(spec.config_drive, drive)
        except ConfigDriveError as exc:
            raise DriverError(f"cannot build the config drive: {exc}") from None
        # Nova's libvirt driver: a raw CD-ROM on the IDE bus ("hdd") for the pc machine
        return Disk(str(drive), "hdd", format="raw", bus="ide", device="cdrom",
                    cache=self.disk_cache)

    async def spawn(self, spec: InstanceSpec) -> None:
        dom = await self._domain(spec.uuid, missing_ok=True)
        await self._plug(spec)
        if dom is not None:
            if not await self._call(dom.isActive):
                await self._call(dom.create)
            return
        try:
            xml = render(await self._prepare(spec))
            dom = await self._call(self._conn().defineXML, xml)
            await self._call(dom.create)
        except DriverError:
            await self.destroy(spec.uuid)
            raise

    async def destroy(self, uuid: str) -> None:
        libvirt = _libvirt()
        dom = await self._domain(uuid, missing_ok=True)
        if dom is not None:
            if await self._call(dom.isActive):
                await self._call(dom.destroy)
            flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                     | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            try:
                await self._call(dom.undefineFlags, flags)
            except DriverError:
                await self._call(dom.undefine)
        await asyncio.to_thread(shutil.rmtree, self._dir(uuid), True)
        self._serial_ports.pop(uuid, None)
        if self.host_network is not None:
            await self.host_network.unplug(uuid)

    async def _wait_off(self, dom, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not await self._call(dom.isActive):
                return True
            await asyncio.sleep(0.5)
        return False

    async def power_off(self, uuid: str, timeout: float | None = None) -> None:
        """ACPI shutdown, then a hard stop when the guest has not gone in time."""
        dom = await self._domain(uuid)
        if not await self._call(dom.isActive):
            return
        try:
            await self._call(dom.shutdown)
        except DriverError:
            pass
        if not await self._wait_off(dom, self.shutdown_timeout if timeout is None
                                    else timeout):
            await self._call(dom.destroy)

    async def power_on(self, uuid: str) -> None:
        dom = await self._domain(uuid)
        if not await self._call(dom.isActive):
            await self._call(dom.create)

    async def reboot(self, uuid: str, hard: bool) -> None:
        dom = await self._domain(uuid)
        if hard:
            if await self._call(dom.isActive):
                await self._call(dom.destroy)
        else:
            await self.power_off(uuid)
        await self._call(dom.create)

    async def pause(self, uuid: str) -> None:
        await self._call((await self._domain(uuid)).suspend)

    async def unpause(self, uuid: str) -> None:
        await self._call((await self._domain(uuid)).resume)

    async def suspend(self, uuid: str) -> None:
        """Nova's suspend: the guest's memory saved to disk, the domain stopped."""
        await self._call((await self._domain(uuid)).managedSave, 0)

    async def resume(self, uuid: str) -> None:
        dom = await self._domain(uuid)
        if not await self._call(dom.isActive):
            await self._call(dom.create)

    async def resize(self, uuid: str, spec: InstanceSpec) -> None:
        """Same-host resize: stop, grow the root disk, redefine CPU and memory, start."""
        await self.power_off(uuid)
        try:
            if spec.root_gb:
                await disks.grow(self._dir(uuid) / "disk", spec.root_gb)
        except disks.DiskError as exc:
            raise DriverError(str(exc)) from None
        domain = await self._prepare(spec)
        await self._plug(spec)
        dom = await self._call(self._conn().defineXML, render(domain))
        await self._call(dom.create)

    async def console_output(self, uuid: str, lines: int | None = None) -> str:
        return await asyncio.to_thread(disks.console_tail,
                                       self._dir(uuid) / "console.log", lines)

    async def _serial_port(self, uuid: str) -> int | None:
        """The guest's serial console port: the one its domain has, else a free
        one of serial_port_range no other cloudd guest uses."""
        if not self.vnc_listen or not self.serial_port_range:
            return None
        conn = self._conn()
        port = await asyncio.to_thread(consoles.choose_serial_port, conn, domain_name(uuid),
                                       self.vnc_listen, self.serial_port_range,
                                       set(self._serial_ports.values()) - {
                                           self._serial_ports.get(uuid)})
        if port is None:
            raise DriverError(f"no free serial console port in {self.serial_port_range} "
                              f"on {self.vnc_listen}")
        self._serial_ports[uuid] = port
        return port

    async def console_info(self, uuid: str, kind: str) -> dict | None:
        """Where the running guest's VNC or serial console listens (its live XML)."""
        dom = await self._domain(uuid, missing_ok=True)
        if dom is None or not await self._call(dom.isActive):
            return None
        xml = await self._call(dom.XMLDesc, 0)
        return consoles.listener(xml, kind)

    async def snapshot(self, uuid: str, upload) -> None:
        """A standalone qcow2 of the root disk (no backing file), uploaded."""
        directory = self._dir(uuid)
        target = directory / "snapshot.qcow2"
        dom = await self._domain(uuid)
        state, _ = await self._call(dom.state)
        paused = state == 1          # running: hold its vCPUs while the disk is copied
        try:
            if paused:
                await self._call(dom.suspend)
            try:
                await disks.snapshot(directory / "disk", target)
            finally:
                if paused:
                    await self._call(dom.resume)
            await upload(target, "qcow2")
        except disks.DiskError as exc:
            raise DriverError(str(exc)) from None
        finally:
            target.unlink(missing_ok=True)

    async def events(self) -> AsyncIterator[LifecycleEvent]:
        while True:
            yield await self._events.get()


def host_network_from_config(hostname: str, cfg, base: Path, controller: str, secret: str):
    """``[host_network]``'s plumbing, with a metadata proxy when there is a controller."""
    from cloudd.agent.network import HostNetwork
    from cloudd.agent.network.host import parse_mappings
    hn_cfg = cfg.host_network
    proxy = None
    if controller:
        from cloudd.agent.metadata_proxy import MetadataProxy
        proxy = MetadataProxy(controller, hostname, secret, port=hn_cfg.metadata_port)
    state = Path(hn_cfg.state_dir).expanduser() if hn_cfg.state_dir else base / "network"
    return HostNetwork(state, mappings=parse_mappings(hn_cfg.physical_interface_mappings),
                       metadata_port=hn_cfg.metadata_port, dnsmasq_binary=hn_cfg.dnsmasq,
                       proxy=proxy, tables=(hn_cfg.nft_table, f"{hn_cfg.nft_table}_nat"))
